"""hf:// files a Hugging Face tool already downloaded come from the HF cache: no request, online or
offline, held to the blob's sha256 like a download, and never sharing bytes with HF's copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fetch_helpers import bertvault_process, random_bytes, sha256

pytestmark = pytest.mark.timeout(120)
FAST = ["--chunk-size", "64K", "--retry-wait", "0.01", "--progress", "none", "--json"]
DATA = random_bytes(200_000, seed=33)


def _hub_env(hub, offline: bool) -> dict:
    return {"HF_ENDPOINT": f"http://127.0.0.1:{hub.port}", "HF_HUB_OFFLINE": "1" if offline else "0"}


def _download_with_huggingface_hub(hub, repo: str, name: str) -> str:
    """What transformers does the first time: huggingface_hub fills HF_HOME/hub."""
    code = (f"from huggingface_hub import hf_hub_download; "
            f"print(hf_hub_download({repo!r}, {name!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **_hub_env(hub, offline=False)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("offline", [True, False])
def test_a_file_in_the_hf_cache_is_used_without_a_request(hub, manifest, home, offline) -> None:
    url = hub.add_repo_file("org/tiny", "model.safetensors", DATA, lfs=True)
    hf_copy = _download_with_huggingface_hub(hub, "org/tiny", "model.safetensors")
    hub.seen.clear()
    hub.cdn.seen.clear()
    manifest.add("from-hf-cache", {"path": "model.safetensors", "urls": [url]})
    process = bertvault_process("pull", "from-hf-cache", *FAST, env=_hub_env(hub, offline))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert hub.seen == [] and hub.cdn.seen == []  # not one request
    mine = home / "artifacts" / "from-hf-cache" / "model.safetensors"
    assert mine.read_bytes() == DATA
    # a copy: writes on one side never reach the other
    assert not os.path.samestat(mine.stat(), os.stat(hf_copy))
    record = json.loads(out)["files"][0]
    assert f"sha256 {sha256(DATA)} (server Hugging Face cache)" in record["checked"]
    assert "from the Hugging Face cache" in record["url"]


def test_a_damaged_hf_cache_copy_is_refused_and_downloaded_again(hub, manifest, home) -> None:
    url = hub.add_repo_file("org/tiny", "model.safetensors", DATA, lfs=True)
    hf_copy = _download_with_huggingface_hub(hub, "org/tiny", "model.safetensors")
    blob = os.path.realpath(hf_copy)
    with open(blob, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    hub.seen.clear()
    manifest.add("damaged-hf-cache", {"path": "model.safetensors", "urls": [url]})
    process = bertvault_process("pull", "damaged-hf-cache", *FAST, env=_hub_env(hub, offline=False))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "the Hugging Face cache's copy does not match" in err
    assert (home / "artifacts" / "damaged-hf-cache" / "model.safetensors").read_bytes() == DATA
    assert any("model.safetensors" in s.path for s in hub.seen)  # fetched from the Hub instead
