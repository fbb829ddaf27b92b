"""Per-artifact pull records (meta/<name>.json), written atomically.

    {"name": ..., "complete": bool, "updated": ISO time,
     "files": {<path>: {"sha256", "size", "url", "etag", "last_modified", "version", "hashes": {algo: hex},
                        "server_digests": {algo: hex}, "trust": "pinned" | "recorded" | "server" | "first-use"
                        | "published (members)" | "partly published (members)", "fetched": ISO time,
                        "archive": {"type", "root", "members": {path: {size, sha256}},
                                    "verified", "unlisted"}}}}

`complete` (read by `layout.is_cached`) is true once every non-optional file is in the view.
The per-file sha256 is also the trust-on-first-use record: later pulls and `verify` hold the file to it.
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


def read(name: str) -> dict:
    meta = layout.read_meta(name)
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        return empty(name)
    return meta


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
    """Read, change and write the record. The lock only avoids lost updates between processes; the
    file itself is replaced atomically, so a reader never sees half a record either way."""
    layout.locks_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(layout.locks_dir() / f"meta-{name}.lock")):
        meta = read(name)
        change(meta)
        meta["updated"] = now()
        write(name, meta)
        return meta


def record_file(name: str, path: str, record: dict) -> None:
    def change(meta: dict) -> None:
        meta["files"][path] = {**meta["files"].get(path, {}), **record}

    update(name, change)


def names() -> list[str]:
    root = layout.meta_dir()
    return sorted(p.stem for p in root.glob("*.json")) if root.is_dir() else []


def remove(name: str) -> None:
    Path(layout.meta_path(name)).unlink(missing_ok=True)
