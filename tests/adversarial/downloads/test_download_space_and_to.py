"""A disk that fills up while a pull finishes, and `pull --to` into places it cannot write: one line
and the documented exit code, the bytes already fetched kept; the copy made by `--to` never shares
its bytes with the cache."""

from __future__ import annotations

import contextlib
import json
import os

import pytest
from fetch_helpers import random_bytes, sha256

FAST = ["--chunk-size", "4M", "--retry-wait", "0.01", "--progress", "none"]
DATA = random_bytes(1 << 20, seed=51)


def fill(folder) -> None:
    """Write zeros into `folder`/filler until the disk is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    block = bytes(64 << 10)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, block)
    with contextlib.suppress(OSError):
        os.write(fd, bytes(512))  # the last partial page
    os.close(fd)


def error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


@pytest.mark.timeout(60)
def test_a_disk_that_fills_while_a_pull_finishes_is_one_line_and_the_bytes_are_kept(
        cli, faulty, manifest, tmpfs, monkeypatch) -> None:
    disk = tmpfs("4m")
    monkeypatch.setenv("BERTVAULT_HOME", str(disk / "cache"))
    # another program fills the disk just before the last bytes arrive: the data file was
    # preallocated, so the download completes, and every step after it (journal, record, blob,
    # view) finds no space
    url = faulty.add("f.bin", DATA, before_end=lambda: fill(disk))
    manifest.add("finishing", {"path": "f.bin", "urls": [url]})
    result = cli("pull", "finishing", *FAST)
    assert result.exit_code == 3
    last = error_line(result.stderr)
    assert last.startswith("error: finishing/f.bin: no space left on the device") and "are kept" in last
    assert not (disk / "cache" / "artifacts" / "finishing").exists()

    faulty.files["/f.bin"].before_end = None
    (disk / "filler").unlink()
    again = cli("pull", "finishing", *FAST, "--json")
    assert again.exit_code == 0, again.stderr
    report = json.loads(again.stdout)["files"][0]
    assert report["fetched"] == 0 and report["resumed"] == len(DATA)  # nothing fetched twice
    assert len(faulty.gets("f.bin")) == 1
    assert (disk / "cache" / "artifacts" / "finishing" / "f.bin").read_bytes() == DATA


@pytest.mark.timeout(60)
def test_pull_to_a_full_disk_is_one_line_and_the_cache_stays_complete(cli, faulty, manifest, home,
                                                                       tmpfs) -> None:
    out = tmpfs("1m")
    fill(out)
    manifest.add("tofull", {"path": "f.bin", "urls": [faulty.add("f.bin", DATA)]})
    result = cli("pull", "tofull", *FAST, "--to", out / "copy")
    assert result.exit_code == 3
    last = error_line(result.stderr)
    assert "no space left on the device" in last and str(out / "copy") in last
    assert json.loads((home / "meta" / "tofull.json").read_text())["complete"] is True
    assert (home / "artifacts" / "tofull" / "f.bin").read_bytes() == DATA
    assert not [p for p in (out / "copy").rglob("*") if p.name.startswith(".")]  # no temporary file left


@pytest.mark.timeout(60)
def test_pull_to_a_file_a_read_only_folder_or_the_cache_is_refused_before_any_request(
        cli, faulty, manifest, home, tmp_path, tmpfs) -> None:
    manifest.add("nowhere", {"path": "f.bin", "urls": [faulty.add("f.bin", DATA)]})
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    read_only = tmpfs("1m", "ro")
    targets = {a_file: "is not a folder", a_file / "sub": "is not a folder", read_only: "cannot write",
               read_only / "new": "cannot write", home / "artifacts" / "x": "inside the cache"}
    for target, said in targets.items():
        result = cli("pull", "nowhere", *FAST, "--to", target)
        assert result.exit_code == 2, (target, result.stderr)
        last = error_line(result.stderr)
        assert last.startswith("error: --to ") and said in last and str(target) in last
    assert faulty.seen == [] and a_file.read_text() == "mine"


@pytest.mark.timeout(60)
def test_a_copy_made_with_to_never_shares_bytes_with_the_cache(cli, faulty, manifest, home, tmp_path) -> None:
    manifest.add("mine", {"path": "vocab.txt", "urls": [faulty.add("vocab.txt", DATA)]})
    result = cli("pull", "mine", *FAST, "--to", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    copy = tmp_path / "out" / "vocab.txt"
    blob = home / "blobs" / "sha256" / sha256(DATA)[:2] / sha256(DATA)
    assert copy.stat().st_ino != blob.stat().st_ino and copy.stat().st_nlink == 1
    assert os.access(copy, os.W_OK) and blob.stat().st_mode & 0o777 == 0o444
    with open(copy, "r+b") as f:  # the user edits their copy in place
        f.write(b"[edited]")
    assert blob.read_bytes() == DATA and (home / "artifacts" / "mine" / "vocab.txt").read_bytes() == DATA
    assert cli("verify", "mine").exit_code == 0
    again = cli("pull", "mine", *FAST, "--to", tmp_path / "out")  # a second --to puts the cached bytes back
    assert again.exit_code == 0 and copy.read_bytes() == DATA
