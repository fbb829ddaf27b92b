"""Remembered sha256 of local files, so provenance records do not re-read gigabytes on every run.

A digest is keyed by the file's resolved path and trusted only while its stat is unchanged
(device, inode, size, mtime, ctime), as git's index does. It is stored only when the stat taken
before hashing equals the one taken after, and not while the file's timestamps are so recent that a
later write could leave them unchanged ("racy" in git's words). Files in an artifact's cache view
need no hashing at all: they are hardlinks of blobs named by their sha256.

The cache is an optimisation only: any sqlite or OS error means "not cached" (logged at debug),
never a failed command. Several processes may share it: sqlite serialises writers (WAL mode, with a
busy timeout), and a lost write only costs a later re-hash.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path, PurePosixPath

from bertvault.cache import layout

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 5.0
# Coarse filesystem clocks (FAT: 2 s, ext3: 1 s, kernel ticks elsewhere) let a write right after our
# final stat keep the same timestamps; a file touched this recently is hashed but not remembered.
RACY_NS = 2_000_000_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCHEMA = """CREATE TABLE IF NOT EXISTS digests (
    path TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"""
_ERRORS = (sqlite3.Error, OSError, OverflowError)  # OverflowError: an inode number beyond sqlite's int64


def _key(path: Path) -> str:
    return str(Path(path).resolve())


def _fields(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _connect(create: bool) -> sqlite3.Connection | None:
    db = layout.digests_path()
    if not create and not db.is_file():
        return None
    if create:
        db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, timeout=BUSY_TIMEOUT_S)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def lookup(path: Path, stat: os.stat_result | None = None) -> str | None:
    """The remembered sha256 of `path`, only if its stat still matches what was hashed."""
    try:
        stat = stat or os.stat(path)
        conn = _connect(create=False)
        if conn is None:
            return None
        with closing(conn):
            query = "SELECT dev, ino, size, mtime_ns, ctime_ns, sha256 FROM digests WHERE path = ?"
            row = conn.execute(query, (_key(path),)).fetchone()
    except _ERRORS as exc:
        log.debug("digest cache lookup of %s failed: %s", path, exc)
        return None
    if row is None or tuple(row[:5]) != _fields(stat):
        return None
    return row[5]


def remember(path: Path, sha256: str, stat_before: os.stat_result) -> bool:
    """Store `sha256` for `path` if the file's stat is the same as before it was hashed (and not
    racily recent). Returns whether it was stored."""
    try:
        after = os.stat(path)
        if _fields(after) != _fields(stat_before):
            log.debug("%s changed while it was hashed; its digest is not remembered", path)
            return False
        if max(after.st_mtime_ns, after.st_ctime_ns) > time.time_ns() - RACY_NS:
            return False
        with closing(_connect(create=True)) as conn, conn:  # type: ignore[arg-type]
            conn.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (_key(path), *_fields(after), sha256))
    except _ERRORS as exc:
        log.debug("digest cache could not remember %s: %s", path, exc)
        return False
    return True


def forget_missing() -> int:
    """Drop rows whose file is gone; returns how many (for a cache clean-up)."""
    try:
        conn = _connect(create=False)
        if conn is None:
            return 0
        with closing(conn), conn:
            gone = [(p,) for (p,) in conn.execute("SELECT path FROM digests") if not os.path.exists(p)]
            conn.executemany("DELETE FROM digests WHERE path = ?", gone)
    except _ERRORS as exc:
        log.debug("digest cache clean-up failed: %s", exc)
        return 0
    return len(gone)


def view_digest(path: Path, stat: os.stat_result | None = None) -> str | None:
    """The sha256 of a file in an artifact's cache view, from the pull record, when the file is the
    very blob named by that digest (same inode). Extracted archive members and copies return None."""
    try:
        rel = Path(path).resolve().relative_to(layout.artifacts_root().resolve())
        if len(rel.parts) < 2 or rel.parts[0].startswith("."):
            return None
        from bertvault.cache import metadata  # here: a file outside the cache needs no pull record

        record = metadata.read(rel.parts[0])["files"].get(PurePosixPath(*rel.parts[1:]).as_posix())
        if not isinstance(record, dict) or "archive" in record:
            return None
        sha256 = record.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            return None
        stat = stat or os.stat(path)
        return sha256 if os.path.samestat(stat, os.stat(layout.blob_path(sha256))) else None
    except (ValueError, OSError):
        return None


def sha256_of(path: Path, stop: threading.Event | None = None) -> str:
    """sha256 of a file: from its blob name, from the cache, or read (and remembered)."""
    before = os.stat(path)  # before opening: a file replaced meanwhile then fails the stat comparison
    known = view_digest(path, before) or lookup(path, before)
    if known is not None:
        return known
    from bertvault.io.hashing import hash_file

    digest = hash_file(path, {"sha256"}, stop=stop)["sha256"]
    remember(path, digest, before)
    return digest
