"""A TF1 checkpoint written by bertvault is, to TensorFlow, exactly google-research/bert's."""

from __future__ import annotations

import json

import numpy as np
import tiny_bert

from bertvault.convert import convert


def test_tensorflow_sees_googles_names_and_shapes(tiny, tmp_path):
    tf = tiny_bert.tensorflow()
    out = tmp_path / "tf1"
    convert(tiny.hf, "tf1", out=out, check=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index", "checkpoint",
        "provenance.json", "vocab.txt",
    ]
    expected = tiny_bert.google_names(tiny.state)
    reader = tf.train.load_checkpoint(str(out / "bert_model.ckpt"))
    shapes = reader.get_variable_to_shape_map()
    assert shapes == {name: list(value.shape) for name, value in expected.items()}
    for name, value in expected.items():
        assert reader.get_variable_to_dtype_map()[name] == tf.float32
        assert np.array_equal(reader.get_tensor(name), value), name
    assert tf.train.latest_checkpoint(str(out)).endswith("bert_model.ckpt")
    # transformers' exact gelu is written as google's gelu (its tanh form), the exact one kept aside.
    assert json.loads((out / "bert_config.json").read_text()) == {**tiny_bert.google_config(tiny),
                                                                   "hf_hidden_act": "gelu"}
