"""Trust on first use: the hash seen at the first pull holds later pulls and `verify`; `pin` writes it
into a manifest; `verify` finds damaged blobs and the next pull repairs them."""

from __future__ import annotations

import json
import os
import time
import tomllib

import pytest
import tomli_w
from fetch_helpers import bertvault_process, random_bytes, sha256

from bertvault import paths

Q = ["--progress", "none"]


def test_first_use_hash_holds_a_later_pull(cli, nginx, manifest, home) -> None:
    original = random_bytes(100_000, seed=1)
    url = nginx.put("w.bin", original)
    manifest.add("tofu", {"path": "w.bin", "urls": [url]})
    first = cli("pull", "tofu", *Q)
    assert first.exit_code == 0
    assert f"first use: w.bin sha256 {sha256(original)} recorded" in first.stdout
    assert "bertvault pin tofu" in first.stdout

    # The blob is lost and the publisher silently replaced the file: the recorded hash catches it.
    (home / "blobs" / "sha256" / sha256(original)[:2] / sha256(original)).unlink()
    nginx.put("w.bin", random_bytes(100_000, seed=2))
    again = cli("pull", "tofu", *Q)
    assert again.exit_code == 4
    assert f"sha256 expected {sha256(original)} (recorded at first use" in again.stderr


def test_pin_writes_the_observed_hashes_into_the_manifest(cli, nginx, manifest, home, tmp_path) -> None:
    data = random_bytes(50_000, seed=3)
    manifest.add("pinme", {"path": "p.bin", "urls": [nginx.put("p.bin", data)]},
                 {"path": "opt.bin", "urls": [nginx.put("opt.bin", b"o")], "optional": True})
    assert cli("pin", "pinme").exit_code == 2  # nothing pulled yet
    assert cli("pull", "pinme", *Q).exit_code == 0

    published = tmp_path / "published.toml"
    result = cli("pin", "pinme", "--write", published)
    assert result.exit_code == 0 and "pinned 1 files" in result.stdout
    assert "not pulled, so not pinned: opt.bin" in result.stdout
    table = tomllib.loads(published.read_text())["artifact"][0]
    assert table["name"] == "pinme" and table["files"][0] == {"path": "p.bin", "urls": [nginx.url("p.bin")],
                                                              "sha256": sha256(data), "size": len(data)}
    assert cli("manifest", "validate", published).exit_code == 0

    assert cli("pin", "pinme").exit_code == 0  # into the manifest that declares it
    declared = tomllib.loads(manifest.path.read_text())["artifact"][0]
    assert declared["files"][0]["sha256"] == sha256(data)
    info = json.loads(cli("info", "pinme", "--json").stdout)
    assert info["files"][0]["sha256"] == sha256(data)

    # Now pinned by the manifest itself: a replaced file is refused even after `cache rm`.
    assert cli("cache", "rm", "pinme").exit_code == 0
    nginx.put("p.bin", random_bytes(50_000, seed=4))
    refused = cli("pull", "pinme", *Q)
    assert refused.exit_code == 4 and f"sha256 expected {sha256(data)} (manifest)" in refused.stderr


def test_verify_finds_a_damaged_blob_and_pull_repairs_it(cli, nginx, manifest, home) -> None:
    data = random_bytes(200_000, seed=5)
    manifest.add("fragile", {"path": "f.bin", "urls": [nginx.put("f.bin", data)]})
    assert cli("pull", "fragile", *Q).exit_code == 0
    ok = cli("verify", "fragile", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)[0]["status"] == "ok"

    blob = home / "blobs" / "sha256" / sha256(data)[:2] / sha256(data)
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:  # one flipped byte, as a bad disk would
        f.seek(1000)
        f.write(bytes([data[1000] ^ 1]))
    bad = cli("verify")
    assert bad.exit_code == 4 and "fragile/f.bin: sha256 expected" in bad.stderr
    assert "quarantine" in bad.stderr
    assert not blob.exists() and not (home / "artifacts" / "fragile" / "f.bin").exists()
    assert json.loads((home / "meta" / "fragile.json").read_text())["complete"] is False

    assert cli("pull", "fragile", *Q).exit_code == 0
    assert (home / "artifacts" / "fragile" / "f.bin").read_bytes() == data
    assert cli("verify", "fragile").exit_code == 0


def test_verify_of_nothing_says_so(cli) -> None:
    result = cli("verify")
    assert result.exit_code == 2 and "the cache is empty" in result.stderr


