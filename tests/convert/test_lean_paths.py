"""Conversions that only move bytes import neither torch nor TensorFlow nor transformers (seconds
each); the numerical check still catches what only it can."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bertvault import paths
from bertvault.convert import convert, keymap
from bertvault.errors import ConversionError

HEAVY = ("torch", "tensorflow", "transformers")
PROBE = f"""
import json, sys
from bertvault.convert import convert
result = convert(sys.argv[1], sys.argv[2], out=sys.argv[3], check=False, drop_heads=True)
print(json.dumps({{"tensors": result.tensors, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


@pytest.mark.parametrize("label, to, name", [
    ("tf1", "safetensors", "model.safetensors"),
    ("tf1", "pt", "pytorch_model.bin"),
    ("safetensors", "pt", "w.bin"),
    ("pt", "safetensors", "w.safetensors"),
    ("nvidia-pt", "azureml-pt", "bert_encoder.pt"),
])
def test_byte_moving_conversions_import_nothing_heavy(sources, tmp_path, label, to, name):
    out = tmp_path / name
    done = subprocess.run([sys.executable, "-c", PROBE, str(sources(label)), to, str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [] and report["tensors"] > 0


def test_checking_a_read_tf1_checkpoint_does_not_import_tensorflow(sources, tmp_path):
    """The TF1 graph witness reads the source with bertvault's CRC-checked reader; TensorFlow
    (seconds to import) is not needed to read a checkpoint, only to write one."""
    probe = PROBE.replace("check=False", "check=True")
    tensors = '"tensors": result.tensors'
    probe = probe.replace(tensors, f'{tensors}, "oracle": result.check.oracle')
    command = [sys.executable, "-c", probe, str(sources("tf1")), "safetensors", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == ["torch", "transformers"]
    assert 0 < max(report["oracle"].values()) < 1e-12


@pytest.fixture
def swapped_tf1_map(tmp_path, monkeypatch):
    """A tf1.toml that reads every layer's query projection as key and key as query, and writes
    them back the same way: consistently wrong, so a round trip through it is still bit-exact."""
    folder = tmp_path / "converters"
    folder.mkdir()
    for toml in paths.converters_dir().glob("*.toml"):
        (folder / toml.name).write_text(toml.read_text())
    text = (folder / "tf1.toml").read_text()
    wrong = text.replace('proj = ["query", "key", "value"]',
                         'proj = { query = "key", key = "query", value = "value" }')
    assert wrong != text
    (folder / "tf1.toml").write_text(wrong)
    monkeypatch.setattr(paths, "converters_dir", lambda: folder)
    keymap.load_keymap.cache_clear()
    yield
    keymap.load_keymap.cache_clear()


@pytest.mark.parametrize("label, to", [("tf1", "safetensors"), ("safetensors", "tf1")])
def test_the_tf1_graph_witness_catches_what_a_round_trip_cannot(sources, tmp_path, swapped_tf1_map, label,
                                                                 to):
    with pytest.raises(ConversionError, match="numerical check failed: TF1 graph"):
        convert(sources(label), to, out=tmp_path / "out", check=True)
    assert not (tmp_path / "out").exists()


def test_the_check_keeps_its_numbers(sources, tmp_path):
    """The float64 pass runs module by module now; its agreement with the TF1 graph is still float64's."""
    result = convert(sources("tf1"), "safetensors", out=tmp_path / "out", check=True)
    assert result.check.max_diff == 0.0
    assert set(result.check.oracle) == {"hidden", "pooled", "mlm", "nsp"}
    assert 0 < max(result.check.oracle.values()) < 1e-12
    assert json.loads(json.dumps(result.check.diffs))  # plain floats
    assert Path(tmp_path / "out" / "model.safetensors").is_file()


def test_only_unverified_unchanged_tensors_are_copied_file_to_file(sources):
    """safetensors and torch zip tensors lie in their files as they are: a writer may copy them
    file to file. TF1 tensors never: their CRC32C is checked on the way, and kernels are transposed."""
    from bertvault.convert import load_canonical

    for label in ("safetensors", "pt"):
        canonical = load_canonical(sources(label))
        assert all(t.region is not None for name, t in canonical.tensors.items()
                   if name != "bert.embeddings.word_embeddings.weight"), label  # the tied owner is checked
    tf1 = load_canonical(sources("tf1"))
    assert all(t.region is None for t in tf1.tensors.values())


def test_the_float64_pass_falls_back_to_a_whole_float64_model(sources, tmp_path, monkeypatch):
    """Should module-by-module float64 not hold (another transformers), the witness still compares
    against a float64 model, never a float32 one."""
    import contextlib

    from bertvault.convert import check

    monkeypatch.setattr(check, "_in_float64", contextlib.nullcontext)  # runs in float32: caught, redone
    result = convert(sources("tf1"), "safetensors", out=tmp_path / "out", check=True)
    assert 0 < max(result.check.oracle.values()) < 1e-12
