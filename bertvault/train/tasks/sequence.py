"""Sentence(-pair) classification and regression (`--task classification|regression`, and GLUE).

Files are read with train/tables.py (GLUE TSVs as published, CSV, JSONL, Parquet), columns found
as GLUE names them unless given, the label set taken from the training file (sorted, numerically
when the labels are numbers) unless the task fixes it (GLUE), every eval label checked against it.
Texts are tokenized with the checkpoint's vocab ([CLS] a [SEP] b [SEP], truncated to
--max-seq-len); the model is BertForSequenceClassification (one output for regression).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from bertvault.errors import DataError
from bertvault.train import scores, tables
from bertvault.train.tasks import heads
from bertvault.train.tasks.loop import Evaluation

log = logging.getLogger(__name__)

# Which scores each kind reports, and the default one that picks the best epoch.
METRICS = {"classification": ("accuracy", "f1", "mcc"), "regression": ("pearson", "spearman")}


@dataclass
class Split:
    """One file, tokenized: ids per row, labels (ids or floats) when the file has them."""

    name: str
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: np.ndarray | None
    index: list[str]


@dataclass
class Labels:
    """How a file's label cells become label ids (classification) or values (regression)."""

    kind: str  # classification | regression
    names: list[str]  # classification: id -> name
    translate: Callable[[str], str] | None = None  # a cell -> its name (a Hub ClassLabel id -> GLUE's name)
    lookup: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.lookup = {n: i for i, n in enumerate(self.names)}

    def ids(self, path, raw: list[str]) -> np.ndarray:
        if self.kind == "regression":
            return regression_labels(path, raw)
        unknown = sorted({v for v in raw if v not in self.lookup})
        if unknown:
            raise DataError(f"{path} has labels the training file never had: {', '.join(unknown[:10])}; "
                            f"training labels are {', '.join(self.names)}")
        return np.array([self.lookup[v] for v in raw], dtype=np.int64)


def regression_labels(path, raw: list[str]) -> np.ndarray:
    """Finite numbers, or a DataError naming the first rows that are not (`nan` parses as a float, and
    one NaN label turns every loss and weight into NaN)."""
    values, bad = [], []
    for row, text in enumerate(raw, start=1):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or abs(value) > np.finfo(np.float32).max:
            bad.append(f"row {row} ({text!r})")
        values.append(value)
    if bad:
        raise DataError(f"{path}: regression labels must be finite numbers; not so in {', '.join(bad[:5])}"
                        + (f" and {len(bad) - 5} more rows" if len(bad) > 5 else ""))
    return np.array(values, dtype=np.float32)


def label_names(values: list[str]) -> list[str]:
    """Sorted label names; numerically when they all are numbers (so '0' < '1' < '10')."""
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def raw_labels(table: tables.Table, column: str | None, translate: Callable[[str], str] | None) -> list[str]:
    if not column or column not in table.columns:
        return []
    raw = [r.get(column, "").strip() for r in table.rows]
    return [translate(v) for v in raw] if translate else raw


def read_split(table: tables.Table, name: str, columns: tables.Columns, tokenizer,
               labels: Labels | None) -> Split:
    """A table tokenized; `labels` None for a file without labels (test)."""
    path = table.path
    missing = [c for c in (columns.text, columns.pair, columns.label if labels else None)
               if c is not None and c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))} (it has "
                        f"{', '.join(table.columns)}); name the columns with --text-column / "
                        "--text-pair-column / --label-column")
    rows = table.rows
    texts = [r[columns.text] for r in rows]
    encoded = (tokenizer.encode_batch(list(zip(texts, [r[columns.pair] for r in rows], strict=True)))
               if columns.pair else tokenizer.encode_batch(texts))
    ids = labels.ids(path, raw_labels(table, columns.label, labels.translate)) if labels else None
    index_name = tables.index_column(table)
    index = [r[index_name] for r in rows] if index_name else [str(i) for i in range(len(rows))]
    return Split(name, [e.ids for e in encoded], [e.type_ids for e in encoded], ids, index)


