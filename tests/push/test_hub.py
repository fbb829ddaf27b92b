"""`bertvault push … hf://` against a local endpoint that records what the Hub would receive."""

from __future__ import annotations

import json

from safetensors.numpy import load


def test_push_converts_to_an_hf_folder_with_a_model_card(hub, cli, demo_checkpoint):
    result = cli("push", "bert-demo-tiny", "hf://me/demo-bert", HF_ENDPOINT=hub.endpoint,
                 HF_TOKEN="hf_test_token", HF_HUB_OFFLINE="0")
    assert result.returncode == 0, result.stderr
    created = hub.created[0]
    assert "/".join(p for p in (created.get("organization"), created["name"]) if p) == "me/demo-bert"
    (commit,) = hub.commits
    files = commit["files"]
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "README.md"} <= set(files)
    config = json.loads(files["config.json"])
    assert config["architectures"] == ["BertForPreTraining"] and config["num_hidden_layers"] == 2
    tensors = load(files["model.safetensors"])
    assert tensors["bert.embeddings.word_embeddings.weight"].shape == (552, 64)
    assert files["vocab.txt"] == (demo_checkpoint / "vocab.txt").read_bytes()
    card = files["README.md"].decode()
    assert "bert-demo-tiny" in card and "license: apache-2.0" in card and "num_hidden_layers | 2" in card
    assert all("Bearer hf_test_token" in (h.get("authorization"), h.get("Authorization"))
               for h in hub.headers)


def test_push_to_a_bad_hub_url_is_one_line(cli, demo_checkpoint):
    result = cli("push", "bert-demo-tiny", "hf://just-a-name")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: 'hf://just-a-name': Repository id must be 'namespace/name', got 'just-a-name'. "
        "Expected hf://[datasets/|spaces/]ORG/REPO[@REVISION][/PATH]"]
