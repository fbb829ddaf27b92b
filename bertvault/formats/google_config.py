"""google-research/bert's bert_config.json, the config beside every TF1 checkpoint, in HF's terms.

Google's file has no layer_norm_eps (modeling.py hard-codes 1e-12), no model_type and no
architectures; transformers' config.json adds them. Activations have other names: google's `gelu`
is the tanh approximation, transformers' `gelu_new`. transformers' exact `gelu` has no google
twin: it is written as google's `gelu` (the closest; the conversion check measures the difference)
and recorded under `hf_hidden_act`, an extra key google's BertConfig carries and ignores, so a round
trip through TF1 gives back the exact activation.
"""

from __future__ import annotations

import logging

from bertvault.errors import ConversionError

log = logging.getLogger(__name__)

KEYS = (
    "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size", "initializer_range",
    "intermediate_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
    "type_vocab_size", "vocab_size",
)
# transformers' activation names -> google-research/bert's (modeling.get_activation), and back.
TO_GOOGLE_ACT = {
    "gelu": "gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
    "relu": "relu", "tanh": "tanh", "linear": "linear",
}
FROM_GOOGLE_ACT = {"gelu": "gelu_new", "relu": "relu", "tanh": "tanh", "linear": "linear"}
HF_ACT_KEY = "hf_hidden_act"


def _hf_activation(name: object, origin: str) -> str:
    """google's name (case-insensitive, as modeling.py reads it) as transformers'; an HF name already
    (a bert_config.json from an older bertvault) stays as it is."""
    key = name.lower() if isinstance(name, str) else None
    if key in FROM_GOOGLE_ACT:
        return FROM_GOOGLE_ACT[key]
    if key in TO_GOOGLE_ACT:
        return key
    raise ConversionError(f"{origin}: hidden_act {name!r} is not an activation google-research/bert knows "
                          f"(expected one of {', '.join(FROM_GOOGLE_ACT)})")


def to_hf(config: dict, origin: str = "bert_config.json") -> dict:
    """A bert_config.json's fields as an HF config.json (before defaults are filled and checked)."""
    config = dict(config)
    hf_act = config.pop(HF_ACT_KEY, None)
    extra = sorted(set(config) - set(KEYS))
    if extra:
        log.info("%s: keeping fields transformers does not use: %s", origin, ", ".join(extra))
    google_act = config.get("hidden_act", "gelu")
    # The recorded name counts only where it agrees with what google's code runs.
    agrees = (isinstance(hf_act, str) and isinstance(google_act, str)
              and TO_GOOGLE_ACT.get(hf_act) == google_act.lower())
    config["hidden_act"] = hf_act if agrees else _hf_activation(google_act, origin)
    return {**config, "layer_norm_eps": 1e-12, "model_type": "bert"}


def from_hf(config: dict) -> dict:
    """The bert_config.json google's modeling.py reads, from an HF config.json; an activation it lacks
    is an error."""
    out = {key: config[key] for key in KEYS if key in config}
    hf_act = config.get("hidden_act", "gelu")
    if not isinstance(hf_act, str) or hf_act not in TO_GOOGLE_ACT:
        raise ConversionError(f"hidden_act {hf_act!r} has no google-research/bert equivalent (modeling.py "
                              "knows gelu, relu, tanh and linear); this model cannot be written as TF1")
    out["hidden_act"] = TO_GOOGLE_ACT[hf_act]
    if FROM_GOOGLE_ACT[out["hidden_act"]] != hf_act:
        out[HF_ACT_KEY] = hf_act
    return out


def runs_differently(config: dict) -> bool:
    """True when google's modeling.py computes another function than transformers does for this config
    (exact GELU, run as google's tanh approximation)."""
    return config.get("hidden_act", "gelu") == "gelu"
