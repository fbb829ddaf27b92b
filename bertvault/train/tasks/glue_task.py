"""`--task glue/<name>`: a GLUE task finetuned as BERT's paper did, from the files tasks/glue.py finds.

The task is a sentence(-pair) task (tasks/sequence.py) whose columns, label set and scores come
from GLUE's table instead of the files: the label ids are the same whichever form the data came
in, and each epoch is scored with the task's official metrics (on both of MNLI's dev sets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertvault.errors import TrainingError
from bertvault.train import tables
from bertvault.train.tasks import glue, sequence
from bertvault.train.tasks.loop import Evaluation


class GlueSequenceTask(sequence.SequenceTask):
    def __init__(self, spec: glue.GlueTask, parts: list[int], *args):
        super().__init__(*args)
        self.spec, self.parts = spec, parts

    def evaluate(self, outputs: list[np.ndarray]) -> Evaluation:
        logits, gold = np.stack(outputs), self.splits["eval"].labels
        predicted = logits[:, 0] if self.kind == "regression" else logits.argmax(-1)
        bounds = np.cumsum([0, *self.parts])
        result: dict[str, float] = {}
        for start, end, suffix in zip(bounds[:-1], bounds[1:], glue.DEV_SUFFIXES, strict=False):
            result.update(glue.metric_values(self.spec, predicted[start:end], gold[start:end], suffix))
        return Evaluation(result)


def files_of(settings, name: str) -> glue.Files:
    """--train/--eval files as given, else the folder in --train (or the registered data) searched."""
    train = Path(settings.train).expanduser() if settings.train else None
    if train is not None and train.is_file():
        if not settings.eval:
            raise TrainingError("--eval is required with a --train file (or give --train a GLUE data folder)")
        source = "hub" if train.suffix.lower() == ".parquet" else "tsv"
        return glue.Files(source, train, [Path(settings.eval).expanduser()])
    return glue.locate(name, settings.train, Path(settings.out) / "data")


def _concat(splits: list[sequence.Split]) -> sequence.Split:
    labels = [s.labels for s in splits]
    return sequence.Split("eval", [ids for s in splits for ids in s.input_ids],
                          [types for s in splits for types in s.token_type_ids], np.concatenate(labels),
                          [i for s in splits for i in s.index])


def prepare(settings, source, lowercase: bool) -> GlueSequenceTask:
    name = settings.task.split("/", 1)[1]
    spec = glue.TASKS[name]
    files = files_of(settings, name)
    cols = glue.columns(spec, files.source)
    columns = tables.Columns(cols.text, cols.pair, cols.label)
    tokenizer = sequence.tokenizer_for(source, lowercase, settings.max_seq_len)
    labels = sequence.Labels(spec.kind, list(spec.labels), glue.translator(spec, files.source))
    train = sequence.read_split(tables.read_table(files.train), "train", columns, tokenizer, labels)
    devs = [sequence.read_split(tables.read_table(p), "eval", columns, tokenizer, labels) for p in files.dev]
    splits = {"train": train, "eval": _concat(devs)}
    if settings.test:
        text = spec.tsv_test_text if files.source == "tsv" and spec.tsv_test_text else cols.text
        test_columns = tables.Columns(text, cols.pair, None)
        test = tables.read_table(settings.test)
        splits["test"] = sequence.read_split(test, "test", test_columns, tokenizer, None)
    metric = settings.metric or spec.metrics[0]
    task = GlueSequenceTask(spec, [len(d.input_ids) for d in devs], spec.kind, labels, metric, splits,
                            tokenizer.token_to_id("[PAD]"))
    task.sources = [str(files.train), *map(str, files.dev)]
    return task