class SequenceTask:
    """The loop's view of a sentence(-pair) task (see tasks/loop.py)."""

    head = "sequence"

    def __init__(self, kind: str, labels: Labels, metric: str, splits: dict[str, Split], pad_id: int):
        self.kind, self.labels, self.metric, self.splits, self.pad_id = kind, labels, metric, splits, pad_id
        self.num_labels = 1 if kind == "regression" else len(labels.names)
        self.sources: list[str] = []  # the data files, for the provenance record

    def head_fields(self) -> dict:
        if self.kind == "regression":
            return {"num_labels": 1, "problem_type": "regression"}
        return {**heads.label_fields(self.labels.names), "problem_type": "single_label_classification"}

    def summary(self) -> dict:
        return {"labels": self.labels.names}

    def size(self, split: str) -> int:
        return len(self.splits[split].input_ids) if split in self.splits else 0

    def batch(self, split: str, rows: np.ndarray, fixed_length: int | None) -> dict[str, torch.Tensor]:
        """Padding to the batch's longest row (or a fixed length for XLA)."""
        data = self.splits[split]
        length = fixed_length or max(len(data.input_ids[i]) for i in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(rows), length), dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for j, i in enumerate(rows):
            n = len(data.input_ids[i])
            ids[j, :n] = torch.tensor(data.input_ids[i])
            types[j, :n] = torch.tensor(data.token_type_ids[i])
            mask[j, :n] = 1
        batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        if split == "train":
            batch["labels"] = torch.from_numpy(data.labels[rows])
        return batch

    def outputs(self, output, batch) -> list[np.ndarray]:
        return list(output.logits.float().cpu().numpy())

    def evaluate(self, outputs: list[np.ndarray]) -> Evaluation:
        logits, gold = np.stack(outputs), self.splits["eval"].labels
        if self.kind == "regression":
            return Evaluation(scores.regression(logits[:, 0], gold))
        return Evaluation(scores.classification(logits.argmax(-1), gold, self.num_labels))

    def predictions(self, outputs: list[np.ndarray]) -> dict[str, str]:
        """GLUE's submission layout: `index<TAB>prediction`, label names for classification."""
        logits = np.stack(outputs)
        if self.kind == "regression":
            values = [f"{v:.6g}" for v in logits[:, 0]]
        else:
            values = [self.labels.names[i] for i in logits.argmax(-1)]
        lines = "".join(f"{i}\t{v}\n" for i, v in zip(self.splits["test"].index, values, strict=True))
        return {"predictions.tsv": "index\tprediction\n" + lines}


def tokenizer_for(source, lowercase: bool, max_seq_len: int):
    from bertvault.formats.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(source.vocab_path, lowercase)
    tokenizer.enable_truncation(max_seq_len)
    return tokenizer


def build(settings, source, lowercase: bool, kind: str, columns: tables.Columns | None,
          names: list[str] | None, metric: str,
          translate: Callable[[str], str] | None = None) -> SequenceTask:
    """The task from --train/--eval/--test; `columns` and `names` None: found in the training file."""
    tokenizer = tokenizer_for(source, lowercase, settings.max_seq_len)
    train_table = tables.read_table(settings.train)
    if columns is None:
        columns = tables.detect_columns(train_table, settings.text_column, settings.text_pair_column,
                                        settings.label_column)
    log.info("columns: text %r, pair %r, label %r", columns.text, columns.pair, columns.label)
    if names is None and kind == "classification":
        names = label_names(raw_labels(train_table, columns.label, translate))
        if len(names) < 2:
            raise DataError(f"{settings.train}: every row has the label {names[0]!r}; a classifier needs "
                            "two or more")
    labels = Labels(kind, names or [], translate)
    splits = {"train": read_split(train_table, "train", columns, tokenizer, labels),
              "eval": read_split(tables.read_table(settings.eval), "eval", columns, tokenizer, labels)}
    if settings.test:
        splits["test"] = read_split(tables.read_table(settings.test), "test",
                                    tables.Columns(columns.text, columns.pair, None), tokenizer, None)
    task = SequenceTask(kind, labels, metric, splits, tokenizer.token_to_id("[PAD]"))
    task.sources = [settings.train, settings.eval]
    return task


def prepare(settings, source, lowercase: bool) -> SequenceTask:
    """`--task classification` or `--task regression` on the user's files."""
    metric = settings.metric or METRICS[settings.task][0]
    return build(settings, source, lowercase, settings.task, None, None, metric)
