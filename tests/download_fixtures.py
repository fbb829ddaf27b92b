"""Fixtures of every test that downloads (tests/fetch, tests/adversarial): the real servers on loopback,
a user manifest pointing at them, the cache root, and bertvault run in this process. Each server
fixture skips (with the reason) only when its program is not installed; `.ci/run` installs them all.
Registered for the whole suite by tests/conftest.py (`pytest_plugins`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fetch_helpers import Manifest
from servers import Azurite, FaultServer, MockHub, Nginx
from typer.testing import CliRunner


def _need(program: str) -> str:
    path = shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None)
    if path is None:
        pytest.skip(f"{program} is not installed (Debian: apt-get install {program}; see .ci/run)")
    return path


@pytest.fixture
def nginx(tmp_path):
    _need("nginx")
    server = Nginx(tmp_path, rate="1m")
    yield server
    server.close()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    if shutil.which("azurite-blob") is None:
        pytest.skip("azurite-blob is not installed (npm install -g azurite; see .ci/run)")
    server = Azurite(tmp_path_factory.mktemp("azurite"))
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
