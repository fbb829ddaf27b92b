"""`bertvault cache ls | rm | gc`: what the cache holds, forgetting an artifact, and dropping what no
artifact needs (orphan blobs, stale partial downloads, quarantine, records of nothing, leftovers of
dead processes, streamed shards no running process reads)."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bertvault.cache import layout, locks, metadata, store, streams, view
from bertvault.errors import ManifestError
from bertvault.io import atomic
from bertvault.io.owners import is_stale


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def referenced() -> set[str]:
    """sha256 of every blob some artifact record uses."""
    return {r["sha256"] for name in metadata.cached() for r in metadata.read(name)["files"].values()
            if r.get("sha256")}


def listing() -> list[dict]:
    rows = []
    for name in metadata.cached():
        meta = metadata.read(name)
        files = meta["files"]
        trust = sorted({r.get("trust", "?") for r in files.values()})
        rows.append({
            "name": name, "files": len(files), "complete": bool(meta.get("complete")),
            "size": sum(r.get("size") or 0 for r in files.values()),
            "trust": ", ".join(trust), "updated": meta.get("updated"),
            "view": str(layout.artifact_dir(name)),
        })
    return rows


def totals() -> dict[str, int]:
    root = {"blobs": layout.blobs_dir(), "partial": layout.partial_dir(),
            "quarantine": layout.quarantine_dir()}
    return {k: _size(v) if v.exists() else 0 for k, v in root.items()}


def remove(name: str) -> dict:
    """Forget an artifact: its view, its record, and the blobs no other artifact uses. `name` must be
    an artifact name: nothing else is touched, whatever path it might spell."""
    layout.check_name(name)
    if name not in metadata.names() and not layout.artifact_dir(name).exists():
        raise ManifestError(f"{name} is not in the cache (see `bertvault cache ls`)")
    mine = {r["sha256"] for r in metadata.read(name)["files"].values() if r.get("sha256")}
    view.remove(name)
    metadata.remove(name)
    others = referenced()
    freed = sum(store.remove(sha) for sha in mine - others)
    return {"name": name, "blobs_removed": len(mine - others), "bytes_freed": freed}


@dataclass
class GcReport:
    blobs: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    # of dead processes (streamed shards too), failed pulls, older versions
    leftovers: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    digests_forgotten: int = 0  # remembered sha256 of local files that no longer exist


BLOB_GRACE_SECONDS = 120  # a blob this young may belong to a pull that has not recorded it yet


_RECORD_TMP = re.compile(r"\..+\.json\.(?P<tag>[^@]+@\d+@[0-9a-f]+)\.tmp")  # see metadata.write


def temporary_files() -> list[Path]:
    """Files a process was writing when it died: `.NAME.json.TAG.tmp` records, and lock owners."""
    found = []
    meta = layout.meta_dir()
    if meta.is_dir():
        for path in meta.glob(".*.tmp"):
            match = _RECORD_TMP.fullmatch(path.name)
            if match and is_stale(match["tag"]):
                found.append(path)
    return found + locks.leftovers()


def _doomed(report: GcReport, partial_age_days: float) -> list[tuple[list[str], Path]]:
    from bertvault.cache.partial import stale

    keep = referenced()
    now = time.time()
    doomed: list[tuple[list[str], Path]] = []
    doomed += [(report.blobs, path) for sha, path in store.blobs()
               if sha not in keep and now - path.stat().st_mtime > BLOB_GRACE_SECONDS]
    age = partial_age_days * 86400
    kept_items = _untouched(layout.prepare_items_dir(), age, now)
    doomed += [(report.partials, p) for p in stale(age, now) + kept_items]
    quarantine = layout.quarantine_dir()
    if quarantine.is_dir():
        doomed += [(report.quarantined, p) for p in sorted(quarantine.rglob("*")) if p.is_file()]
    records = [layout.meta_path(name) for name in metadata.unused()]  # records of nothing, or unreadable
    outputs = atomic.leftovers_in(layout.converted_root())  # conversions killed half-way
    doomed += [(report.leftovers, p) for p in view.leftovers() + temporary_files() + records + outputs
               + streams.unowned()]
    return doomed


def _untouched(root: Path, seconds: float, now: float) -> list[Path]:
    """Folders in `root` that nothing was written to for `seconds` (the kept items of `prepare
    --engine ray` runs that were never run again)."""
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            newest = max((p.stat().st_mtime for p in path.iterdir()), default=path.stat().st_mtime)
        except OSError:
            continue
        if now - newest >= seconds:
            found.append(path)
    return found


def gc(*, partial_age_days: float = 7.0, dry_run: bool = False) -> GcReport:
    """Drop orphan blobs, partial downloads untouched for `partial_age_days` or holding no byte (and
    not in use), quarantined files, records of nothing, staging folders, temporary files and
    half-written conversion outputs of dead processes, lock files nobody holds, folders of streamed
    shards that no running process reads, and remembered digests of deleted files."""
    report = GcReport()
    for bucket, path in _doomed(report, partial_age_days):
        bucket.append(str(path))
        report.bytes_freed += _size(path)
        if dry_run:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not dry_run:
        from bertvault.cache import digests

        locks.remove_unused()
        report.digests_forgotten = digests.forget_missing()
    return report
