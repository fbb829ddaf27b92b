"""Per-artifact pull records (meta/<name>.json), written atomically.

    {"name": ..., "complete": bool, "updated": ISO time,
     "files": {<path>: {"sha256", "size", "url", "etag", "last_modified", "version", "hashes": {algo: hex},
                        "server_digests": {algo: hex}, "trust": "pinned" | "recorded" | "server" | "first-use"
                        | "published (members)" | "partly published (members)", "fetched": ISO time,
                        "archive": {"type", "root", "members": {path: {size, sha256}},
                                    "verified", "unlisted"}}}}

`complete` (read by `layout.is_cached`) is true once every non-optional file is in the view.
The per-file sha256 is also the trust-on-first-use record: later pulls and `verify` hold the file to it.
A record always names at least one file: one left with none (a failed first pull) is removed, so
nothing lists, verifies or keeps an artifact that was never fetched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from bertvault.cache import layout
from bertvault.io.owners import new_tag


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def empty(name: str) -> dict:
    return {"name": name, "complete": False, "updated": None, "files": {}}


def _sound(meta: object) -> bool:
    """A record as this module writes it: every file a mapping, every sha256 a digest (a damaged one
    could otherwise name a path outside the blob store)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        return False
    records = meta["files"].values()
    return all(isinstance(r, dict) and (r.get("sha256") is None or (isinstance(r["sha256"], str)
                                                                    and layout.SHA256.fullmatch(r["sha256"])))
               for r in records)


def read(name: str) -> dict:
    """The record of `name`; an empty one if there is none, or it is damaged (never trusted)."""
    meta = layout.read_meta(name)
    return meta if _sound(meta) else empty(name)  # type: ignore[return-value]


def write(name: str, meta: dict) -> None:
    path = layout.meta_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{new_tag()}.tmp")
    try:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def update(name: str, change: Callable[[dict], None]) -> dict:
    """Read, change and write the record (or remove it, once it names no file). The lock only avoids
    lost updates between processes; the file itself is replaced atomically, so a reader never sees
    half a record either way."""
    layout.locks_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.locks_dir() / f"meta-{layout.check_name(name)}.lock")):
        meta = read(name)
        change(meta)
        meta["updated"] = now()
        if meta["files"]:
            write(name, meta)
        else:
            remove(name)
        return meta


def record_file(name: str, path: str, record: dict) -> None:
    def change(meta: dict) -> None:
        meta["files"][path] = {**meta["files"].get(path, {}), **record}

    update(name, change)


def names() -> list[str]:
    """Artifacts with a record file (empty or unreadable ones included: see `cached`)."""
    root = layout.meta_dir()
    return sorted(p.stem for p in root.glob("*.json") if layout.is_name(p.stem)) if root.is_dir() else []


def cached() -> list[str]:
    """Artifacts whose record names at least one file."""
    return [name for name in names() if read(name)["files"]]


def unused() -> list[str]:
    """Records that name no file, or cannot be read: leftovers of older runs, for `cache gc`."""
    return [name for name in names() if not read(name)["files"]]


def remove(name: str) -> None:
    Path(layout.meta_path(name)).unlink(missing_ok=True)
