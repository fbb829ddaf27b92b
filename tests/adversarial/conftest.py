"""Fixtures for the hostile-input tests: bertvault run in this process, and a user manifest whose
artifacts are served from local files (file: URLs), so a hostile archive reaches a real `pull`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner


class LocalManifest:
    """A user manifest (via BERTVAULT_MANIFESTS); `add` writes every table given so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tables: list[str] = []

    def add(self, name: str, *files: dict, kind: str = "dataset", fmt: str = "text") -> str:
        lines = [f'[[artifact]]\nname = "{name}"\nkind = "{kind}"\nformat = "{fmt}"\n']
        for spec in files:
            fields = "".join(f"{k} = {json.dumps(v)}\n" for k, v in spec.items())
            lines.append("[[artifact.files]]\n" + fields)
        self.tables.append("\n".join(lines))
        self.path.write_text("\n".join(self.tables))
        return name


@pytest.fixture
def manifest(tmp_path, monkeypatch) -> LocalManifest:
    path = tmp_path / "manifests" / "hostile.toml"
    path.parent.mkdir()
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(path))
    return LocalManifest(path)


@pytest.fixture
def home(isolated_env) -> Path:
    return Path(os.environ["BERTVAULT_HOME"])


@pytest.fixture
def cli():
    """bertvault in this process; returns the click Result. Any exception but SystemExit fails the test:
    that is the traceback a user would have seen."""
    from bertvault.cli import app

    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run
