"""BERT's forward pass written against google-research/bert's TF1 variable names, in float64.

An independent witness for TF1 conversions: it reads a TF1 checkpoint by modeling.py's names and
[in, out] kernel layout, with no key map and no transformers module involved, so a wrong rename or
a missing transpose in converters/tf1.toml shows up as a large difference from the PyTorch model.
It follows the config's semantics (hidden_act "gelu" is the exact erf GELU, as in transformers;
google's own code uses the tanh approximation, a difference of the model, not of the conversion).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _activation(name: str):
    import torch

    acts = {
        "gelu": lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0))),
        "gelu_new": lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
        "relu": torch.relu,
    }
    acts["gelu_fast"] = acts["gelu_pytorch_tanh"] = acts["gelu_new"]
    return acts[name]


def tf1_forward(get: Callable[[str], np.ndarray], config: dict, batch: dict, groups: list[str]) -> dict:
    """Hidden states of every layer, and the MLM/NSP logits and pooled output where the heads exist."""
    import torch

    def var(name: str):
        return torch.from_numpy(np.asarray(get(name)).astype(np.float64))

    def dense(x, scope: str):
        return x @ var(f"{scope}/kernel") + var(f"{scope}/bias")

    eps = config.get("layer_norm_eps", 1e-12)

    def layer_norm(x, scope: str):
        mean = x.mean(-1, keepdim=True)
        variance = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(variance + eps) * var(f"{scope}/gamma") + var(f"{scope}/beta")

    act = _activation(config.get("hidden_act", "gelu"))
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    batch_size, length = ids.shape
    heads = config["num_attention_heads"]
    size = config["hidden_size"] // heads

    words = var("bert/embeddings/word_embeddings")
    x = (words[ids] + var("bert/embeddings/position_embeddings")[:length]
         + var("bert/embeddings/token_type_embeddings")[types])
    x = layer_norm(x, "bert/embeddings/LayerNorm")
    blocked = (1.0 - mask.to(torch.float64))[:, None, None, :] * -10000.0
    hidden = [x]

    def split(t):
        return t.reshape(batch_size, length, heads, size).transpose(1, 2)

    for i in range(config["num_hidden_layers"]):
        scope = f"bert/encoder/layer_{i}"
        q, k, v = (split(dense(x, f"{scope}/attention/self/{p}")) for p in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size) + blocked, dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(batch_size, length, heads * size)
        attention = layer_norm(dense(context, f"{scope}/attention/output/dense") + x,
                               f"{scope}/attention/output/LayerNorm")
        intermediate = act(dense(attention, f"{scope}/intermediate/dense"))
        x = layer_norm(dense(intermediate, f"{scope}/output/dense") + attention, f"{scope}/output/LayerNorm")
        hidden.append(x)
    out = {"hidden": torch.stack(hidden)}
    if "pooler" in groups:
        out["pooled"] = torch.tanh(dense(x[:, 0], "bert/pooler/dense"))
    if "mlm" in groups:
        t = layer_norm(act(dense(x, "cls/predictions/transform/dense")),
                       "cls/predictions/transform/LayerNorm")
        out["mlm"] = t @ words.T + var("cls/predictions/output_bias")
    if "nsp" in groups and "pooler" in groups:
        out["nsp"] = (out["pooled"] @ var("cls/seq_relationship/output_weights").T
                      + var("cls/seq_relationship/output_bias"))
    return out
