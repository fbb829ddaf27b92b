"""The engine's bookkeeping: everything consumed or dropped, everything produced, every shape checked."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_bert

from bertvault.convert.engine import plan_read, plan_write
from bertvault.convert.keymap import load_keymap
from bertvault.errors import ConversionError
from bertvault.formats.tensors import Entry


def _read(names: dict[str, np.ndarray], config: dict, keymap: str = "tf1"):
    entries = {k: Entry(v.shape, v.dtype) for k, v in names.items()}
    return plan_read(load_keymap(keymap), entries, lambda k: names[k], config)


def test_drops_are_explicit_and_reported(tiny):
    names = tiny_bert.google_names(tiny.state)
    names |= {f"{k}/adam_m": v for k, v in names.items()} | {"global_step": np.array(3, np.int64)}
    tensors, report = _read(names, tiny.config)
    assert len(report.dropped["Adam first-moment slot (optimizer state)"]) == len(tensors) - 0
    assert report.dropped["training step counter"] == ["global_step"]
    assert report.groups == ["embeddings", "encoder", "pooler", "mlm", "nsp"]


def test_unknown_key_missing_key_and_bad_shape_are_all_reported_at_once(tiny):
    names = tiny_bert.google_names(tiny.state)
    names["bert/encoder/layer_0/attention/self/query/kernel"] = np.zeros((32, 16), np.float32)
    del names["bert/encoder/layer_1/output/LayerNorm/beta"]
    names["bert/some/new/thing"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError) as caught:
        _read(names, tiny.config)
    message = str(caught.value)
    assert "bert/some/new/thing" in message and "--from-format" in message
    assert "shape [16, 32]" in message and "config needs [32, 32]" in message
    assert "lacks bert.encoder.layer.1.output.LayerNorm.bias" in message
    assert len(caught.value.problems) == 3


def test_layers_beyond_the_config_and_partial_heads(tiny):
    names = tiny_bert.google_names(tiny.state)
    names["bert/encoder/layer_5/output/dense/bias"] = np.zeros(32, np.float32)
    del names["cls/seq_relationship/output_bias"]
    with pytest.raises(ConversionError) as caught:
        _read(names, tiny.config)
    assert "layer 5, but the config has 2 layers" in str(caught.value)
    assert "partly present nsp group lacks cls.seq_relationship.bias" in str(caught.value)


def test_finetuned_heads_are_mapped_not_dropped(tiny):
    names = tiny_bert.google_names(tiny.state, heads=False)
    names["output_weights"] = np.ones((3, 32), np.float32)
    names["output_bias"] = np.ones(3, np.float32)
    names["cls/squad/output_weights"] = np.ones((2, 32), np.float32)
    names["cls/squad/output_bias"] = np.ones(2, np.float32)
    tensors, report = _read(names, tiny.config)
    assert tensors["classifier.weight"].shape == (3, 32) and report.num_labels == 3
    assert tensors["qa_outputs.weight"].shape == (2, 32)
    assert report.heads == ["pooler", "classifier", "qa"]
    plan, left_out = plan_write(load_keymap("tf1"), tensors, tiny.config)
    assert {n for n, _ in plan} >= {"output_weights", "output_bias", "cls/squad/output_weights"}
    with pytest.raises(ConversionError, match="holds no classifier, qa weights.*--drop-heads"):
        plan_write(load_keymap("azureml-pt"), tensors, tiny.config)


def test_an_untied_decoder_is_not_silently_dropped(tiny):
    names = {k: v for k, v in tiny.state.items()}
    names["cls.predictions.decoder.weight"] = names["bert.embeddings.word_embeddings.weight"] + 1
    tensors, report = _read(names, tiny.config, "hf")
    assert report.tied_in_source == ["cls.predictions.decoder.weight"]
    with pytest.raises(ConversionError, match="untied decoder"):
        tensors["bert.embeddings.word_embeddings.weight"].load()


def test_pre_ln_checkpoints_are_refused_with_the_reason(tiny):
    names = {k: v for k, v in tiny.state.items()}
    names["bert.encoder.layer.0.PreAttentionLayerNorm.weight"] = np.ones(32, np.float32)
    with pytest.raises(ConversionError, match="Pre-LN.*Post-LN"):
        _read(names, tiny.config, "hf")


def test_vocab_rows_trims_only_nvidia_padding(tiny):
    names = {f"module.{k}": v for k, v in tiny.state.items()}
    word = "module.bert.embeddings.word_embeddings.weight"
    pad = -tiny.config["vocab_size"] % 8
    assert pad
    names[word] = np.concatenate([names[word], np.ones((pad, 32), np.float32)])
    bias = "module.cls.predictions.bias"
    names[bias] = np.concatenate([names[bias], np.ones(pad, np.float32)])
    tensors, _ = _read(names, tiny.config, "nvidia-pt")
    assert np.array_equal(tensors["bert.embeddings.word_embeddings.weight"].load(),
                          tiny.state["bert.embeddings.word_embeddings.weight"])
    names[word] = np.concatenate([names[word], np.ones((8, 32), np.float32)])
    with pytest.raises(ConversionError, match="fit neither the vocabulary"):
        _read(names, tiny.config, "nvidia-pt")
