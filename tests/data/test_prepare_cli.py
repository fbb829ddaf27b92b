"""`bertvault prepare` as a user types it: output, exit codes, one-line errors, a real process."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bertvault.cli import app

runner = CliRunner()


def _prepare(*args: str):
    return runner.invoke(app, ["prepare", *map(str, args)])


def _one_error_line(result, code: int, pattern: str) -> None:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and pattern in lines[-1]
    assert "Traceback" not in result.output and "Traceback" not in result.stderr


def test_prepare_native(tmp_path, corpus, uncased_vocab):
    out = tmp_path / "out"
    result = _prepare(corpus, "--vocab-from", uncased_vocab, "--out", out, "--workers", "1", "--seed", "3")
    assert result.exit_code == 0, result.output
    header = json.loads((out / "bertvault-data.json").read_text())
    assert f"wrote {header['counts']['examples']:,} examples" in result.stdout
    assert header["options"]["seed"] == 3 and header["kind"] == "native"
    assert "uncased" in result.stderr  # the case decision is shown


def test_prepare_tfrecord_whole_word(tmp_path, corpus, uncased_vocab):
    out = tmp_path / "tfr"
    result = _prepare(corpus, "--vocab-from", uncased_vocab, "--out", out, "--format", "tfrecord",
                      "--whole-word-mask", "--seq-len", "64", "--max-predictions", "10", "--workers", "1")
    assert result.exit_code == 0, result.output
    header = json.loads((out / "bertvault-data.json").read_text())
    assert header["options"]["dupe_factor"] == 10 and header["options"]["whole_word_mask"] is True
    assert list(out.glob("*.tfrecord"))


@pytest.mark.parametrize(
    ("content", "code", "pattern"),
    [(b"", 7, "empty file"), (b"\x00\x01\x02junk" * 100, 7, "not UTF-8 text")],
)
def test_bad_input_one_line(tmp_path, uncased_vocab, content, code, pattern):
    bad = tmp_path / "in.txt"
    bad.write_bytes(content)
    _one_error_line(_prepare(bad, "--vocab-from", uncased_vocab, "--out", tmp_path / "out"), code, pattern)
    assert not (tmp_path / "out").exists()


def test_bad_options_one_line(tmp_path, corpus, uncased_vocab):
    result = _prepare(corpus, "--vocab-from", uncased_vocab.parent, "--out", tmp_path / "o",
                      "--seq-len", "4096")
    _one_error_line(result, 2, "exceeds the checkpoint's 512 positions")
    result = _prepare(corpus, "--vocab-from", uncased_vocab, "--out", "s3://bucket/data")
    _one_error_line(result, 2, "other schemes are not supported")
    result = _prepare(corpus, "--vocab-from", "no-such-checkpoint", "--out", tmp_path / "o")
    _one_error_line(result, 2, "neither an existing path nor a registered artifact")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_exits_6_and_runs_nothing(tmp_path, corpus, uncased_vocab):
    marker = tmp_path / "pwned"
    evil = tmp_path / "wikipedia_segmented_part_0.bin"
    evil.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    result = _prepare(corpus, evil, "--vocab-from", uncased_vocab, "--out", tmp_path / "out",
                      "--workers", "1")
    _one_error_line(result, 6, "posix.system")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_real_process_with_two_workers(tmp_path, make_corpus, uncased_vocab):
    text = make_corpus(documents=150)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bertvault", "prepare", str(text), "--vocab-from", str(uncased_vocab),
         "--out", str(out), "--workers", "2"],
        check=False, capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "examples" in proc.stdout
    header = json.loads((out / "bertvault-data.json").read_text())
    assert header["counts"]["documents"] == 150
    bad = subprocess.run(
        [sys.executable, "-m", "bertvault", "prepare", str(text), "--vocab-from", str(uncased_vocab),
         "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 7 and bad.stderr.strip().startswith("error: ") and "not empty" in bad.stderr


@pytest.mark.parametrize("fmt", ["native", "tfrecord"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, make_corpus, uncased_vocab, fmt):
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({mounted.stderr.strip()}); needs root")
    try:
        corpus = make_corpus(documents=300)  # shards of ~200 kB
        result = _prepare(corpus, "--vocab-from", uncased_vocab, "--out", disk / "out", "--format", fmt,
                          "--workers", "1")
        _one_error_line(result, 7, "no space left on the device holding")
        assert "free some space or give --out on a larger disk" in result.stderr
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
