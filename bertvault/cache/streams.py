"""Folders of streamed shards: stream/<key>[@host@pid@tag]/, one per reader of a streamed dataset.

A training process that streams its data from a bucket keeps the few shards it reads next in a
folder of its own (a prefetcher bounds its size). As with partial downloads, a process claims the
folder by renaming it to a name carrying its own host and pid, so two runs never share one, and a
folder left by a process that stopped (a failure, Ctrl-C, kill -9) is adopted by the next
run with the same key once that process has ended: a resumed run finds the shards it was about to
read. `cache gc` removes the folders of dead processes (their shards are fetched again when needed).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from bertvault import paths
from bertvault.io.owners import is_stale, new_tag

log = logging.getLogger(__name__)


def root() -> Path:
    return paths.home() / "stream"


def claim(key: str) -> Path:
    """A folder for `key` owned by this process: one left by a dead process, else a new one."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    mine = base / f"{key}@{new_tag()}"
    for candidate in [base / key, *sorted(p for p in base.glob(f"{key}@*") if is_stale(p.name))]:
        try:
            os.rename(candidate, mine)
        except (FileNotFoundError, OSError):
            continue  # not there, or another process took it first
        log.debug("adopted streamed shards in %s", candidate)
        return mine
    mine.mkdir()
    return mine


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def unowned() -> list[Path]:
    """Folders left by dead processes of this host, for `cache gc` (another host's are left alone: its
    pids mean nothing here)."""
    base = root()
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and ("@" not in p.name or is_stale(p.name)))