def test_cache_ls_rm_gc(cli, nginx, manifest, home) -> None:
    data = random_bytes(30_000, seed=6)
    manifest.add("keep", {"path": "k.bin", "urls": [nginx.put("k.bin", data)]})
    manifest.add("drop", {"path": "d.bin", "urls": [nginx.put("d.bin", b"d" * 3000)]})
    assert cli("pull", "keep", *Q).exit_code == 0 and cli("pull", "drop", *Q).exit_code == 0
    listing = json.loads(cli("cache", "ls", "--json").stdout)
    assert [a["name"] for a in listing["artifacts"]] == ["drop", "keep"]
    assert listing["bytes"]["blobs"] == 33_000
    cached = {row["name"]: row["cached"] for row in json.loads(cli("list", "--json").stdout)}
    assert cached["keep"] is True and cached["drop"] is True

    removed = cli("cache", "rm", "drop")
    assert removed.exit_code == 0 and "1 blobs" in removed.stdout
    assert not (home / "artifacts" / "drop").exists() and not (home / "meta" / "drop.json").exists()
    assert cli("cache", "rm", "drop").exit_code == 2

    # leftovers: an orphan blob, a partial download of a dead process, a quarantined file
    orphan = home / "blobs" / "sha256" / "ee" / ("ee" * 32)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"orphan")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    dead = home / "partial" / "x.bin-0123456789abcdef@localhost@999999999@abcd"
    dead.mkdir(parents=True)
    (dead / "data").write_bytes(b"partial")
    (home / "quarantine" / "keep").mkdir(parents=True)
    (home / "quarantine" / "keep" / "k.bin.bad").write_bytes(b"bad")

    dry = cli("cache", "gc", "--partial-days", "0", "--dry-run")
    assert dry.exit_code == 0
    assert "would remove 1 orphan blobs, 1 partial downloads, 1 quarantined" in dry.stdout
    assert orphan.exists()
    done = cli("cache", "gc", "--partial-days", "0")
    assert "removed 1 orphan blobs, 1 partial downloads, 1 quarantined files" in done.stdout
    assert not orphan.exists() and not dead.exists()
    assert (home / "artifacts" / "keep" / "k.bin").read_bytes() == data  # what is used stays
    assert cli("verify", "keep").exit_code == 0


def test_a_blob_shared_by_two_artifacts_is_fetched_once(cli, nginx, manifest, home) -> None:
    data = random_bytes(40_000, seed=8)
    url = nginx.put("vocab.txt", data)
    manifest.add("first", {"path": "vocab.txt", "urls": [url], "sha256": sha256(data)})
    manifest.add("second", {"path": "assets/vocab.txt", "urls": [url], "sha256": sha256(data)})
    assert cli("pull", "first", *Q).exit_code == 0
    result = cli("pull", "second", *Q, "--json")
    report = json.loads(result.stdout)
    assert report["files"][0]["status"] == "cached" and report["complete"]
    assert (home / "artifacts" / "second" / "assets" / "vocab.txt").read_bytes() == data
    assert nginx.bytes_sent("/vocab.txt") == len(data)


def test_pin_of_a_builtin_writes_a_pin_table_and_keeps_it_builtin(cli, nginx, home, tmp_path,
                                                                  monkeypatch) -> None:
    data = random_bytes(60_000, seed=11)
    builtin = tmp_path / "builtin"
    builtin.mkdir()
    (builtin / "stock.toml").write_text(tomli_w.dumps({"artifact": [{
        "name": "stock", "kind": "dataset", "format": "text", "description": "a built-in",
        "files": [{"path": "s.bin", "urls": [nginx.put("s.bin", data)], "approx_size": 1000},
                  {"path": "p.bin", "urls": [nginx.put("p.bin", b"p")], "sha256": sha256(b"p"),
                   "size": 1}]}]}))
    monkeypatch.setattr(paths, "builtin_manifests_dir", lambda: builtin)
    assert cli("pull", "stock", *Q).exit_code == 0

    user = paths.default_user_manifest()
    result = cli("pin", "stock")
    assert result.exit_code == 0 and f"pinned 1 files of stock in {user}" in result.stdout
    written = tomllib.loads(user.read_text())
    assert "artifact" not in written  # no copy of the built-in entry: only what was learned
    assert written["pin"][0]["name"] == "stock"
    assert written["pin"][0]["files"] == [{"path": "s.bin", "sha256": sha256(data), "size": len(data)}]

    row = next(r for r in json.loads(cli("list", "--json").stdout) if r["name"] == "stock")
    assert row["builtin"] and not row["user_override"] and row["pinned"] == "all"
    assert (row["size"], row["size_is_exact"]) == (len(data) + 1, True)  # the approximate size gave way
    assert "stock (user)" not in cli("list").stdout and "stock " in cli("list").stdout
    info = json.loads(cli("info", "stock", "--json").stdout)
    assert info["pins"] == [str(user)] and info["description"] == "a built-in"
    again = cli("pin", "stock")
    assert again.exit_code == 0 and "nothing new to pin for stock" in again.stdout

    # The pin holds every later pull, as a published hash would.
    assert cli("cache", "rm", "stock").exit_code == 0
    nginx.put("s.bin", random_bytes(60_000, seed=12))
    refused = cli("pull", "stock", *Q)
    assert refused.exit_code == 4 and f"sha256 expected {sha256(data)} (manifest)" in refused.stderr


