"""Partial downloads: a folder per remote file holding `data` (preallocated, written in place) and
`journal` (see journal.py).

Correctness never rests on a lock: a process claims a folder by renaming it to a name carrying its
own host, pid and a random tag, and only ever writes inside the folder it claimed. A folder left by
a dead process of this host, or given back as resumable, can be claimed (renamed) by exactly one
process; everyone else starts their own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bertvault.cache import layout
from bertvault.cache.journal import Journal
from bertvault.io.owners import HOST, in_use, is_stale, new_tag, owner_of

log = logging.getLogger(__name__)


def key(url: str) -> str:
    """A readable, unique folder name for a URL: <basename>-<hash of the URL>."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", url.rstrip("/").rsplit("/", 1)[-1])[:60] or "file"
    return f"{base}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


@dataclass
class Partial:
    dir: Path
    key: str
    adopted: bool

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def journal(self) -> Path:
        return self.dir / "journal"

    @classmethod
    def claim(cls, url: str) -> Partial:
        root = layout.partial_dir()
        root.mkdir(parents=True, exist_ok=True)
        name = key(url)
        mine = root / f"{name}@{new_tag()}"
        candidates = [root / name, *sorted(p for p in root.glob(f"{name}@*") if is_stale(p.name))]
        for candidate in candidates:
            try:
                os.rename(candidate, mine)
            except FileNotFoundError:
                continue  # not there, or another process claimed it first
            log.debug("resuming partial download %s", candidate)
            return cls(mine, name, adopted=True)
        mine.mkdir()
        return cls(mine, name, adopted=False)

    def resumable(self) -> bool:
        """True when the journal says some bytes are written here, of a file that can be asked for
        in ranges (the rest of a file a server sends only whole can never be asked for)."""
        loaded = Journal(self.journal).load() if self.data.exists() else None
        return loaded is not None and loaded[0].get("ranges", True) and loaded[1].total() > 0

    def give_back(self) -> None:
        """Keep the bytes for a later resume: rename to the shared resumable name. A folder with
        nothing to resume (stopped while connecting, or a file sent only whole) is removed."""
        if not self.resumable():
            self.discard()
            return
        target = self.dir.parent / self.key
        try:
            os.rename(self.dir, target)
        except OSError:  # another resumable copy exists; one is enough
            self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def stale(max_age_seconds: float, now: float) -> list[Path]:
    """Partial folders that no live process of this host owns, and that nobody touched for
    `max_age_seconds` or that hold no byte to resume (folders of other hosts sharing the cache are
    judged by age alone: theirs may be starting)."""
    root = layout.partial_dir()
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if in_use(path.name):
            continue
        try:
            newest = max((p.stat().st_mtime for p in path.iterdir()), default=path.stat().st_mtime)
        except OSError:
            continue
        owner = owner_of(path.name)
        ours = owner is None or owner[0] == HOST
        if now - newest >= max_age_seconds or (ours and not Partial(path, path.name, True).resumable()):
            found.append(path)
    return found


def present_bytes(url: str) -> int:
    """Bytes already allocated by resumable partial downloads of `url` (they need no new space)."""
    root = layout.partial_dir()
    name = key(url)
    found = 0
    for path in [root / name, *root.glob(f"{name}@*")]:
        try:
            found = max(found, (path / "data").stat().st_blocks * 512)
        except OSError:
            continue
    return found
