"""Files a Hugging Face tool already downloaded: an hf:// file found in the HF cache needs no request.

huggingface_hub keeps `HF_HOME/hub/<repo>/snapshots/<commit>/<file>` pointing at a blob named by
the file's ETag, which for an LFS file (weights) is its sha256. `try_to_load_from_cache` finds it
with no request at all (HF_HUB_OFFLINE or not). bertvault copies it (a reflink where the filesystem
can, else a copy: never a link, so no write on either side reaches the other), hashes the copy, and
holds it to the blob's name and to every digest the manifest states, like any download; a blob
that does not match is left alone and the file is downloaded instead.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bertvault import hfuri

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")


def lookup(url: str) -> Path | None:
    """The cached copy of an hf:// file (its blob, links resolved), or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        where = hfuri.parse(url)
    except ValueError:
        return None
    if not where.path:
        return None
    try:
        found = try_to_load_from_cache(where.repo_id, where.path, revision=where.revision,
                                       repo_type=where.repo_type)
    except (OSError, ValueError) as exc:  # an unreadable cache is no cache
        log.debug("Hugging Face cache lookup of %s failed: %s", url, exc)
        return None
    if not isinstance(found, str):
        return None
    path = Path(found).resolve()
    return path if path.is_file() else None


def blob_sha256(path: Path) -> str | None:
    """The sha256 the HF cache names this blob by (an LFS file's ETag); None for git blobs."""
    return path.name if _SHA256.fullmatch(path.name) else None

