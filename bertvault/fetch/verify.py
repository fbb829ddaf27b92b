"""`bertvault verify`: hash again what the cache holds and compare with every recorded and pinned hash.

A blob that no longer matches is moved to quarantine and its view entry removed, and the artifact is
marked incomplete, so the next pull fetches it again and holds it to the same hash.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from bertvault.cache import layout, metadata, store
from bertvault.errors import BertvaultError, ChecksumMismatch, ManifestError
from bertvault.fetch.digests import Claim, can_compute, check
from bertvault.io.hashing import hash_file

log = logging.getLogger(__name__)


@dataclass
class Check:
    artifact: str
    path: str
    status: str      # ok | bad | missing
    size: int
    seconds: float
    detail: str = ""


def _pins(name: str) -> dict[str, list[Claim]]:
    """Manifest pins per file path (empty if the artifact is no longer registered)."""
    from bertvault.registry import load_registry

    try:
        artifact = load_registry().get(name)
    except BertvaultError:
        return {}
    algos = ("sha256", "md5", "crc32c")
    return {f.path: [Claim(a, getattr(f, a), "manifest") for a in algos if getattr(f, a)]
            for f in artifact.files}


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
    if got == record["sha256"]:
        return []
    return [f"the view's copy of {path} has sha256 {got}, not {record['sha256']}"]


def verify_artifact(name: str) -> list[Check]:
    meta = metadata.read(name)
    if not meta["files"]:
        raise ManifestError(f"{name} is not in the cache; nothing to verify (see `bertvault cache ls`)")
    pins = _pins(name)
    checks = []
    for path, record in sorted(meta["files"].items()):
        sha = record.get("sha256") or ""
        started = time.monotonic()
        if not store.has(sha):
            checks.append(Check(name, path, "missing", record.get("size") or 0, 0.0,
                                f"blob {sha[:12]} is gone; run `bertvault pull {name}`"))
            continue
        blob = layout.blob_path(sha)
        recorded = [Claim(a, v, "recorded at pull") for a, v in record.get("hashes", {}).items()
                    if can_compute(a)]
        claims = recorded + pins.get(path, []) + [Claim("size", str(record.get("size")), "recorded at pull")]
        got = hash_file(blob, {c.algo for c in claims if c.algo != "size"} | {"sha256"})
        problems = check(claims, {**got, "size": str(blob.stat().st_size)})
        if problems:
            _quarantine_blob(name, path, sha, problems)
            problems.append(f"moved to quarantine; run `bertvault pull {name}` to fetch it again")
        else:
            problems = _check_view(name, path, record)
        size = blob.stat().st_size if blob.exists() else 0
        checks.append(Check(name, path, "bad" if problems else "ok", size, time.monotonic() - started,
                            "; ".join(problems) or ", ".join(sorted(got))))
    return checks


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
