"""The content-addressed blob store: files named by their sha256, read-only, installed by rename."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on this system: plain copies
    fcntl = None  # type: ignore[assignment]

from bertvault.cache import layout
from bertvault.io.owners import new_tag

log = logging.getLogger(__name__)

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int), a reflink of a whole file
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF)
_BLOCK = 1 << 20


def has(sha256: str | None) -> bool:
    return (isinstance(sha256, str) and bool(layout.SHA256.fullmatch(sha256))
            and layout.blob_path(sha256).is_file())


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
    os.replace(source, blob)
    # Read-only once installed (not before: a source that fails to move stays writable, to resume).
    # Views hardlink blobs, so a stray write through a view fails (except for root, which is why
    # copies for users are never links: see copy()).
    os.chmod(blob, 0o444)
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


def copy(source: Path, dest: Path) -> str:
    """Put a copy of `source` at `dest`, atomically, that shares no bytes a write could change: a
    reflink where the filesystem has them (btrfs, XFS: instant, and no space used until one side
    changes), else a copy in the kernel (copy_file_range), else through a buffer. Never a hardlink.
    Returns "reflink" or "copy"."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{new_tag()}.tmp")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as out:
            how = _clone(src.fileno(), out.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return how


def _clone(src: int, dst: int) -> str:
    if fcntl is not None:
        try:
            fcntl.ioctl(dst, FICLONE, src)
            return "reflink"
        except OSError:  # not this filesystem (ext4, tmpfs), or two filesystems
            pass
    size, done = os.fstat(src).st_size, 0
    kernel_copy = getattr(os, "copy_file_range", None)
    try:
        while kernel_copy is not None and done < size:
            n = kernel_copy(src, dst, size - done, done, done)
            if n <= 0:
                break
            done += n
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
    while done < size and (block := os.pread(src, min(_BLOCK, size - done), done)):
        done += os.pwrite(dst, block, done)
    return "copy"


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
