"""Artifact views: built complete in a staging folder beside the view, then swapped in atomically.

Linux's renameat2(RENAME_EXCHANGE) swaps the new and old folders in one step, so a reader sees the
old view or the new one, never a half-built or missing one. Elsewhere two renames leave a short
window without a view (never a mixed one).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bertvault.cache import layout
from bertvault.cache.store import copy
from bertvault.io.owners import is_stale, new_tag

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
STAGE_PREFIX = ".stage-"
RETIRED_PREFIX = ".retired-"


def _libc_renameat2():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


_renameat2 = _libc_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False when the system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextmanager
def staging(name: str) -> Iterator[Path]:
    """A fresh folder on the view's filesystem; removed afterwards unless it was published."""
    root = layout.artifacts_root()
    root.mkdir(parents=True, exist_ok=True)
    stage = root / f"{STAGE_PREFIX}{name}@{new_tag()}"
    stage.mkdir()
    try:
        yield stage
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, name: str) -> Path:
    """Make `stage` the view of `name`, replacing any previous view in one step."""
    target = layout.artifact_dir(name)
    for _ in range(10):
        if target.exists():
            if _exchange(stage, target):
                shutil.rmtree(stage, ignore_errors=True)  # stage now holds the old view
                return target
            retired = target.with_name(f"{RETIRED_PREFIX}{name}@{new_tag()}")
            try:
                os.rename(target, retired)
            except FileNotFoundError:
                continue
            shutil.rmtree(retired, ignore_errors=True)
        try:
            os.rename(stage, target)
            return target
        except OSError as exc:  # another process published first: swap again
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    raise OSError(errno.EBUSY, f"could not publish the view of {name}: other processes keep replacing it",
                  str(target))


def remove(name: str) -> bool:
    """Delete a view (renamed away first, so it disappears at once)."""
    target = layout.artifact_dir(name)
    if not target.exists():
        return False
    retired = target.with_name(f"{RETIRED_PREFIX}{name}@{new_tag()}")
    os.rename(target, retired)
    shutil.rmtree(retired, ignore_errors=True)
    return True


def leftovers() -> list[Path]:
    """Staging or retired folders whose process died (this host), for `cache gc`."""
    root = layout.artifacts_root()
    if not root.is_dir():
        return []
    return [p for p in root.iterdir()
            if p.name.startswith((STAGE_PREFIX, RETIRED_PREFIX)) and is_stale(p.name)]


def files(view: Path) -> Iterator[Path]:
    """Regular files and links under a view, relative to it, sorted."""
    for path in sorted(view.rglob("*")):
        if path.is_file() or path.is_symlink():
            yield path.relative_to(view)


def materialize(view: Path, dest: Path) -> int:
    """Copy every file of a view into `dest`, each atomically, links kept as links; return the count.
    Copies, never hardlinks: a user's file must not share its bytes with the cache, where an edit
    would change what `verify` holds to (see store.copy)."""
    count = 0
    for rel in files(view):
        source = view / rel
        if source.is_symlink():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(source))
        else:
            copy(source, dest / rel)
        count += 1
    return count
