"""Provenance records: what bertvault writes says where it came from, and `info PATH` shows it."""

from __future__ import annotations

import hashlib
import json

from typer.testing import CliRunner

from bertvault.cli import app
from bertvault.provenance import describe_source, read_record, write_record

runner = CliRunner()


def test_record_lists_sources_with_hashes(tmp_path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.bin").write_bytes(b"abc")
    out = tmp_path / "out"
    out.mkdir()
    write_record(out, "convert", [describe_source(source, "my-bert")], to="safetensors")
    record = read_record(out)
    assert record["step"] == "convert" and record["to"] == "safetensors"
    assert record["sources"] == [{"source": str(source), "artifact": "my-bert",
                                  "files": {"a.bin": hashlib.sha256(b"abc").hexdigest()}}]
    shown = runner.invoke(app, ["info", str(out), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["sources"][0]["artifact"] == "my-bert"


def test_file_output_gets_a_sidecar_record(tmp_path) -> None:
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"x")
    write_record(out, "convert", [])
    assert (tmp_path / "model.safetensors.provenance.json").is_file()
    assert read_record(out)["step"] == "convert"


def test_info_on_a_path_without_record_is_one_line(tmp_path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2 and "carries no provenance record" in result.output


def test_convert_writes_a_record_with_the_check(tmp_path) -> None:
    pulled = runner.invoke(app, ["pull", "bert-demo-tiny", "--progress", "none"])
    assert pulled.exit_code == 0, pulled.output
    converted = runner.invoke(app, ["convert", "bert-demo-tiny", "--to", "safetensors", "--out", str(tmp_path / "st")])
    assert converted.exit_code == 0, converted.output
    record = read_record(tmp_path / "st")
    assert record["from_format"] == "tf1" and record["check"]["max_abs_diff"] == 0.0
    (source,) = record["sources"]
    assert source["artifact"] == "bert-demo-tiny" and "bert_model.ckpt.index" in source["files"]
