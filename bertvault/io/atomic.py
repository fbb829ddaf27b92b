"""Outputs that appear whole or not at all: built under a temporary name beside the target, renamed last.

`atomic_output` is for anything a writer builds (a file or a folder of many files): the temporary
carries the writer's pid, so what a killed process left is recognised and removed by the next
writer of the same target (and by `cache gc` in the cache). `write_file` is for small files
written in one call (records, journals, metrics): a temporary, optionally synced, then renamed.
Both give files the permissions `open()` would (the umask's), not mkstemp's private 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from bertvault.io.owners import pid_alive

TAG = ".bvtmp-"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


FILE_MODE = 0o666 & ~_umask()


def remove(path: Path) -> None:
    """A file, link or folder, gone (whatever it was, and if it was there at all)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def temporaries(final: Path) -> list[Path]:
    """Temporaries of `final` left beside it by processes that no longer run."""
    if not final.parent.is_dir():
        return []
    left = []
    for leftover in final.parent.glob(f".{final.name}{TAG}*"):
        pid = leftover.name.rsplit(TAG, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            left.append(leftover)
    return left


def leftovers_in(folder: Path) -> list[Path]:
    """Every temporary under `folder` (any depth) whose writer is gone: what `cache gc` removes."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob(f"*{TAG}*"):
        pid = path.name.rsplit(TAG, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)) and not any(p in found for p in path.parents):
            found.append(path)
    return found


def exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _old_copy(leftover: Path) -> Path | None:
    """For `.NAME.bvtmp-PID-old-X`, the NAME it was moved away from (a folder being replaced)."""
    head, _, rest = leftover.name.rpartition(TAG)
    parts = rest.split("-")
    is_old = len(parts) == 3 and parts[1] == "old" and head.startswith(".")
    return leftover.with_name(head[1:]) if is_old else None


def recover(folder: Path) -> list[Path]:
    """Put back what a process killed between the two renames of a replacement moved away (its
    target is missing), and remove every other temporary of dead processes in `folder`; returns
    what was removed."""
    removed = []
    for leftover in sorted(leftovers_in(folder)):
        original = _old_copy(leftover)
        if original is not None and not exists(original):
            os.replace(leftover, original)
        else:
            remove(leftover)
            removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_output(final: Path, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path (the writer makes a file or a folder there) that becomes `final` when
    the block succeeds; on any failure, Ctrl-C included, nothing of it is left.

    Raises FileExistsError when `final` exists and not `force`."""
    final = final.absolute()
    if exists(final) and not force:
        raise FileExistsError(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in temporaries(final):
        original = _old_copy(leftover)
        if original is not None and not exists(final):  # a replacement killed half-way: the old one
            os.replace(leftover, final)
        else:
            remove(leftover)
    temp = final.parent / f".{final.name}{TAG}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield temp
        if not exists(temp):
            raise FileNotFoundError(f"nothing was written for {final}")
        if exists(final) and (final.is_dir() or temp.is_dir()):  # a folder cannot replace another in one step
            old = final.parent / f".{final.name}{TAG}{os.getpid()}-old-{secrets.token_hex(4)}"
            os.replace(final, old)
            os.replace(temp, final)
            remove(old)
        else:
            os.replace(temp, final)
    except BaseException:
        remove(temp)
        raise


def write_file(path: Path, data: bytes | str, *, sync: bool = False) -> Path:
    """`path` holds `data` entirely, or keeps what it held before (a reader never sees half)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_output(path) as temp:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
    return path
