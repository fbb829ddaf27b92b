"""Outputs that appear whole or not at all: built under a temporary name beside the target, renamed last."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from bertvault.cache.owners import pid_alive
from bertvault.errors import ConversionError

_TAG = ".bvtmp-"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale(final: Path) -> None:
    """Remove temporaries left by a conversion that was killed (its process is gone)."""
    if not final.parent.is_dir():
        return
    for leftover in final.parent.glob(f".{final.name}{_TAG}*"):
        pid = leftover.name.rsplit(_TAG, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            _remove(leftover)


def refuse_existing(final: Path, force: bool) -> None:
    if (final.exists() or final.is_symlink()) and not force:
        kind = "folder" if final.is_dir() else "file"
        raise ConversionError(f"output {kind} {final} exists; pass --force to replace it, or --out elsewhere")


@contextlib.contextmanager
def atomic_output(final: Path, *, force: bool) -> Iterator[Path]:
    """Yield a temporary path (file or folder, as the writer makes it) that becomes `final` on success."""
    final = final.absolute()
    refuse_existing(final, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    temp = final.parent / f".{final.name}{_TAG}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield temp
        if not temp.exists():
            raise ConversionError(f"nothing was written for {final}")
        if final.exists() or final.is_symlink():
            old = final.parent / f".{final.name}{_TAG}{os.getpid()}-old-{secrets.token_hex(4)}"
            os.replace(final, old)
            os.replace(temp, final)
            _remove(old)
        else:
            os.replace(temp, final)
    except BaseException:
        _remove(temp)
        raise
