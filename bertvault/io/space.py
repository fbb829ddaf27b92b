"""Disk space: reserve blocks before writing, write around the page cache, and say clearly when a
disk is full.

A full disk is an OSError here (errno in DISK_FULL); the caller turns it into its own one-line
error with `no_space`, which gives the numbers and the fix."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

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


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the device holding `folder` (or its nearest existing parent); None if unknown."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def no_space(folder: Path, need: int | None = None, what: str = "") -> str:
    """The message for a full disk: where, how much is needed and free, and what to do."""
    free = free_bytes(folder)
    numbers = ", ".join(part for part in (
        f"{need} more bytes needed" if need is not None else "",
        f"{free} free" if free is not None else "") if part)
    subject = f"{what}: " if what else ""
    return f"{subject}no space left on the device holding {folder}" + (f" ({numbers})" if numbers else "")


def lacking(folder: Path, need: int) -> int | None:
    """How many bytes short `folder`'s device is of `need` (None when it has enough or cannot tell)."""
    free = free_bytes(folder)
    return need - free if free is not None and need > free else None
