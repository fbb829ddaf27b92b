"""Activation names across the TF1 boundary: google's modeling.py knows gelu (its tanh form), relu, tanh
and linear; transformers' gelu is the exact erf form, its gelu_new the tanh one."""

from __future__ import annotations

import json
import shutil

import pytest

from bertvault.convert import config as configs
from bertvault.convert import convert
from bertvault.errors import ConversionError
from bertvault.formats import google_config

BASE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
        "vocab_size": 83, "max_position_embeddings": 64, "type_vocab_size": 2}


@pytest.mark.parametrize(("hf", "google"), [("gelu", "gelu"), ("gelu_new", "gelu"),
                                            ("gelu_pytorch_tanh", "gelu"), ("relu", "relu"), ("tanh", "tanh"),
                                            ("linear", "linear")])
def test_every_hf_activation_google_can_run_maps_and_comes_back(hf, google):
    written = google_config.from_hf({**BASE, "hidden_act": hf})
    assert written["hidden_act"] == google
    # Only an activation google's name does not read back as records its own name.
    assert written.get("hf_hidden_act") == (None if hf in ("gelu_new", "relu", "tanh", "linear") else hf)
    assert configs.from_google(written)["hidden_act"] == hf


@pytest.mark.parametrize(("google", "hf"), [("gelu", "gelu_new"), ("GELU", "gelu_new"), ("relu", "relu"),
                                            ("linear", "linear"), ("gelu_new", "gelu_new")])
def test_googles_names_read_as_transformers_names(google, hf):
    """google's gelu is the tanh approximation; a name modeling.py accepts in any case; an HF name (an
    older bertvault's bert_config.json) stays."""
    assert configs.from_google({**BASE, "hidden_act": google})["hidden_act"] == hf


def test_activations_google_lacks_are_refused():
    with pytest.raises(ConversionError, match="'silu' has no google-research/bert equivalent"):
        google_config.from_hf({**BASE, "hidden_act": "silu"})
    with pytest.raises(ConversionError, match="'swish' is not an activation google-research/bert knows"):
        configs.from_google({**BASE, "hidden_act": "swish"})


def test_exact_gelu_into_tf1_reports_what_googles_tanh_gelu_changes(tiny, tmp_path):
    assert tiny.config["hidden_act"] == "gelu"
    result = convert(tiny.hf, "tf1", out=tmp_path / "tf1", check=True)
    assert json.loads((tmp_path / "tf1" / "bert_config.json").read_text())["hidden_act"] == "gelu"
    shift = result.check.google_gelu
    assert set(shift) == {"hidden", "pooled", "mlm", "nsp"}
    # Measured, not zero, and small: google's gelu differs from the exact one by < 2e-3 per unit.
    assert 1e-5 < shift["hidden"] < 0.05, shift
    line = result.check.line()
    assert "tanh approximation" in line and f"hidden {shift['hidden']:.3g}" in line
    assert result.check.max_diff == 0  # the weights themselves are unchanged, and read back as exact gelu


def test_tanh_gelu_into_tf1_has_nothing_to_report(tiny, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(tiny.hf, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}))
    result = convert(folder, "tf1", out=tmp_path / "tf1", check=True)
    assert result.check.google_gelu == {} and "tanh" not in result.check.line()
    written = json.loads((tmp_path / "tf1" / "bert_config.json").read_text())
    assert written["hidden_act"] == "gelu" and "hf_hidden_act" not in written


def test_activation_google_lacks_writes_nothing(tiny, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(tiny.hf, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "silu"}))
    with pytest.raises(ConversionError, match="silu"):
        convert(folder, "tf1", out=tmp_path / "tf1")
    assert not (tmp_path / "tf1").exists()
