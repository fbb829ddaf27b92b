"""Provenance: every artifact bertvault writes carries a record of where it came from.

`provenance.json` sits inside an output folder (or beside an output file as `<file>.provenance.json`):
the sources with their sha256, the bertvault version, the command line, when, and step-specific
details (conversion check, training settings). `bertvault info PATH` shows it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bertvault import __version__

RECORD = "provenance.json"


def record_path(output: Path) -> Path:
    return output / RECORD if output.is_dir() else output.with_name(output.name + ".provenance.json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


HASH_LIMIT = 8 << 30  # sources larger than this (a whole corpus) are listed by size, not re-hashed


def describe_source(source: str | Path, artifact: str | None = None, root: Path | None = None) -> dict:
    """A source as the record lists it: name or path, and the sha256 of each of its files.
    `root` is where a registered name or URL was found locally (the cache view)."""
    path = Path(root or source)
    entry: dict = {"source": str(source)}
    if artifact:
        entry["artifact"] = artifact
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.is_file() and f.name != RECORD and not f.name.startswith(".")
    ) if path.is_dir() else []
    base = path.parent if path.is_file() else path
    if sum(f.stat().st_size for f in files) <= HASH_LIMIT:
        entry["files"] = {str(f.relative_to(base)): file_sha256(f) for f in files}
    else:
        entry["sizes"] = {str(f.relative_to(base)): f.stat().st_size for f in files}
    return entry


def describe(source: str | None) -> dict:
    """describe_source for what a user typed: a path, a registered name (its cache view) or a URL."""
    if not source or source == "scratch":
        return {"source": source or "none"}
    if Path(source).expanduser().exists():
        return describe_source(Path(source).expanduser())
    matches = sorted(Path(p) for p in glob.glob(str(Path(source).expanduser())))
    if matches:  # a glob of data files
        entry: dict = {"source": source, "files": {}}
        for match in matches:
            entry["files"].update(describe_source(match).get("files", {}))
        return entry
    from bertvault.sources import resolve

    resolved = resolve(source)
    return describe_source(source, resolved.artifact.name if resolved.artifact else None, resolved.path)


def write_record(output: Path, step: str, sources: list[dict], **details: object) -> Path:
    """Write the record for `output` atomically; `step` is convert, pretrain, finetune, prepare..."""
    record = {
        "step": step,
        "bertvault_version": __version__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": sources,
        **details,
    }
    target = record_path(output)
    fd, tmp = tempfile.mkstemp(prefix=".provenance-", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump(record, stream, indent=2, default=str)
    os.replace(tmp, target)
    return target


def read_record(output: Path) -> dict | None:
    try:
        return json.loads(record_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
