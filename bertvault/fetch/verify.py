"""`bertvault verify`: hash again what the cache holds and compare with every recorded and pinned hash.

A blob that no longer matches is moved to quarantine and its view entry removed, and the artifact is
marked incomplete, so the next pull fetches it again and holds it to the same hash. An archive whose
extracted files contradict the manifest's published member hashes is not the published archive: it
is quarantined too, and its record forgotten, so the next pull fetches it afresh.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from bertvault.cache import layout, metadata, store
from bertvault.errors import BertvaultError, ChecksumMismatch, ManifestError
from bertvault.fetch import members as published
from bertvault.fetch.digests import Claim, can_compute, check
from bertvault.io.hashing import hash_file
from bertvault.registry.schema import FileSpec

log = logging.getLogger(__name__)


@dataclass
class Check:
    artifact: str
    path: str
    status: str      # ok | bad | missing
    size: int
    seconds: float
    detail: str = ""


def _specs(name: str) -> dict[str, FileSpec]:
    """The manifest's files by path (empty if the artifact is no longer registered)."""
    from bertvault.registry import load_registry

    try:
        artifact = load_registry().get(name)
    except BertvaultError:
        return {}
    return {f.path: f for f in artifact.files}


def _pins(spec: FileSpec | None) -> list[Claim]:
    if spec is None:
        return []
    return [Claim(a, getattr(spec, a), "manifest") for a in ("sha256", "md5", "crc32c") if getattr(spec, a)]


def _member_problems(name: str, spec: FileSpec | None, record: dict) -> list[str]:
    """What was extracted, against the published member hashes (the view itself is checked against
    what was extracted by _check_view)."""
    if spec is None or not spec.members or "archive" not in record:
        return []
    return published.problems(name, spec, record["archive"].get("members", {}))


def _forget(name: str, path: str) -> None:
    def change(meta: dict) -> None:
        meta["files"].pop(path, None)

    metadata.update(name, change)


def _quarantine_blob(name: str, path: str, sha: str, problems: list[str]) -> None:
    blob = layout.blob_path(sha)
    folder = layout.quarantine_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{os.path.basename(path)}.{time.strftime('%Y%m%dT%H%M%S')}.verify"
    os.replace(blob, target)
    target.with_name(target.name + ".why").write_text("\n".join(problems) + "\n", encoding="utf-8")
    (layout.artifact_dir(name) / path).unlink(missing_ok=True)

    def change(meta: dict) -> None:
        meta["complete"] = False

    metadata.update(name, change)


def _check_view(name: str, path: str, record: dict) -> list[str]:
    """The view entry is the blob itself (same inode), or a copy with the same bytes."""
    entry = layout.artifact_dir(name) / path
    blob = layout.blob_path(record["sha256"])
    if "archive" in record:
        problems = []
        for rel, info in record["archive"].get("members", {}).items():
            member = layout.artifact_dir(name) / rel
            if not member.is_file():
                problems.append(f"{rel} (from {path}) is missing from the view")
            elif hash_file(member, {"sha256"})["sha256"] != info.get("sha256"):
                problems.append(f"{rel} (from {path}) differs from what was extracted")
        return problems
    if not entry.is_file():
        return [f"{path} is missing from the view"]
    if os.path.samestat(entry.stat(), blob.stat()):
        return []
    got = hash_file(entry, {"sha256"})["sha256"]
    return [] if got == record["sha256"] else [f"the view's copy of {path} has sha256 {got}, "
                                               f"not {record['sha256']}"]


def _check_file(name: str, path: str, record: dict, spec: FileSpec | None) -> Check:
    sha = record.get("sha256") or ""
    started = time.monotonic()
    if not store.has(sha):  # (a record whose sha256 is malformed never names a path)
        return Check(name, path, "missing", record.get("size") or 0, 0.0,
                     f"blob {sha[:12]} is gone; run `bertvault pull {name}`")
    blob = layout.blob_path(sha)
    size = blob.stat().st_size
    recorded = [Claim(a, v, "recorded at pull") for a, v in record.get("hashes", {}).items()
                if can_compute(a)]
    claims = [*recorded, *_pins(spec), Claim("size", str(record.get("size")), "recorded at pull")]
    got = hash_file(blob, {c.algo for c in claims if c.algo != "size"} | {"sha256"})
    problems = check(claims, {**got, "size": str(size)})
    wrong_members = [] if problems else _member_problems(name, spec, record)
    if problems or wrong_members:
        problems = problems or wrong_members
        _quarantine_blob(name, path, sha, problems)
        if wrong_members:  # these bytes are not the published archive: hold no later pull to them
            _forget(name, path)
        problems.append(f"moved to quarantine; run `bertvault pull {name}` to fetch it again")
    else:
        problems = _check_view(name, path, record)
    return Check(name, path, "bad" if problems else "ok", size, time.monotonic() - started,
                 "; ".join(problems) or ", ".join(sorted(got)))


def verify_artifact(name: str) -> list[Check]:
    meta = metadata.read(name)
    if not meta["files"]:
        raise ManifestError(f"{name} is not in the cache; nothing to verify (see `bertvault cache ls`)")
    specs = _specs(name)
    return [_check_file(name, path, record, specs.get(path))
            for path, record in sorted(meta["files"].items())]


def verify(names: list[str]) -> list[Check]:
    """Verify the named artifacts (all cached ones when none are named)."""
    from bertvault.registry import load_registry

    if names:
        registry = load_registry()
        names = [registry.get(n).name if n in registry else layout.check_name(n) for n in names]
    else:
        names = metadata.cached()  # a record of nothing (left by an older version) is skipped
        if not names:
            raise ManifestError("the cache is empty; nothing to verify")
    return [c for name in names for c in verify_artifact(name)]


def failures(checks: list[Check]) -> ChecksumMismatch | None:
    bad = [f"{c.artifact}/{c.path}: {c.detail}" for c in checks if c.status != "ok"]
    return ChecksumMismatch(bad) if bad else None
