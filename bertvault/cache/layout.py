"""Where things live under the cache root ($BERTVAULT_HOME).

    blobs/sha256/<aa>/<digest>      content-addressed file bodies
    artifacts/<name>/...            per-artifact view (hardlinks to blobs, extracted archives)
    meta/<name>.json                what was pulled: source URLs, validators, every hash seen
    partial/<key>[@host@pid@tag]/   in-progress downloads (data + journal); a suffix names the owner
    quarantine/<name>/              downloads that failed verification, kept for inspection
    locks/                          advisory locks (they only save work; correctness never rests on them)
    digests.sqlite                  remembered sha256 of local files, keyed by path and stat (cache/digests.py)

Views are swapped in whole: a new view is staged in artifacts/.stage-* and exchanged atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from bertvault import paths


def blobs_dir() -> Path:
    return paths.home() / "blobs" / "sha256"


def blob_path(sha256: str) -> Path:
    return blobs_dir() / sha256[:2] / sha256


def artifacts_root() -> Path:
    return paths.home() / "artifacts"


def artifact_dir(name: str) -> Path:
    return artifacts_root() / name


def meta_dir() -> Path:
    return paths.home() / "meta"


def meta_path(name: str) -> Path:
    return meta_dir() / f"{name}.json"


def partial_dir() -> Path:
    return paths.home() / "partial"


def locks_dir() -> Path:
    return paths.home() / "locks"


def quarantine_dir() -> Path:
    return paths.home() / "quarantine"


def digests_path() -> Path:
    return paths.home() / "digests.sqlite"


def read_meta(name: str) -> dict | None:
    try:
        return json.loads(meta_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_cached(name: str) -> bool:
    """True once a pull of the artifact's default files has completed."""
    meta = read_meta(name)
    return bool(meta and meta.get("complete"))


def converted_dir(name: str, fmt: str) -> Path:
    """Default output of `bertvault convert NAME --to FMT`, where `pretrain --from NAME` looks."""
    return paths.home() / "converted" / name / fmt
