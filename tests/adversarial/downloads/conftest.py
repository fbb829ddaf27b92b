"""A tiny tmpfs to fill up, for the hostile-server and damaged-cache cases (the servers, manifest and
CLI runner are the shared download fixtures, tests/download_fixtures.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def mount_tmpfs(path: Path, *options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip()}); needs root, as in CI's container")


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, *options) → a fresh tmpfs folder (needs root); all are unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str, *options: str) -> Path:
        path = tmp_path / f"tmpfs{len(mounted)}"
        mount_tmpfs(path, f"size={size}", *options)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)
