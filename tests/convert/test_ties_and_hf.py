"""Tied weights, HF folders as transformers loads them, and the library API a trainer uses."""

from __future__ import annotations

import json
import logging

import numpy as np
import torch
from safetensors import safe_open

from bertvault.convert import convert, export_hf, export_tf1, from_state_dict, load_canonical


def test_tied_weights_survive_safetensors(tiny, tmp_path):
    convert(tiny.hf, "safetensors", out=tmp_path / "st.safetensors")
    with safe_open(tmp_path / "st.safetensors", "np") as handle:
        keys = set(handle.keys())
        tied = json.loads(handle.metadata()["bertvault.tied"])
    assert "cls.predictions.decoder.weight" not in keys and "cls.predictions.decoder.bias" not in keys
    assert tied == {"cls.predictions.decoder.bias": "cls.predictions.bias",
                    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}
    model = load_canonical(tmp_path / "st.safetensors").to_model()
    decoder, embeddings = model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight
    assert decoder.data_ptr() == embeddings.data_ptr()
    state = load_canonical(tmp_path / "st.safetensors").state_dict()
    assert state["cls.predictions.decoder.bias"] is state["cls.predictions.bias"]


def test_hf_folder_loads_in_transformers_without_new_weights(tiny, tmp_path, caplog):
    from transformers import AutoModel, AutoTokenizer, BertForPreTraining

    out = tmp_path / "hf"
    convert(tiny.hf, "hf", out=out, check=False)
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()}
    model, info = BertForPreTraining.from_pretrained(out, output_loading_info=True)
    assert info["missing_keys"] in ([], set()) and info["unexpected_keys"] in ([], set())
    assert torch.equal(model.bert.embeddings.word_embeddings.weight,
                       torch.from_numpy(tiny.state["bert.embeddings.word_embeddings.weight"]))
    with caplog.at_level(logging.WARNING):
        AutoModel.from_pretrained(out)
    assert "newly initialized" not in caplog.text
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("Hello world")["input_ids"][0] == tiny_bert_id("[CLS]")
    assert tokenizer.tokenize("Hello World") == ["hello", "world"]


def tiny_bert_id(token: str) -> int:
    import tiny_bert

    return tiny_bert.TOKENS.index(token)


def test_trainer_api_exports_from_a_state_dict(tiny, tmp_path):
    state = {k: torch.from_numpy(v) for k, v in tiny.state.items()}
    canonical = from_state_dict(state, tiny.config, tiny.vocab, lowercase=True)
    export_tf1(canonical, tmp_path / "tf1")
    export_hf(canonical, tmp_path / "hf")
    for folder in ("tf1", "hf"):
        back = load_canonical(tmp_path / folder)
        for name, array in tiny.state.items():
            assert np.array_equal(back.tensors[name].load(), array), (folder, name)


def test_a_run_classifier_checkpoint_keeps_its_head(tiny, tmp_path):
    """TF1 output_weights/output_bias -> classifier.*, loadable as BertForSequenceClassification."""
    import tiny_bert
    from transformers import BertForSequenceClassification

    from bertvault.errors import ConversionError

    variables = tiny_bert.google_names(tiny.state, heads=False)
    rng = np.random.default_rng(5)
    variables["output_weights"] = rng.standard_normal((3, 32)).astype(np.float32)
    variables["output_bias"] = rng.standard_normal(3).astype(np.float32)
    prefix = tiny_bert.save_tf1(tmp_path / "clf", variables, tiny)
    result = convert(prefix, "hf", out=tmp_path / "hf")
    assert result.heads == ["pooler", "classifier"] and result.check.diffs["classifier.weight"] == 0
    model = BertForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert model.config.num_labels == 3
    assert np.array_equal(model.classifier.weight.detach().numpy(), variables["output_weights"])
    back = convert(tmp_path / "hf", "tf1", out=tmp_path / "tf1")
    assert back.check.diffs["classifier.bias"] == 0
    try:
        convert(tmp_path / "hf", "azureml-pt", out=tmp_path / "az")
    except ConversionError as exc:
        assert "holds no classifier weights" in str(exc) and "--drop-heads" in str(exc)
    else:
        raise AssertionError("a head was dropped silently")
    assert not (tmp_path / "az").exists()
