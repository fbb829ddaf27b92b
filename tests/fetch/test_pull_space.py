"""Disk space: checked before anything is fetched, and a full disk mid-download is a clear error that
installs nothing and keeps the bytes."""

from __future__ import annotations

import json
import subprocess

import pytest
from fetch_helpers import random_bytes

FAST = ["--chunk-size", "64K", "--retry-wait", "0.01", "--progress", "none"]


def test_not_enough_space_is_said_before_any_request(cli, faulty, manifest) -> None:
    url = faulty.add("huge.bin", b"x")
    manifest.add("huge", {"path": "huge.bin", "urls": [url], "size": 10**15})
    result = cli("pull", "huge", *FAST)
    assert result.exit_code == 3
    assert "not enough free space for huge: 1000000000000000 bytes needed" in result.stderr
    assert faulty.seen == []


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A 3 MiB tmpfs as the cache root (needs root, as in CI's container)."""
    mount = tmp_path / "small"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({done.stderr.strip()}); needs root")
    monkeypatch.setenv("BERTVAULT_HOME", str(mount / "cache"))
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_preallocation_fails_cleanly_when_the_file_does_not_fit(cli, faulty, manifest, small_disk) -> None:
    (small_disk / "filler").write_bytes(bytes(2 << 20))
    manifest.add("wontfit", {"path": "f.bin", "urls": [faulty.add("f.bin", random_bytes(1_500_000))]})
    result = cli("pull", "wontfit", *FAST)
    assert result.exit_code == 3
    assert "error: wontfit/f.bin: not enough free space: 1500000 more bytes needed" in result.stderr
    assert faulty.gets("f.bin") == []  # nothing downloaded into a file that cannot hold it


def test_disk_full_mid_download_installs_nothing_and_frees_what_cannot_resume(cli, faulty, manifest,
                                                                             small_disk) -> None:
    data = random_bytes(1_500_000, seed=9)
    url = faulty.add("f.bin", data, sized=False, ranges=False)  # no size known: nothing to preallocate
    manifest.add("diskfull", {"path": "f.bin", "urls": [url]})
    filler = small_disk / "filler"
    filler.write_bytes(bytes(2 << 20))
    result = cli("pull", "diskfull", *FAST)
    assert result.exit_code == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: diskfull/f.bin: no space left on the device")
    assert "Traceback" not in result.stderr
    assert "this server sends the file only whole, so it is fetched again from the start" in last
    cache = small_disk / "cache"
    assert not (cache / "artifacts" / "diskfull").exists() and not list((cache / "blobs").rglob("f*"))
    assert list((cache / "partial").iterdir()) == []  # nothing of it can be resumed: the space is given back

    filler.unlink()
    again = cli("pull", "diskfull", *FAST, "--json")
    assert again.exit_code == 0, again.stderr
    assert (cache / "artifacts" / "diskfull" / "f.bin").read_bytes() == data
    assert json.loads(again.stdout)["complete"] is True


def test_early_writeback_is_best_effort(tmp_path) -> None:
    """Starting writeback never fails a pull: on a file it is queued (the dirty bytes go on to the
    disk), and where the call cannot apply (a pipe, a closed descriptor) it is ignored."""
    import os

    from bertvault.io.space import fdatasync, start_writeback

    path = tmp_path / "data"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.pwrite(fd, random_bytes(1 << 20), 0)
        start_writeback(fd)
        fdatasync(fd)
        assert os.pread(fd, 16, 0) == random_bytes(1 << 20)[:16]
    finally:
        os.close(fd)
    start_writeback(fd)  # closed: EBADF, ignored
    read_end, write_end = os.pipe()
    try:
        start_writeback(write_end)  # ESPIPE, ignored
    finally:
        os.close(read_end), os.close(write_end)
