"""The shared finetuning loop: the best epoch is what is exported, and --resume continues exactly."""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest

from bertvault.errors import TrainingError
from bertvault.train import finetune
from bertvault.train.pretrain import Interrupted


def write_task(folder: Path, vocab_tokens: list[str], train: int = 160, dev: int = 64) -> tuple[Path, Path]:
    words = [t for t in vocab_tokens if t.isalpha() and len(t) > 3]
    group_a, group_b = words[:20], words[20:40]
    rng = random.Random(0)

    def rows(n):
        out = []
        for _ in range(n):
            label = rng.choice("ab")
            out.append(f"{' '.join(rng.choices(group_a if label == 'a' else group_b, k=6))}\t{label}\n")
        return "sentence\tlabel\n" + "".join(out)

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(rows(train))
    (folder / "dev.tsv").write_text(rows(dev))
    return folder / "train.tsv", folder / "dev.tsv"


class StopAfterFirstEpoch:
    """A display that asks the run to stop (as Ctrl-C does) when the first epoch is scored."""

    def __init__(self):
        self.records = []

    def update(self, record):
        self.records.append(record)
        if len(self.records) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    def message(self, text):
        pass


def values(tiny_bert, train, dev, out, **more):
    return {"from_": str(tiny_bert), "train": str(train), "eval": str(dev), "out": str(out), "lr": 2e-3,
            "epochs": 3, "batch_size": 16, "max_seq_len": 16, "dropout": 0.1, **more}


