"""Disk space: a full disk is a clear error that keeps the bytes already fetched."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bertvault.errors import DownloadError

DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _sync_file_range() -> Callable[[int], None] | None:
    """Linux's sync_file_range(SYNC_FILE_RANGE_WRITE), which Python's os module lacks."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return lambda fd: call(fd, 0, 0, 2)  # the whole file; 2 = SYNC_FILE_RANGE_WRITE: start, don't wait


_start_writeback = _sync_file_range()


def start_writeback(fd: int) -> None:
    """Start writing the dirty pages of `fd` to disk without waiting for them, so that the fdatasync
    at the end of a download waits for the last fraction of a second of data, not for all of it.
    Best effort: where the call is missing or fails, that final fdatasync simply does all the work."""
    if _start_writeback is not None:
        _start_writeback(fd)


def open_direct(path: Path) -> int | None:
    """`path` opened for writing with O_DIRECT (data goes from our buffers to the disk, not through
    the page cache), or None where the system or filesystem has no direct I/O (macOS, tmpfs)."""
    flag = getattr(os, "O_DIRECT", None)
    if flag is None:
        return None
    try:
        return os.open(path, os.O_RDWR | flag)
    except OSError:
        return None


def preallocate(fd: int, size: int) -> None:
    """Reserve the blocks now, so a full disk shows up before the download rather than during it."""
    try:
        os.posix_fallocate(fd, 0, size)
    except (AttributeError, OSError) as exc:  # no fallocate here (macOS, some filesystems): a sparse file
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise
        os.ftruncate(fd, size)


class DiskFull(DownloadError):
    """No space left while writing: the partial file is kept for a resume, nothing is installed."""


def disk_full(exc: OSError, folder: Path, need: int | None = None, *, resumable: bool = True) -> DiskFull:
    """`resumable`: False for a server that sends the file only whole (no ranges): its partial
    download cannot be resumed, and is removed to give the space back."""
    free = shutil.disk_usage(folder).free
    need_text = f"{need} more bytes needed, " if need is not None else ""
    after = ("the bytes already fetched are kept" if resumable
             else "this server sends the file only whole, so it is fetched again from the start")
    return DiskFull(f"no space left on the device holding {folder} ({need_text}{free} bytes free): "
                    f"{exc.strerror}; free some space (or point BERTVAULT_HOME at a larger disk) and pull "
                    f"again: {after}")


@contextmanager
def disk_full_is_an_error(folder: Path, label: str = "") -> Iterator[None]:
    """Turn a full disk met inside the block into DiskFull (prefixed `label: `), the bytes kept."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        error = disk_full(exc, folder)
        raise DiskFull([f"{label}: {p}" if label else p for p in error.problems]) from None


def ensure_free(folder: Path, need: int) -> None:
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DiskFull(f"not enough free space: {need} more bytes needed, {free} free in {folder}; "
                       f"free some space or point BERTVAULT_HOME at a larger disk")
