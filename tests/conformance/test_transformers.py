"""bertvault's HF outputs in transformers 4 and 5, loaded as users load them (AutoModel* and AutoTokenizer,
the fast tokenizer and the pure-Python one), and its TF1 export in transformers 4's own TF1 loader."""

from __future__ import annotations

import numpy as np
import pytest
from interop import PARAGRAPH

# Outputs are made on first use (several bertvault runs): the first test that needs them waits for them.
pytestmark = [pytest.mark.conformance, pytest.mark.timeout(600)]

VERSIONS = (4, 5)
# output -> (the source it was made from, the class it must load as)
OUTPUTS = {
    "minilm-hf": ("minilm-source", "BertModel"),
    "minilm-safetensors": ("minilm-source", "BertModel"),
    "minilm-pt": ("minilm-source", "BertModel"),
    "pretrain-model": ("tiny-source", "BertForPreTraining"),
    "finetune-model": ("tiny-source", "BertForSequenceClassification"),
}


@pytest.fixture(scope="module")
def google_ids(google, minilm) -> list[list[int]]:
    tokenizer = google.tokenization.FullTokenizer(str(minilm / "vocab.txt"), do_lower_case=True)
    return [tokenizer.convert_tokens_to_ids(["[CLS]", *tokenizer.tokenize(text), "[SEP]"])
            for text in [*PARAGRAPH, " ".join(PARAGRAPH)]]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_hf_output_loads_with_no_weight_left_new(probes, version):
    for name, (_, model_class) in OUTPUTS.items():
        record = probes.record(version, name)
        assert record["transformers"].split(".")[0] == str(version)
        assert record["model"] == model_class, name
        assert record["loading"].get("missing_keys") == [], (name, record["loading"])
        assert not record["loading"].get("mismatched_keys"), (name, record["loading"])
    assert probes.record(version, "finetune-model")["id2label"] == {"0": "neg", "1": "pos"}


@pytest.mark.parametrize("version", VERSIONS)
def test_tokenizers_tokenize_like_the_source_and_like_google(probes, google_ids, version):
    """Every word of a multilingual paragraph gets the id google's FullTokenizer gives it, through the
    fast and the slow tokenizer of every output, as through the source's own tokenizer."""
    unk = 100  # [UNK] in MiniLM's (English) vocab: some of the CJK characters
    every = [i for ids in google_ids for i in ids]
    assert unk not in google_ids[0] and every.count(unk) < 0.1 * len(every)  # real words, real ids
    for name, (source, _) in OUTPUTS.items():
        record, reference = probes.record(version, name), probes.record(version, source)
        assert record["fast"] == reference["fast"], (name, "fast")
        assert record["slow"] == reference["slow"], (name, "slow")
        assert record["fast"] == google_ids, (name, record["fast_class"])
        assert record["slow"] == google_ids, (name, record["slow_class"])
        assert record["slow_class"] == {4: "BertTokenizer", 5: "BertTokenizerLegacy"}[version], name


@pytest.mark.parametrize("version", VERSIONS)
def test_outputs_compute_what_the_source_computes(probes, batch, version):
    mask = np.asarray(batch["attention_mask"], dtype=bool)
    source = probes.outputs(version, "minilm-source")
    for name in ("minilm-hf", "minilm-safetensors", "minilm-pt"):
        ours = probes.outputs(version, name)
        assert np.array_equal(ours["sequence"][mask], source["sequence"][mask]), name
        assert np.array_equal(ours["pooled"], source["pooled"]), name


def test_transformers_4_and_5_agree_on_trained_outputs(probes, batch):
    mask = np.asarray(batch["attention_mask"], dtype=bool)
    per_token = {"sequence", "mlm"}  # compared at real (unpadded) positions
    compared = {"pretrain-model": ("sequence", "mlm", "nsp"), "finetune-model": ("sequence", "logits")}
    for name, keys in compared.items():
        four, five = probes.outputs(4, name), probes.outputs(5, name)
        for key in keys:
            a, b = (four[key][mask], five[key][mask]) if key in per_token else (four[key], five[key])
            assert np.abs(a - b).max() < 1e-5, (name, key)


def test_transformers_4_loads_the_tf1_export_with_load_tf_weights_in_bert(probes, batch):
    """transformers' own TF1 reader (google's names mapped by transformers, not bertvault) gives the
    model pretrain exported as HF."""
    mask = np.asarray(batch["attention_mask"], dtype=bool)
    outputs = probes.outputs(4, "pretrain-model")
    for key in ("sequence", "mlm"):
        assert np.abs(outputs[f"tf1_{key}"][mask] - outputs[key][mask]).max() < 1e-5, key
    for key in ("pooled", "nsp"):
        assert np.abs(outputs[f"tf1_{key}"] - outputs[key]).max() < 1e-5, key
