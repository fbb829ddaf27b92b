"""What every benchmark does first: run bertvault as an installed copy would run."""

from __future__ import annotations

import compileall
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bertvault"


def as_installed() -> None:
    """pip compiles a wheel's modules to bytecode when it installs them; a checkout run with
    PYTHONDONTWRITEBYTECODE=1 (set on some CI machines) would instead recompile every module on
    every run, about 60 ms of each command's start-up. Compile once, and let the children use it."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(PACKAGE, quiet=1)
