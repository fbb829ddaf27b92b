from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hub_recorder import HubRecorder


@pytest.fixture
def hub():
    recorder = HubRecorder()
    yield recorder
    recorder.close()


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """A real `bertvault` process: huggingface_hub reads its endpoint and offline mode at import."""
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    return subprocess.run([sys.executable, "-m", "bertvault", *args], capture_output=True, text=True,
                          env=full, timeout=600)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def demo_checkpoint(cli):
    """The embedded demo checkpoint, pulled into this test's cache (a TF1 checkpoint folder)."""
    from bertvault.cache import layout

    result = cli("pull", "bert-demo-tiny", "--progress", "none")
    assert result.returncode == 0, result.stderr
    return layout.artifact_dir("bert-demo-tiny")
