"""The content-addressed blob store: files named by their sha256, read-only, installed by rename."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bertvault.cache import layout
from bertvault.io.owners import new_tag

log = logging.getLogger(__name__)


def has(sha256: str | None) -> bool:
    return bool(sha256) and layout.blob_path(sha256).is_file()  # type: ignore[arg-type]


def install(source: Path, sha256: str, *, fsync: bool = True) -> Path:
    """Move a verified file into the store. Atomic: the blob name appears only with all its bytes.

    A blob already present has the same content by construction, so a second installer simply wins
    the rename too; readers never see a partial file.
    """
    blob = layout.blob_path(sha256)
    blob.parent.mkdir(parents=True, exist_ok=True)
    if fsync:
        fd = os.open(source, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.chmod(source, 0o444)  # views hardlink blobs: a stray write through a view must fail
    os.replace(source, blob)
    return blob


def place(source: Path, dest: Path) -> str:
    """Put `source` at `dest` as a hardlink (or a copy where links are impossible), atomically.

    Returns "link" or "copy".
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{new_tag()}.tmp")
    try:
        try:
            os.link(source, tmp)
            how = "link"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            shutil.copyfile(source, tmp)
            how = "copy"
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return how


def blobs() -> Iterator[tuple[str, Path]]:
    """Every (sha256, path) in the store."""
    root = layout.blobs_dir()
    if root.is_dir():
        for path in root.glob("??/*"):
            if path.is_file() and len(path.name) == 64:
                yield path.name, path


def remove(sha256: str) -> int:
    """Delete a blob; return the bytes freed (0 if it was gone)."""
    path = layout.blob_path(sha256)
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