HUB_V1 = random_bytes(50_000, seed=31)
HUB_V2 = random_bytes(51_000, seed=32)
CONFIG = b'{"hidden_size": 32}\n'
NEW_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def _hub_env(hub) -> dict:
    return {"HF_ENDPOINT": f"http://127.0.0.1:{hub.port}", "HF_HUB_OFFLINE": "0"}


def _run(*args: str, env: dict) -> tuple[int, str, str]:
    process = bertvault_process(*args, env=env)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


@pytest.mark.timeout(120)
def test_pin_refresh_moves_hub_files_to_the_current_commit_and_says_what_changed(hub, manifest, home) -> None:
    hub.add_repo_file("google/bert-tiny", "model.safetensors", HUB_V1)
    hub.add_repo_file("google/bert-tiny", "config.json", CONFIG, lfs=False)
    old = hub.COMMIT
    manifest.add("hub-art", {"path": "model.safetensors", "urls": [f"hf://google/bert-tiny@{old}/model.safetensors"],
                             "sha256": sha256(HUB_V1), "size": len(HUB_V1)},
                 {"path": "config.json", "urls": [f"hf://google/bert-tiny@{old}/config.json"]})
    env = _hub_env(hub)
    assert _run("pull", "hub-art", *Q, env=env)[0] == 0

    hub.new_commit(NEW_COMMIT)  # new weights on main; the config is the same
    hub.add_repo_file("google/bert-tiny", "model.safetensors", HUB_V2)
    code, out, err = _run("pin", "hub-art", "--refresh", env=env)
    assert code == 0, err
    user = paths.default_user_manifest()
    assert f"hub-art: 2 of 2 Hub files changed; pin written to {user}" in out
    assert (f"model.safetensors: commit {old} -> {NEW_COMMIT}; sha256 {sha256(HUB_V1)} -> {sha256(HUB_V2)}; "
            f"size {len(HUB_V1)} -> {len(HUB_V2)}") in out
    assert f"config.json: commit {old} -> {NEW_COMMIT}; sha256 (none) -> {sha256(CONFIG)}; size (none) -> " \
           f"{len(CONFIG)}" in out
    pin = tomllib.loads(user.read_text())["pin"][0]
    assert pin["name"] == "hub-art" and NEW_COMMIT in pin["note"]
    assert {f["path"]: (f["urls"], f["sha256"], f["size"]) for f in pin["files"]} == {
        "model.safetensors": ([f"hf://google/bert-tiny@{NEW_COMMIT}/model.safetensors"], sha256(HUB_V2),
                              len(HUB_V2)),
        "config.json": ([f"hf://google/bert-tiny@{NEW_COMMIT}/config.json"], sha256(CONFIG), len(CONFIG)),
    }

    # The next pull fetches the new commit's weights, held to the refreshed hash.
    code, out, err = _run("pull", "hub-art", *Q, "--json", env=env)
    assert code == 0, err
    assert (home / "artifacts" / "hub-art" / "model.safetensors").read_bytes() == HUB_V2
    assert json.loads(out)["files"][0]["trust"] == "pinned"
    code, out, _ = _run("pin", "hub-art", "--refresh", env=env)
    assert code == 0 and "hub-art: already at the current commit; nothing written" in out


def test_pin_refresh_offline_is_one_clear_line(manifest) -> None:
    manifest.add("hub-off", {"path": "m.bin", "urls": ["hf://google/bert-tiny/m.bin"]})
    code, _, err = _run("pin", "hub-off", "--refresh", env={"HF_HUB_OFFLINE": "1"})
    assert code == 3 and err.count("\n") == 1
    assert "pin --refresh asks the Hugging Face Hub for the current commit, but offline mode is on" in err
    code, _, err = _run("pin", "hub-off", "--refresh", env={"HF_HUB_OFFLINE": "0", "BERTVAULT_OFFLINE": "1"})
    assert code == 3 and "offline mode is on" in err
    manifest.add("no-hub", {"path": "x.bin", "urls": ["https://example.org/x.bin"]})
    code, _, err = _run("pin", "no-hub", "--refresh", env={})
    assert code == 2 and "no-hub has no hf:// file; --refresh moves Hugging Face Hub pins only" in err