@pytest.mark.timeout(120)
def test_a_stopped_run_resumes_to_the_scores_of_an_uninterrupted_one(tmp_path, tiny_bert, vocab_tokens):
    train, dev = write_task(tmp_path / "data", vocab_tokens)
    whole = finetune.run(finetune.resolve_settings({}, values(tiny_bert, train, dev, tmp_path / "whole")))
    assert not (tmp_path / "whole" / "checkpoints").exists()  # finished: the resume state is dropped

    out = tmp_path / "stopped"
    with pytest.raises(Interrupted, match="--resume") as stopped:
        finetune.run(finetune.resolve_settings({}, values(tiny_bert, train, dev, out, save_every=3)),
                     display=StopAfterFirstEpoch())
    assert stopped.value.exit_code == 130
    # The signal came during the first evaluation: the run stopped after one step of epoch 2.
    saved = json.loads(next((out / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    assert (saved["epoch"], saved["batch"]) == (2, 1)
    assert not (out / "model").exists()
    with pytest.raises(TrainingError, match="already holds an unfinished run"):
        finetune.run(finetune.resolve_settings({}, values(tiny_bert, train, dev, out)))
    with pytest.raises(TrainingError, match="the run was started with 0.002"):
        finetune.resolve_settings({}, {"out": str(out), "lr": 1e-3}, resume=True)

    resumed = finetune.run(finetune.resolve_settings({}, {"out": str(out), "device": "cpu"}, resume=True),
                           resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert a == pytest.approx(b, rel=1e-5), (a, b)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]  # one record per epoch, as in one uninterrupted run
    with pytest.raises(TrainingError, match="has finished"):
        finetune.resolve_settings({}, {"out": str(out)}, resume=True)


@pytest.mark.timeout(120)
def test_the_export_scores_in_transformers_as_its_epoch_did(tmp_path, tiny_bert, vocab_tokens):
    """OUT/model with AutoTokenizer and AutoModelForSequenceClassification: the best epoch's accuracy."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train, dev = write_task(tmp_path / "data", vocab_tokens)
    out = tmp_path / "out"
    settings = finetune.resolve_settings({}, values(tiny_bert, train, dev, out, epochs=2, metric="f1"))
    result = finetune.run(settings)
    best = max(result.history, key=lambda r: r["eval_f1"])
    assert result.best_epoch == best["epoch"] and result.best_scores["f1"] == best["eval_f1"]
    summary = json.loads((out / "eval_results.json").read_text())
    assert (summary["metric"], summary["best_epoch"], summary["labels"]) == ("f1", best["epoch"], ["a", "b"])

    model = AutoModelForSequenceClassification.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    rows = [line.split("\t") for line in dev.read_text().splitlines()[1:]]
    with torch.no_grad():
        encoded = tokenizer([r[0] for r in rows], padding=True, truncation=True, max_length=16,
                            return_tensors="pt")
        predicted = model(**encoded).logits.argmax(-1).numpy()
    gold = np.array([model.config.label2id[r[1]] for r in rows])
    assert float(np.mean(predicted == gold)) == pytest.approx(best["eval_accuracy"])


@pytest.mark.timeout(120)
def test_the_loop_keeps_the_weights_of_the_best_epoch(tmp_path, tiny_bert, vocab_tokens):
    """Scores scripted per epoch (0.2, 0.9, 0.5): the weights left in the model are those of epoch 2."""
    import torch

    from bertvault.train import devices
    from bertvault.train.tasks import heads, loop, sequence

    train, dev = write_task(tmp_path / "data", vocab_tokens, train=48, dev=16)
    settings = finetune.resolve_settings({}, values(tiny_bert, train, dev, tmp_path / "out"))
    source, lowercase = finetune.load_source(settings)
    snapshots = []

    class Scripted(sequence.SequenceTask):
        def evaluate(self, outputs):
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
            return loop.Evaluation({"accuracy": (0.2, 0.9, 0.5)[len(snapshots) - 1]})

    task = sequence.prepare(settings, source, lowercase)
    task.__class__ = Scripted
    model = heads.build(source, "sequence", settings.dropout, **task.head_fields())
    trainer = loop.Trainer(task, model, settings, devices.pick("cpu"), "fp32", tmp_path / "out")
    outcome = trainer.run()
    assert outcome.best_epoch == 2 and outcome.best_scores == {"accuracy": 0.9}
    assert [r["eval_accuracy"] for r in outcome.history] == [0.2, 0.9, 0.5]
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[2][k]) for k in final)


def test_batches_of_similar_length_hold_every_row_once_and_pad_less():
    from bertvault.train.tasks.loop import POOL_BATCHES, grouped

    rng = np.random.default_rng(0)
    lengths = rng.integers(40, 385, size=1000)
    batch = 12
    order = np.random.default_rng([42, 1]).permutation(len(lengths))
    rows = grouped(order, lengths, batch, np.random.default_rng([42, 1]))
    again = grouped(order, lengths, batch, np.random.default_rng([42, 1]))
    assert np.array_equal(rows, again)  # the same seed and epoch: the same batches (--resume)
    assert sorted(rows.tolist()) == list(range(len(lengths)))  # a permutation: every row once
    full = len(rows) // batch
    batches = [rows[b * batch : (b + 1) * batch] for b in range(full + 1)]
    assert lengths[batches[0]].max() == lengths.max()  # the longest batch first
    # the partial batch is last: the rows of the last pool left over after its full batches
    assert len(batches[-1]) == len(rows) % batch
    assert set(batches[-1]) <= set(order[(full * batch // (batch * POOL_BATCHES)) * batch * POOL_BATCHES :])

    def padded(rows_in_batches):
        return sum(len(b) * lengths[b].max() for b in rows_in_batches if len(b))

    shuffled = [order[b * batch : (b + 1) * batch] for b in range(full + 1)]
    assert padded(batches) < 0.75 * padded(shuffled)
    assert padded(batches) < 1.1 * lengths.sum()  # close to no padding at all
    # still a shuffle: batches are not in length order, and each epoch's differ
    firsts = [int(lengths[b].max()) for b in batches[1:-1]]
    assert firsts != sorted(firsts, reverse=True) and firsts != sorted(firsts)
    other = grouped(np.random.default_rng([42, 2]).permutation(len(lengths)), lengths, batch,
                    np.random.default_rng([42, 2]))
    assert not np.array_equal(rows, other)
