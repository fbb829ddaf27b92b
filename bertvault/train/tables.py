"""Labelled text files for finetuning: TSV (GLUE as published), CSV, JSON Lines and Parquet (the Hub's).

GLUE's TSV files are read as they are: no quote handling (their sentences hold bare quotes),
a header row naming the columns (CoLA's train/dev files have none). Columns are found by name:

    SST-2 sentence / label            MRPC #1 String, #2 String / Quality
    QNLI question, sentence / label   RTE, WNLI, STS-B, MNLI sentence1, sentence2 / label, score, gold_label
    QQP question1, question2 / is_duplicate
    CoLA (no header) column 3 / column 1

`--text-column`, `--text-pair-column` and `--label-column` take a name, or a 0-based index for
files without a header. Parquet files (the Hub's `datasets/` repositories ship them) are read with
pyarrow; every cell becomes text as in the other formats (nested values as JSON).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bertvault.errors import DataError

# (text, pair) in order of preference; the first whose columns all exist wins.
TEXT_COLUMNS = (("#1 String", "#2 String"), ("question1", "question2"), ("question", "sentence"),
                ("sentence1", "sentence2"), ("premise", "hypothesis"), ("text", "text_pair"),
                ("sentence", None), ("text", None), ("review", None))
LABEL_COLUMNS = ("label", "gold_label", "Quality", "score", "is_duplicate", "labels", "target")
INDEX_COLUMNS = ("index", "idx", "id")
KNOWN = {name for pair in TEXT_COLUMNS for name in pair if name} | set(LABEL_COLUMNS) | set(INDEX_COLUMNS)


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    has_header: bool


def _read_delimited(path: Path, delimiter: str, quoting: int) -> tuple[list[list[str]], bool]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter=delimiter, quoting=quoting) if row]
    if not rows:
        return [], False
    first = rows[0]
    has_header = any(cell.strip() in KNOWN for cell in first)
    return rows, has_header


def _delimited(path: Path, delimiter: str, quoting: int) -> Table:
    rows, has_header = _read_delimited(path, delimiter, quoting)
    if not rows:
        raise DataError(f"{path} is empty")
    columns = [c.strip() for c in rows[0]] if has_header else [str(i) for i in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    records = []
    for number, row in enumerate(body, start=2 if has_header else 1):
        if len(row) < len(columns):
            raise DataError(f"{path} line {number}: {len(row)} fields, the header has {len(columns)}")
        records.append(dict(zip(columns, row, strict=False)))
    return Table(path, columns, records, has_header)


def _tsv(path: Path) -> Table:
    return _delimited(path, "\t", csv.QUOTE_NONE)


def _csv(path: Path) -> Table:
    return _delimited(path, ",", csv.QUOTE_MINIMAL)


def jsonl_items(path: Path, text: str | None = None) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) of every non-blank line of a JSON-lines file."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path} line {number}: not JSON ({exc})") from None


def _jsonl(path: Path) -> Table:
    records, columns = [], {}
    for number, item in jsonl_items(path):
        if not isinstance(item, dict):
            raise DataError(f"{path} line {number}: expected a JSON object per line")
        columns.update(dict.fromkeys(item))
        records.append({k: "" if v is None else str(v) for k, v in item.items()})
    return Table(path, list(columns), records, True)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {path}: not a readable Parquet file ({first_line})") from None
    columns = data.column_names
    values = [[_cell(v) for v in data.column(name).to_pylist()] for name in columns]
    records = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
    return Table(path, columns, records, True)


READERS = {".tsv": _tsv, ".txt": _tsv, ".csv": _csv, ".jsonl": _jsonl, ".json": _jsonl, ".ndjson": _jsonl,
           ".parquet": _parquet}


def read_table(path: str | Path) -> Table:
    path = Path(path).expanduser()
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .tsv, .csv, .jsonl or .parquet")
    try:
        table = reader(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not table.rows:
        raise DataError(f"{path} holds no rows")
    return table


@dataclass(frozen=True)
class Columns:
    text: str
    pair: str | None
    label: str | None


def _pick(table: Table, given: str | None, what: str, problems: list[str]) -> str | None:
    if given is None:
        return None
    if given in table.columns:
        return given
    problems.append(f"{table.path}: no {what} column {given!r}; it has {', '.join(table.columns)}")
    return None


def detect_columns(table: Table, text: str | None = None, pair: str | None = None, label: str | None = None,
                   need_label: bool = True) -> Columns:
    """The columns to use: the ones given, else GLUE's names (see the module docstring)."""
    problems: list[str] = []
    text, pair, label = (_pick(table, text, "text", problems), _pick(table, pair, "text-pair", problems),
                         _pick(table, label, "label", problems))
    if problems:
        raise DataError(problems)
    if text is None:
        if not table.has_header and len(table.columns) == 4:  # CoLA: source, label, original label, sentence
            text, label = "3", label or "1"
        else:
            for first, second in TEXT_COLUMNS:
                if first in table.columns and (second is None or second in table.columns):
                    text, pair = first, pair or second
                    break
    if label is None and need_label:
        label = next((c for c in LABEL_COLUMNS if c in table.columns), None)
    if text is None:
        problems.append(f"{table.path}: cannot tell which column holds the text (columns: "
                        f"{', '.join(table.columns)}); pass --text-column")
    if need_label and label is None:
        problems.append(f"{table.path}: cannot tell which column holds the label (columns: "
                        f"{', '.join(table.columns)}); pass --label-column")
    if problems:
        raise DataError(problems)
    return Columns(text, pair, label)


def index_column(table: Table) -> str | None:
    return next((c for c in INDEX_COLUMNS if c in table.columns), None)
