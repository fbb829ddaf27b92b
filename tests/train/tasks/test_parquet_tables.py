"""Parquet files (the Hub's datasets) read beside TSV/CSV/JSONL, with the same columns found."""

from __future__ import annotations

import pytest

from bertvault.errors import DataError
from bertvault.train import tables


def test_a_hub_style_parquet_file_reads_as_a_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "validation-00000-of-00001.parquet"
    pq.write_table(pa.table({
        "sentence1": ["A plane.", "Two dogs."], "sentence2": ["A jet.", None],
        "label": pa.array([4.25, 0.5], pa.float32()), "idx": [0, 1],
        "extra": [{"a": [1, 2]}, {"a": []}],
    }), path)
    table = tables.read_table(path)
    assert table.columns == ["sentence1", "sentence2", "label", "idx", "extra"]
    assert table.rows[0] == {"sentence1": "A plane.", "sentence2": "A jet.", "label": "4.25", "idx": "0",
                             "extra": '{"a": [1, 2]}'}
    assert table.rows[1]["sentence2"] == ""  # a null cell is empty text, as in the other formats
    assert tables.detect_columns(table) == tables.Columns("sentence1", "sentence2", "label")
    assert tables.index_column(table) == "idx"


def test_a_damaged_parquet_file_is_one_data_error(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"sentence": ["x"] * 100, "label": [1] * 100}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short: the footer is gone
    with pytest.raises(DataError, match=r"cannot read .*train\.parquet: not a readable Parquet file"):
        tables.read_table(path)
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"sentence": pa.array([], pa.string())}), empty)
    with pytest.raises(DataError, match="holds no rows"):
        tables.read_table(empty)
