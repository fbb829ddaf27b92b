"""Provenance records: what bertvault writes says where it came from, and `info PATH` shows it."""

from __future__ import annotations

import hashlib
import json
import os
import time

from typer.testing import CliRunner

from bertvault.cache import digests, layout
from bertvault.cli import app
from bertvault.convert import convert
from bertvault.provenance import describe_source, read_record, start_describe, write_record

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
    converted = runner.invoke(app, ["convert", "bert-demo-tiny", "--to", "safetensors",
                                    "--out", str(tmp_path / "st")])
    assert converted.exit_code == 0, converted.output
    record = read_record(tmp_path / "st")
    assert record["from_format"] == "tf1" and record["check"]["max_abs_diff"] == 0.0
    (source,) = record["sources"]
    assert source["artifact"] == "bert-demo-tiny" and "bert_model.ckpt.index" in source["files"]
    view = layout.artifact_dir("bert-demo-tiny")
    for rel, sha in source["files"].items():
        assert sha == hashlib.sha256((view / rel).read_bytes()).hexdigest(), rel


def test_convert_record_hashes_a_path_source_again_from_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(digests, "RACY_NS", 0)  # the checkpoint was written a moment ago
    pulled = runner.invoke(app, ["pull", "bert-demo-tiny", "--progress", "none"])
    assert pulled.exit_code == 0, pulled.output
    st = tmp_path / "st.safetensors"
    convert("bert-demo-tiny", "safetensors", out=st)
    expected = hashlib.sha256(st.read_bytes()).hexdigest()
    for attempt in ("first", "second"):  # hashed while converting, then served by the digest cache
        out = tmp_path / f"{attempt}.bin"
        convert(st, "pt", out=out, check=False)
        (source,) = read_record(out)["sources"]
        assert source == {"source": str(st), "files": {st.name: expected}}, attempt
        assert digests.lookup(st) == expected


def test_describe_in_the_background_gives_what_describe_source_gives(tmp_path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.bin").write_bytes(os.urandom(3 << 20))
    (source / "sub" / "b.txt").write_bytes(b"vocab")
    (source / ".hidden").write_bytes(b"skipped")
    assert start_describe(source, "my-bert").result() == describe_source(source, "my-bert")
    assert start_describe(source / "a.bin").result() == describe_source(source / "a.bin")
    assert start_describe(tmp_path / "gone.bin").result() == describe_source(tmp_path / "gone.bin")


def test_a_broken_digest_cache_never_breaks_describe_source(tmp_path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"abc")
    old = time.time_ns() - 3600 * 10**9
    os.utime(source, ns=(old, old))
    layout.digests_path().parent.mkdir(parents=True, exist_ok=True)
    layout.digests_path().write_bytes(b"garbage, not sqlite" * 50)
    assert describe_source(source)["files"] == {"model.bin": hashlib.sha256(b"abc").hexdigest()}
