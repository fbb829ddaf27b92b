"""The stat-keyed digest cache: a hit skips reading, any change to the file is a miss, and a broken
database only ever means "not cached"."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bertvault.cache import digests, layout, metadata

HOUR_NS = 3600 * 10**9


@pytest.fixture
def settled(monkeypatch) -> None:
    """Files a test just wrote count as settled. Their ctime is always "now" (no call sets it back),
    so without this every file here would be racily recent and never remembered."""
    monkeypatch.setattr(digests, "RACY_NS", 0)


def _write(path: Path, data: bytes, mtime_ns: int | None = None) -> Path:
    path.write_bytes(data)
    stamp = mtime_ns if mtime_ns is not None else time.time_ns() - HOUR_NS
    os.utime(path, ns=(stamp, stamp))
    return path


def _row(path: Path) -> tuple | None:
    with sqlite3.connect(layout.digests_path()) as conn:
        return conn.execute("SELECT * FROM digests WHERE path = ?", (str(path.resolve()),)).fetchone()


def test_a_hit_returns_the_stored_digest_without_reading(tmp_path, settled) -> None:
    path = _write(tmp_path / "weights.bin", b"x" * 3_000_000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digests.lookup(path) is None
    assert digests.sha256_of(path) == expected
    stored = _row(path)
    assert stored is not None and stored[-1] == expected
    assert digests.sha256_of(path) == expected and _row(path) == stored  # a hit writes nothing

    # a digest the bytes could never produce comes back as is: the hit did not read the file
    with sqlite3.connect(layout.digests_path()) as conn:
        conn.execute("UPDATE digests SET sha256 = ? WHERE path = ?", ("0" * 64, str(path.resolve())))
    assert digests.sha256_of(path) == "0" * 64


def test_same_size_new_content_with_a_new_mtime_is_hashed_again(tmp_path, settled) -> None:
    path = _write(tmp_path / "w.bin", b"a" * 1000)
    first = digests.sha256_of(path)
    _write(path, b"b" * 1000, mtime_ns=time.time_ns() - 2 * HOUR_NS)
    assert digests.lookup(path) is None
    assert digests.sha256_of(path) == hashlib.sha256(b"b" * 1000).hexdigest() != first
    assert _row(path)[-1] == hashlib.sha256(b"b" * 1000).hexdigest()


def test_any_change_to_the_file_is_a_miss(tmp_path, settled) -> None:
    path = _write(tmp_path / "w.bin", b"abc")
    digests.sha256_of(path)
    assert digests.lookup(path) == hashlib.sha256(b"abc").hexdigest()
    with path.open("ab") as stream:
        stream.write(b"d")
    assert digests.lookup(path) is None
    assert digests.sha256_of(path) == hashlib.sha256(b"abcd").hexdigest()

    replaced = _write(tmp_path / "other", b"abcd")  # same bytes, another inode
    os.replace(replaced, path)
    assert digests.lookup(path) is None


def test_a_file_that_changed_while_it_was_hashed_is_not_remembered(tmp_path, settled) -> None:
    path = _write(tmp_path / "w.bin", b"abc")
    before = os.stat(path)
    _write(path, b"abcd")
    assert not digests.remember(path, hashlib.sha256(b"abc").hexdigest(), before)
    assert digests.lookup(path) is None


def test_a_racily_recent_file_is_hashed_but_not_remembered(tmp_path) -> None:
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"fresh")
    assert digests.sha256_of(path) == hashlib.sha256(b"fresh").hexdigest()
    assert digests.lookup(path) is None
    assert not layout.digests_path().exists() or _row(path) is None


def test_a_corrupt_database_means_not_cached(tmp_path, settled) -> None:
    path = _write(tmp_path / "w.bin", b"abc")
    layout.digests_path().parent.mkdir(parents=True, exist_ok=True)
    layout.digests_path().write_bytes(b"this is not a sqlite database" * 100)
    assert digests.lookup(path) is None
    assert digests.sha256_of(path) == hashlib.sha256(b"abc").hexdigest()
    assert not digests.remember(path, "f" * 64, os.stat(path))


def test_an_unwritable_cache_home_means_not_cached(tmp_path, monkeypatch, settled) -> None:
    blocker = tmp_path / "home-is-a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("BERTVAULT_HOME", str(blocker))
    path = _write(tmp_path / "w.bin", b"abc")
    assert digests.sha256_of(path) == hashlib.sha256(b"abc").hexdigest()
    assert not digests.remember(path, "f" * 64, os.stat(path))
    assert digests.lookup(path) is None


def test_threads_sharing_the_database_all_get_their_rows(tmp_path, settled) -> None:
    paths = [_write(tmp_path / f"f{i}.bin", os.urandom(50_000 + i)) for i in range(12)]
    got: dict[Path, str] = {}

    def hash_one(path: Path) -> None:
        got[path] = digests.sha256_of(path)

    threads = [threading.Thread(target=hash_one, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for path in paths:
        expected = hashlib.sha256(path.read_bytes()).hexdigest()
        assert got[path] == expected and digests.lookup(path) == expected


def test_forget_missing_drops_rows_of_deleted_files(tmp_path, settled) -> None:
    kept, gone = _write(tmp_path / "kept", b"1"), _write(tmp_path / "gone", b"2")
    digests.sha256_of(kept), digests.sha256_of(gone)
    gone.unlink()
    assert digests.forget_missing() == 1
    assert _row(kept) is not None and _row(gone) is None


def test_cache_gc_forgets_digests_of_deleted_files(tmp_path, settled) -> None:
    from bertvault.cache.gc import gc

    gone = _write(tmp_path / "gone", b"2")
    digests.sha256_of(gone)
    gone.unlink()
    assert gc(dry_run=True).digests_forgotten == 0 and _row(gone) is not None
    assert gc().digests_forgotten == 1 and _row(gone) is None


def _view_file(name: str, rel: str, data: bytes, sha256: str, *, link: bool) -> Path:
    """What a pull leaves: a blob named by its sha256, the view's entry and the pull record."""
    blob = layout.blob_path(sha256)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    entry = layout.artifact_dir(name) / rel
    entry.parent.mkdir(parents=True, exist_ok=True)
    if link:
        os.link(blob, entry)
    else:
        entry.write_bytes(data)
    metadata.record_file(name, rel, {"sha256": sha256, "size": len(data)})
    return entry


def test_a_view_file_takes_its_digest_from_the_blob_it_links(settled) -> None:
    data = b"weights" * 1000
    sha = hashlib.sha256(data).hexdigest()
    entry = _view_file("some-bert", "sub/model.bin", data, sha, link=True)
    assert digests.view_digest(entry) == sha
    assert digests.sha256_of(entry) == sha
    assert digests.lookup(entry) is None  # served from the pull record, nothing hashed or stored


def test_the_view_digest_is_the_recorded_name_not_a_reading(settled) -> None:
    # a blob whose name is not its content's hash: trusting the name is the point (blobs are
    # verified before they are installed), so the recorded name comes back
    named = "ab" * 32
    entry = _view_file("odd-bert", "model.bin", b"not those bytes", named, link=True)
    assert digests.sha256_of(entry) == named


def test_a_copy_in_a_view_is_hashed(settled) -> None:
    data = b"copied"
    sha = hashlib.sha256(data).hexdigest()
    entry = _view_file("copy-bert", "model.bin", data, sha, link=False)
    entry.write_bytes(b"edited")  # a copy can drift from the blob; only a hardlink cannot
    assert digests.view_digest(entry) is None
    assert digests.sha256_of(entry) == hashlib.sha256(b"edited").hexdigest()
