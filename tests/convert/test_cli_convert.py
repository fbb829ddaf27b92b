"""`bertvault convert` as a user runs it: registered names from the cache, paths, output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_bert
from typer.testing import CliRunner

from bertvault.cache import layout
from bertvault.cli import app
from bertvault.convert import load_canonical

runner = CliRunner()

ARCHITECTURE = ("{ layers = 2, hidden = 32, heads = 4, intermediate = 64, "
                f"vocab_size = {tiny_bert.VOCAB}, max_positions = 64, cased = false }}")
MANIFEST = f"""
[[artifact]]
name = "tiny-encoder"
kind = "checkpoint"
format = "azureml-encoder-pt"
vocab_from = "tiny-vocab"
architecture = {ARCHITECTURE}
[[artifact.files]]
path = "bert_encoder_epoch_1.pt"
urls = ["https://example.invalid/bert_encoder_epoch_1.pt"]

[[artifact]]
name = "tiny-vocab"
kind = "checkpoint"
format = "hf-safetensors"
architecture = {ARCHITECTURE}
[[artifact.files]]
path = "vocab.txt"
urls = ["https://example.invalid/vocab.txt"]
"""


def _register(isolated_env: Path) -> None:
    manifests = Path(os.environ["XDG_CONFIG_HOME"]) / "bertvault" / "manifests"
    manifests.mkdir(parents=True)
    (manifests / "tiny.toml").write_text(MANIFEST)


def _cache(name: str, files: dict[str, bytes]) -> None:
    """What a completed `bertvault pull NAME` leaves (see bertvault/cache/layout.py)."""
    view = layout.artifact_dir(name)
    view.mkdir(parents=True)
    for path, data in files.items():
        (view / path).write_bytes(data)
    layout.meta_path(name).parent.mkdir(parents=True, exist_ok=True)
    layout.meta_path(name).write_text(json.dumps({"name": name, "complete": True}))


def test_registered_azureml_encoder_takes_manifest_config_and_donor_vocab(isolated_env, tiny, tmp_path):
    _register(isolated_env)
    encoder = tiny_bert.save_azureml(tiny, tmp_path / "az", half=True, sidecars=False)
    _cache("tiny-encoder", {"bert_encoder_epoch_1.pt": encoder.read_bytes()})

    missing = runner.invoke(app, ["convert", "tiny-encoder", "--to", "hf"])
    assert missing.exit_code == 5
    assert ("takes it from tiny-vocab, which is not in the cache; run `bertvault pull tiny-vocab`"
            in missing.stderr)
    assert not layout.converted_dir("tiny-encoder", "hf").exists()

    _cache("tiny-vocab", {"vocab.txt": tiny.vocab.read_bytes()})
    result = runner.invoke(app, ["convert", "tiny-encoder", "--to", "hf", "--dtype", "fp32"])
    assert result.exit_code == 0, result.output
    out = layout.converted_dir("tiny-encoder", "hf")
    assert f"written: {out}" in result.output and "check: max |diff|" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["hidden_size"] == 32
    back = load_canonical(out)
    word = back.tensors["bert.embeddings.word_embeddings.weight"].load()
    assert word.dtype == np.float32
    expected = tiny.state["bert.embeddings.word_embeddings.weight"].astype(np.float16).astype(np.float32)
    assert np.array_equal(word, expected)

    again = runner.invoke(app, ["convert", "tiny-encoder", "--to", "hf"])
    assert again.exit_code == 5 and "exists; pass --force" in again.stderr


def test_path_sources_write_beside_them(sources, tmp_path):
    folder = tmp_path / "uncased_tiny"
    prefix = sources("tf1")
    folder.mkdir()
    for part in prefix.parent.iterdir():
        (folder / part.name).write_bytes(part.read_bytes())
    result = runner.invoke(app, ["convert", str(folder / "bert_model.ckpt.index"), "--to", "safetensors"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "uncased_tiny-safetensors" / "model.safetensors").is_file()
    assert "dropped" in result.output and "Adam first-moment slot" in result.output
    assert "TF1 graph float64" in result.output
    weights = tmp_path / "uncased_tiny-safetensors" / "model.safetensors"
    file_result = runner.invoke(app, ["convert", str(weights), "--to", "pt"])
    assert file_result.exit_code == 0, file_result.output
    assert (tmp_path / "uncased_tiny-safetensors" / "model.bin").is_file()
    assert "check: skipped" in file_result.output  # same names, same dtype: no layout change


def test_single_file_output_carries_its_config(sources, tmp_path):
    out = tmp_path / "lone.safetensors"
    result = runner.invoke(app, ["convert", str(sources("tf2")), "--to", "safetensors", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lone.safetensors",
                                                          "lone.safetensors.provenance.json"]
    assert load_canonical(out).config["num_attention_heads"] == 4


def test_help_lists_the_formats():
    result = runner.invoke(app, ["convert", "--help"])
    assert result.exit_code == 0 and "azureml-pt" in result.output and "--from-format" in result.output


def test_real_subprocess(sources, tmp_path):
    out = tmp_path / "nv-hf"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "bertvault", "convert", str(sources("nvidia-pt")), "--to", "hf",
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "converted nvidia-pt -> hf" in done.stdout
    assert "dropped 3: training state, not weights (epoch, files, optimizer)" in done.stdout
    bad = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 5 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


@pytest.mark.parametrize("dtype, kind", [("fp16", "float16"), ("bf16", "bfloat16")])
def test_dtype_casts_have_their_own_bound(sources, tmp_path, dtype, kind):
    result = runner.invoke(app, ["convert", str(sources("hf")), "--to", "safetensors", "--dtype", dtype,
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "check: max |diff|" in result.output and "max |diff| 0 " not in result.output
    back = load_canonical(tmp_path / "o")
    assert {t.dtype.name for t in back.tensors.values()} == {kind}


def test_sharded_output_reads_back(sources, tmp_path):
    result = runner.invoke(app, ["convert", str(sources("tf1")), "--to", "hf", "--out", str(tmp_path / "hf"),
                                 "--max-shard-size", "20KB"])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "hf" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 3
    from transformers import BertForPreTraining

    BertForPreTraining.from_pretrained(tmp_path / "hf")
    bad = runner.invoke(app, ["convert", str(sources("tf1")), "--to", "hf", "--out", str(tmp_path / "x"),
                              "--max-shard-size", "lots"])
    assert bad.exit_code == 2 and "expected a size such as 2GB" in bad.stderr


def test_bf16_into_tf1_keeps_googles_names(sources, tmp_path):
    tf = tiny_bert.tensorflow()
    result = runner.invoke(app, ["convert", str(sources("hf")), "--to", "tf1", "--dtype", "bf16",
                                 "--out", str(tmp_path / "tf1")])
    assert result.exit_code == 0, result.output
    reader = tf.train.load_checkpoint(str(tmp_path / "tf1" / "bert_model.ckpt"))
    assert reader.get_variable_to_dtype_map()["bert/embeddings/word_embeddings"] == tf.bfloat16
