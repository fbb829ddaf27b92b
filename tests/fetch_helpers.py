"""Helpers for the download tests: a test manifest, bertvault in a subprocess, test data."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import tomli_w


class Manifest:
    """A user manifest (via BERTVAULT_MANIFESTS) whose artifacts point at the test servers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tables: list[str] = []

    def add(self, name: str, *files: dict, kind: str = "dataset", fmt: str = "text") -> str:
        """Declare an artifact (a name declared again replaces the earlier table)."""
        table = tomli_w.dumps({"artifact": [{"name": name, "kind": kind, "format": fmt,
                                             "files": list(files)}]})
        self.tables = [t for t in self.tables if f'name = "{name}"\n' not in t] + [table]
        self.path.write_text("\n".join(self.tables))
        return name


def bertvault_process(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    """bertvault as a separate process (for crashes and races), with the test's environment."""
    return subprocess.Popen([sys.executable, "-m", "bertvault", *map(str, args)],
                            env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)
