"""Where things live under the cache root ($BERTVAULT_HOME).

    blobs/sha256/<aa>/<digest>      content-addressed file bodies
    artifacts/<name>/...            per-artifact view (hardlinks to blobs, extracted archives)
    meta/<name>.json                what was pulled: source URLs, validators, every hash seen
    partial/<key>[@host@pid@tag]/   in-progress downloads (data + journal); a suffix names the owner
    quarantine/<name>/              downloads that failed verification, kept for inspection
    locks/                          advisory locks (they only save work; correctness never rests on them)
    digests.sqlite                  remembered sha256 of local files, by path and stat (cache/digests.py)

Views are swapped in whole: a new view is staged in artifacts/.stage-* and exchanged atomically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bertvault import paths
from bertvault.errors import UsageError

# An artifact name as manifests allow it (registry/schema.py): it names one folder and one file here,
# so it can never be a path ("", ".", "..", "a/b") or a hidden name (".stage-*" views being built).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_name(name: str) -> bool:
    return bool(NAME.fullmatch(name))


def check_name(name: str) -> str:
    """`name`, if it is an artifact name; else UsageError (before any path is built from it)."""
    if not is_name(name):
        raise UsageError(f"{name!r} is not an artifact name (letters, digits, '.', '_' and '-', starting "
                         f"with a letter or digit); see `bertvault cache ls`")
    return name


def blobs_dir() -> Path:
    return paths.home() / "blobs" / "sha256"


SHA256 = re.compile(r"[0-9a-f]{64}")


def blob_path(sha256: str) -> Path:
    if not SHA256.fullmatch(sha256):  # a damaged record must not name a path outside the store
        raise ValueError(f"{sha256!r} is not a sha256 digest")
    return blobs_dir() / sha256[:2] / sha256


def artifacts_root() -> Path:
    return paths.home() / "artifacts"


def artifact_dir(name: str) -> Path:
    return artifacts_root() / check_name(name)


def meta_dir() -> Path:
    return paths.home() / "meta"


def meta_path(name: str) -> Path:
    return meta_dir() / f"{check_name(name)}.json"


def partial_dir() -> Path:
    return paths.home() / "partial"


def prepare_items_dir() -> Path:
    """Finished work items of `prepare --engine ray` runs, kept until their output is committed."""
    return paths.home() / "prepare-items"


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


def converted_root() -> Path:
    return paths.home() / "converted"


def converted_dir(name: str, fmt: str) -> Path:
    """Default output of `bertvault convert NAME --to FMT`, where `pretrain --from NAME` looks."""
    return converted_root() / name / fmt
