"""bertvault's TF1 exports in google-research/bert's own code: modeling.BertModel, run_pretraining.py's
MLM and NSP heads, run_classifier.create_model, each restored with tf.compat.v1's Saver and run on a
batch google's tokenizer made; outputs equal transformers' (4 and 5) on the same weights.

google's modeling.py computes "gelu" as the tanh approximation, so transformers runs the HF side with
hidden_act gelu_new (the `-tanh` probe items); against transformers' exact gelu, the outputs differ by
the amount bertvault's conversion check reports.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

# Outputs are made on first use (several bertvault runs): the first test that needs them waits for them.
pytestmark = [pytest.mark.conformance, pytest.mark.timeout(600)]

# float32 in TensorFlow vs float32 in torch: summation order only.
ATOL = 2e-4


def _run_google(google, folder, batch: dict, build) -> dict[str, np.ndarray]:
    """Build google's graph with `build(config, ids, mask, types)`, restore bert_model.ckpt into it (every
    variable of the graph from the checkpoint, every variable of the checkpoint used), run `batch`."""
    tf = google.tf
    prefix = str(folder / "bert_model.ckpt")
    with tf.Graph().as_default():
        config = google.modeling.BertConfig.from_json_file(str(folder / "bert_config.json"))
        ids, mask, types = (tf.constant(batch[k], dtype=tf.int32)
                            for k in ("input_ids", "attention_mask", "token_type_ids"))
        tensors = build(config, ids, mask, types)
        in_graph = {v.op.name for v in tf.global_variables()}
        in_checkpoint = {name for name, _ in tf.train.list_variables(prefix)}
        assert in_graph - in_checkpoint == set(), "variables google's code needs that the checkpoint lacks"
        assert in_checkpoint - in_graph == set(), "variables of the checkpoint google's code does not use"
        with tf.Session() as session:
            tf.train.Saver().restore(session, prefix)
            return session.run(tensors)


def _encoder(google):
    def build(config, ids, mask, types):
        model = google.modeling.BertModel(config=config, is_training=False, input_ids=ids, input_mask=mask,
                                          token_type_ids=types, use_one_hot_embeddings=False)
        return {"sequence": model.get_sequence_output(), "pooled": model.get_pooled_output()}, model

    return build


def _close(ours: np.ndarray, theirs: np.ndarray, mask=None) -> float:
    """Max |difference|, over real (unpadded) positions when `mask` is given."""
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    if mask is not None:
        diff = diff[np.asarray(mask, dtype=bool)]
    return float(diff.max())


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_bert_config_json_is_googles(google, converted, tiny_tanh, pretrained, finetuned):
    for folder in (converted["tf1"], tiny_tanh / "tf1", pretrained / "tf1", finetuned / "model-tf1"):
        config = google.modeling.BertConfig.from_json_file(str(folder / "bert_config.json"))
        assert config.hidden_act == "gelu", folder  # google's name; modeling.get_activation knows it
        assert google.modeling.get_activation(config.hidden_act) is google.modeling.gelu
        # tokenization.py's checks on the vocab beside it pass too
        google.tokenization.FullTokenizer(str(folder / "vocab.txt"), do_lower_case=True)


def test_minilm_tf1_runs_in_googles_bert_model(google, converted, batch, probes):
    build = _encoder(google)
    ours = _run_google(google, converted["tf1"], batch, lambda *a: build(*a)[0])
    mask = batch["attention_mask"]
    for version in (4, 5):
        hf = probes.outputs(version, "minilm-source-tanh")
        assert _close(ours["sequence"], hf["sequence"], mask) < ATOL, version
        assert _close(ours["pooled"], hf["pooled"]) < ATOL, version
        exact = probes.outputs(version, "minilm-source")
        assert _close(ours["sequence"], exact["sequence"], mask) > 10 * ATOL  # the activation does matter
    # ... and bertvault's check said so when it wrote the file
    stdout = (converted["tf1"] / ".stdout").read_text()
    assert re.search(r"exact gelu written as google's gelu \(tanh approximation\).* hidden [\d.e-]+", stdout)
    config = json.loads((converted["tf1"] / "bert_config.json").read_text())
    assert (config["hidden_act"], config["hf_hidden_act"]) == ("gelu", "gelu")


POSITIONS = [[1, 2, 5, 9, 12], [1, 3, 4, 7, 20]]


def _pretraining(google, batch):
    """BertModel and run_pretraining.py's heads on it: MLM log-probabilities at POSITIONS, NSP's."""
    encoder = _encoder(google)
    labels = [[batch["input_ids"][row][p] for p in rows] for row, rows in enumerate(POSITIONS)]

    def build(config, ids, mask, types):
        tensors, model = encoder(config, ids, mask, types)
        tf = google.tf
        _, _, mlm = google.run_pretraining.get_masked_lm_output(
            config, model.get_sequence_output(), model.get_embedding_table(), tf.constant(POSITIONS),
            tf.constant(labels), tf.ones([2, 5]))
        _, _, nsp = google.run_pretraining.get_next_sentence_output(config, model.get_pooled_output(),
                                                                     tf.zeros([2, 1], tf.int32))
        return {**tensors, "mlm_log_probs": mlm, "nsp_log_probs": nsp}

    return build


def _assert_pretraining_matches(ours: dict, hf: dict, batch: dict, label) -> None:
    assert _close(ours["sequence"], hf["sequence"], batch["attention_mask"]) < ATOL, label
    assert _close(ours["pooled"], hf["pooled"]) < ATOL, label
    at_positions = np.stack([hf["mlm"][row, rows] for row, rows in enumerate(POSITIONS)]).reshape(10, -1)
    assert _close(ours["mlm_log_probs"], _log_softmax(at_positions)) < ATOL, label
    assert _close(ours["nsp_log_probs"], _log_softmax(hf["nsp"])) < ATOL, label


def test_tanh_gelu_model_tf1_runs_in_googles_code(google, tiny_tanh, batch, probes):
    """A model with transformers' gelu_new computes google's own function: its TF1 export runs as it is."""
    ours = _run_google(google, tiny_tanh / "tf1", batch, _pretraining(google, batch))
    for version in (4, 5):
        _assert_pretraining_matches(ours, probes.outputs(version, "tiny-tanh-source"), batch, version)
    config = json.loads((tiny_tanh / "tf1" / "bert_config.json").read_text())
    assert config["hidden_act"] == "gelu" and "hf_hidden_act" not in config


def test_pretrain_tf1_runs_in_googles_pretraining_heads(google, pretrained, batch, probes):
    ours = _run_google(google, pretrained / "tf1", batch, _pretraining(google, batch))
    for version in (4, 5):
        _assert_pretraining_matches(ours, probes.outputs(version, "pretrain-model-tanh"), batch, version)


def test_finetuned_classifier_runs_in_googles_run_classifier(google, finetuned, batch, probes):
    def build(config, ids, mask, types):
        _, _, logits, probabilities = google.run_classifier.create_model(
            config, False, ids, mask, types, google.tf.zeros([2], google.tf.int32), 2, False)
        return {"logits": logits, "probabilities": probabilities}

    ours = _run_google(google, finetuned / "model-tf1", batch, build)
    for version in (4, 5):
        hf = probes.outputs(version, "finetune-model-tanh")
        assert _close(ours["logits"], hf["logits"]) < ATOL, version
    labels = probes.record(5, "finetune-model")["id2label"]
    assert labels == {"0": "neg", "1": "pos"}  # run_classifier's label order is the index order
