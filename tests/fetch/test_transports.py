"""The other transports against their emulators: Azure Blob (Azurite), gs:// (fake-gcs-server),
hf:// (a mock Hub that redirects to a CDN on another port) and file://."""

from __future__ import annotations

import base64
import hashlib
import json

import google_crc32c
from fetch_helpers import bertvault_process, random_bytes, sha256

FAST = ["--chunk-size", "64K", "--retry-wait", "0.01", "--progress", "none", "--json"]
DATA = random_bytes(300_000, seed=21)


def pulled(cli, name: str, *args: str) -> dict:
    result = cli("pull", name, *FAST, *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["files"][0]


def test_azure_blob_content_md5_is_verified(cli, azurite, manifest, home) -> None:
    url = azurite.upload("models", "bert/encoder.pt", DATA)
    manifest.add("azure-art", {"path": "encoder.pt", "urls": [url]})
    result = pulled(cli, "azure-art", "--connections", "3")
    assert (home / "artifacts" / "azure-art" / "encoder.pt").read_bytes() == DATA
    assert f"md5 {hashlib.md5(DATA).hexdigest()} (server content-md5)" in result["checked"]
    assert result["trust"] == "server"


def test_azure_blob_with_a_wrong_stored_md5_is_refused(cli, azurite, manifest, home) -> None:
    url = azurite.upload("models", "bert/wrong.pt", DATA, md5=hashlib.md5(b"something else").digest())
    manifest.add("azure-bad", {"path": "wrong.pt", "urls": [url]})
    result = cli("pull", "azure-bad", *FAST)
    assert result.exit_code == 4
    assert f"md5 expected {hashlib.md5(b'something else').hexdigest()}" in result.stderr
    assert f"got {hashlib.md5(DATA).hexdigest()}" in result.stderr
    assert not (home / "artifacts" / "azure-bad").exists()


def test_gs_objects_are_checked_against_crc32c_and_md5(cli, gcs, manifest, home) -> None:
    url = gcs.upload("bert_models", "2020_02_20/tiny.zip", DATA)
    manifest.add("gcs-art", {"path": "tiny.bin", "urls": [url]})
    result = pulled(cli, "gcs-art", "--connections", "2")
    assert (home / "artifacts" / "gcs-art" / "tiny.bin").read_bytes() == DATA
    crc = google_crc32c.Checksum(DATA).digest().hex()
    assert f"crc32c {crc} (server GCS crc32c)" in result["checked"]
    assert f"md5 {hashlib.md5(DATA).hexdigest()} (server GCS md5Hash)" in result["checked"]
    meta = json.loads((home / "meta" / "gcs-art.json").read_text())["files"]["tiny.bin"]
    assert meta["version"] and meta["info"]["generation"] == meta["version"]  # reads pinned to one generation
    assert meta["hashes"]["crc32c"] == crc


def test_gs_missing_object_is_a_clear_error(cli, gcs, manifest) -> None:
    gcs.upload("bert_models", "present.bin", b"x")
    manifest.add("gcs-missing", {"path": "absent.bin", "urls": ["gs://bert_models/absent.bin"]})
    result = cli("pull", "gcs-missing", *FAST)
    assert result.exit_code == 3 and "gs://bert_models/absent.bin: HTTP 404" in result.stderr


def _hub_env(hub, token: str | None = "hf_secret") -> dict:
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{hub.port}", "HF_HUB_OFFLINE": "0"}
    return {**env, "HF_TOKEN": token} if token else env


def test_hf_files_come_from_the_cdn_without_the_token_and_match_the_lfs_sha256(hub, manifest, home) -> None:
    weights = hub.add_repo_file("google/bert-tiny", "model.safetensors", DATA, lfs=True)
    config = hub.add_repo_file("google/bert-tiny", "config.json", b'{"hidden_size": 32}', lfs=False)
    manifest.add("hub-art", {"path": "model.safetensors", "urls": [weights]},
                 {"path": "config.json", "urls": [config]})
    process = bertvault_process("pull", "hub-art", *FAST, env=_hub_env(hub))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    files = {f["path"]: f for f in json.loads(out)["files"]}
    assert (home / "artifacts" / "hub-art" / "model.safetensors").read_bytes() == DATA
    assert f"sha256 {sha256(DATA)} (server Hub X-Linked-Etag)" in files["model.safetensors"]["checked"]
    assert files["model.safetensors"]["trust"] == "server"
    hub_saw = [s for s in hub.seen if "model.safetensors" in s.path]
    cdn_saw = hub.cdn.seen
    assert hub_saw and all(s.headers.get("authorization") == "Bearer hf_secret" for s in hub_saw)
    assert cdn_saw and all("authorization" not in s.headers for s in cdn_saw)  # dropped across hosts
    assert all(s.headers.get("range") for s in cdn_saw if s.method == "GET")
    config_gets = [s for s in hub.seen if s.path.endswith("config.json") and s.method == "GET"]
    # same host: kept
    assert config_gets and config_gets[0].headers.get("authorization") == "Bearer hf_secret"
    meta = json.loads((home / "meta" / "hub-art.json").read_text())["files"]["model.safetensors"]
    assert meta["info"]["commit"] == hub.COMMIT and meta["version"] == sha256(DATA)


def test_hf_cdn_bytes_that_differ_from_the_lfs_sha256_are_refused(hub, manifest, home) -> None:
    url = hub.add_repo_file("google/bert-tiny", "model.safetensors", DATA, cdn_data=DATA[::-1])
    manifest.add("hub-bad", {"path": "model.safetensors", "urls": [url]})
    process = bertvault_process("pull", "hub-bad", *FAST, env=_hub_env(hub, token=None))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 4
    assert f"sha256 expected {sha256(DATA)} (server Hub X-Linked-Etag), got {sha256(DATA[::-1])}" in err


def test_hf_hub_offline_makes_no_request_to_the_hub(hub, manifest) -> None:
    url = hub.add_repo_file("google/bert-tiny", "model.safetensors", DATA)
    manifest.add("hub-offline", {"path": "model.safetensors", "urls": [url]})
    process = bertvault_process("pull", "hub-offline", *FAST, env={**_hub_env(hub), "HF_HUB_OFFLINE": "1"})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 3 and "HF_HUB_OFFLINE" in err
    assert hub.seen == [] and hub.cdn.seen == []


def test_file_mirror_works_offline(cli, tmp_path, manifest, home) -> None:
    source = tmp_path / "mirror" / "vocab.txt"
    source.parent.mkdir()
    source.write_bytes(DATA)
    manifest.add("local-art", {"path": "vocab.txt", "urls": [source.as_uri()],
                               "md5": hashlib.md5(DATA).hexdigest()})
    result = pulled(cli, "local-art", "--offline")
    assert (home / "artifacts" / "local-art" / "vocab.txt").read_bytes() == DATA
    assert result["trust"] == "pinned"
    again = cli("pull", "local-art", *FAST)
    assert again.exit_code == 0 and json.loads(again.stdout)["files"][0]["status"] == "cached"


def test_digest_headers_of_rfc_3230_are_verified(cli, faulty, manifest) -> None:
    good = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    manifest.add("rfc", {"path": "f.bin",
                         "urls": [faulty.add("f.bin", DATA, headers={"Digest": f"SHA-256={good}"})]})
    result = pulled(cli, "rfc")
    assert f"sha256 {sha256(DATA)} (server digest)" in result["checked"]
