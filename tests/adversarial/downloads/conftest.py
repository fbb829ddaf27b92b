"""Fixtures for the hostile-server and damaged-cache cases: the download tests' fault-injecting
server, mock Hub, test manifest and CLI runner, and a tiny tmpfs to fill up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servers import FaultServer, MockHub, Nginx
from typer.testing import CliRunner

# fetch_helpers (test manifests, bertvault in a subprocess, test data), shared with tests/fetch
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fetch"))
from fetch_helpers import Manifest  # noqa: E402


@pytest.fixture
def nginx(tmp_path):
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; see .ci/run)")
    server = Nginx(tmp_path, rate="1m")
    yield server
    server.close()


@pytest.fixture
def faulty():
    server = FaultServer()
    yield server
    server.close()


@pytest.fixture
def hub():
    cdn = FaultServer()
    server = MockHub(cdn)
    yield server
    server.close()
    cdn.close()


@pytest.fixture
def manifest(tmp_path, monkeypatch) -> Manifest:
    path = tmp_path / "manifests" / "test.toml"
    path.parent.mkdir()
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(path))
    return Manifest(path)


@pytest.fixture
def home(isolated_env) -> Path:
    return Path(os.environ["BERTVAULT_HOME"])


@pytest.fixture
def cli():
    """bertvault in this process; returns the click Result (stdout, stderr, exit_code). An exception
    that escapes the CLI (a traceback a user would see) fails the test."""
    from bertvault.cli import app

    runner = CliRunner()

    def run(*args: str, env: dict | None = None):
        result = runner.invoke(app, [str(a) for a in args], env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


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
