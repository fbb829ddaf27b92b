"""google-research/bert's bert_config.json, the config beside every TF1 checkpoint, in HF's terms.

Google's file has no layer_norm_eps (modeling.py hard-codes 1e-12), no model_type and no
architectures; transformers' config.json adds them.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

KEYS = (
    "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size", "initializer_range",
    "intermediate_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
    "type_vocab_size", "vocab_size",
)


def to_hf(config: dict, origin: str = "bert_config.json") -> dict:
    """A bert_config.json's fields as an HF config.json (before defaults are filled and checked)."""
    extra = sorted(set(config) - set(KEYS))
    if extra:
        log.info("%s: keeping fields transformers does not use: %s", origin, ", ".join(extra))
    return {**config, "layer_norm_eps": 1e-12, "model_type": "bert"}


def from_hf(config: dict) -> dict:
    """The bert_config.json google's modeling.py reads, from an HF config.json."""
    return {key: config[key] for key in KEYS if key in config}
