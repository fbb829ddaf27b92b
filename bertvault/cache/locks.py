"""Advisory locks that only save work: a second process waits instead of downloading the same file
again, and says what it waits for. Nothing depends on them for correctness (flock is a no-op on
some network filesystems), and a lock whose owner died on this host is not waited for."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from bertvault.cache import layout
from bertvault.io.owners import HOST, pid_alive

log = logging.getLogger(__name__)

TMP_GRACE_SECONDS = 60  # an owner file being written lives for microseconds; one this old was orphaned


def _owner(path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _describe(owner: dict | None) -> str:
    if not owner:
        return "another bertvault process"
    return f"bertvault process {owner.get('pid')} on {owner.get('host')} (since {owner.get('since')})"


class Cancelled(Exception):
    """The wait was called off (Ctrl-C)."""


@contextmanager
def waiting_lock(name: str, what: str, say: Callable[[str], None], every: float = 10.0,
                 cancelled: Callable[[], bool] = lambda: False) -> Iterator[bool]:
    """Hold the lock `name` while working on `what`. Yields True if held, False if the owner looked
    dead and we went ahead without it."""
    root = layout.locks_dir()
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / f"{name}.lock"))
    owner_file = root / f"{name}.owner"
    held, started, told = False, time.monotonic(), -every
    while not held:
        try:
            lock.acquire(timeout=0.5)
            held = True
        except Timeout:
            if cancelled():
                raise Cancelled(f"stopped waiting for the lock on {what}") from None
            owner = _owner(owner_file)
            if owner and owner.get("host") == HOST and not pid_alive(int(owner.get("pid", 0))):
                log.info("the owner of %s is gone; going ahead without the lock", name)
                break
            waited = time.monotonic() - started
            if waited - told >= every:
                fetching = owner.get("what", what) if owner else what
                say(f"waiting for {_describe(owner)}, which is fetching {fetching} ({waited:.0f} s so far)")
                told = waited
    if held:
        tmp = owner_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": HOST, "what": what,
                                   "since": time.strftime("%H:%M:%S")}), encoding="utf-8")
        os.replace(tmp, owner_file)
    try:
        yield held
    finally:
        if held:
            owner_file.unlink(missing_ok=True)
            lock.release()


def leftovers() -> list[Path]:
    """Owner files of dead processes of this host, and half-written owner files (for `cache gc`)."""
    root = layout.locks_dir()
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("*.owner"):
        owner = _owner(path)
        if owner and owner.get("host") == HOST and not pid_alive(int(owner.get("pid", 0))):
            found.append(path)
    cutoff = time.time() - TMP_GRACE_SECONDS
    for path in root.glob("*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                found.append(path)
        except OSError:
            continue
    return found


def remove_unused() -> int:
    """Delete the lock files nobody holds now (each is taken, then unlinked, then let go). A process
    that opened one just before may then hold a lock nobody else sees, and fetch a file twice: that
    costs time, never correctness (see the top of this module)."""
    root = layout.locks_dir()
    removed = 0
    for path in root.glob("*.lock") if root.is_dir() else []:
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            path.unlink(missing_ok=True)
            removed += 1
        finally:
            lock.release()
    return removed
