"""BERT configs: google-research/bert's bert_config.json <-> transformers' config.json.

The canonical config is an HF config.json dict. Google's file has no layer_norm_eps (modeling.py
hard-codes 1e-12), no model_type and no architectures; HF adds them.

Activations have different names on each side. google's modeling.py knows gelu, relu, tanh and
linear, and its "gelu" is the tanh approximation (transformers' "gelu_new"), while transformers'
"gelu" is the exact erf form. A model trained with the exact form is written as google's gelu (the
closest google's code can run) and its own name is kept in `hf_hidden_act`, an extra key that
modeling.py's BertConfig carries along unused, so that reading the file back gives the model it
was; the conversion check reports how far google's tanh form moves its outputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bertvault.errors import ConversionError

if TYPE_CHECKING:
    from bertvault.registry.schema import Architecture

log = logging.getLogger(__name__)

GOOGLE_KEYS = (
    "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size", "initializer_range",
    "intermediate_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
    "type_vocab_size", "vocab_size",
)
REQUIRED = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
    "max_position_embeddings", "type_vocab_size",
)
DEFAULTS = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "model_type": "bert",
}
# transformers' activation names -> google-research/bert's (modeling.get_activation), and back.
TO_GOOGLE_ACT = {
    "gelu": "gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
    "relu": "relu", "tanh": "tanh", "linear": "linear",
}
FROM_GOOGLE_ACT = {"gelu": "gelu_new", "relu": "relu", "tanh": "tanh", "linear": "linear"}
HF_ACT_KEY = "hf_hidden_act"
# Which transformers class a checkpoint's heads make it (first match).
ARCHITECTURES = (
    ({"classifier"}, "BertForSequenceClassification"),
    ({"qa"}, "BertForQuestionAnswering"),
    ({"mlm", "nsp"}, "BertForPreTraining"),
    ({"mlm"}, "BertForMaskedLM"),
)


def normalize(config: dict, origin: str) -> dict:
    """Fill defaults and check that the numbers a BERT needs are there and sane."""
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise ConversionError(f"{origin} describes a {model_type!r} model, not BERT")
    out = {**DEFAULTS, **config}
    problems = [f"{origin} lacks {key}" for key in REQUIRED
                if not isinstance(out.get(key), int) or out[key] <= 0]
    if not problems and out["hidden_size"] % out["num_attention_heads"]:
        problems.append(f"{origin}: hidden_size {out['hidden_size']} is not a multiple of "
                        f"num_attention_heads {out['num_attention_heads']}")
    if problems:
        raise ConversionError(problems)
    return out


def from_google(config: dict, origin: str = "bert_config.json") -> dict:
    config = dict(config)
    hf_act = config.pop(HF_ACT_KEY, None)
    extra = sorted(set(config) - set(GOOGLE_KEYS))
    if extra:
        log.info("%s: keeping fields transformers does not use: %s", origin, ", ".join(extra))
    google_act = config.get("hidden_act", "gelu")
    # The recorded name counts only where it agrees with what google's code runs.
    agrees = (isinstance(hf_act, str) and isinstance(google_act, str)
              and TO_GOOGLE_ACT.get(hf_act) == google_act.lower())
    config["hidden_act"] = hf_act if agrees else _hf_activation(google_act, origin)
    return normalize({**config, "layer_norm_eps": 1e-12, "model_type": "bert"}, origin)


def _hf_activation(name, origin: str) -> str:
    """google's name (case-insensitive, as modeling.py reads it) as transformers'; an HF name already
    (a bert_config.json from an older bertvault) stays as it is."""
    key = name.lower() if isinstance(name, str) else None
    if key in FROM_GOOGLE_ACT:
        return FROM_GOOGLE_ACT[key]
    if key in TO_GOOGLE_ACT:
        return key
    raise ConversionError(f"{origin}: hidden_act {name!r} is not an activation google-research/bert knows "
                          f"(expected one of {', '.join(FROM_GOOGLE_ACT)})")


def to_google(config: dict) -> dict:
    """bert_config.json as google's modeling.py reads it; an activation it lacks is an error."""
    out = {key: config[key] for key in GOOGLE_KEYS if key in config}
    hf_act = config.get("hidden_act", "gelu")
    if not isinstance(hf_act, str) or hf_act not in TO_GOOGLE_ACT:
        raise ConversionError(f"hidden_act {hf_act!r} has no google-research/bert equivalent (modeling.py "
                              "knows gelu, relu, tanh and linear); this model cannot be written as TF1")
    out["hidden_act"] = TO_GOOGLE_ACT[hf_act]
    if FROM_GOOGLE_ACT[out["hidden_act"]] != hf_act:
        out[HF_ACT_KEY] = hf_act
    return out


def google_runs_differently(config: dict) -> bool:
    """True when google's modeling.py computes another function than transformers does for this config
    (exact GELU, run as google's tanh approximation)."""
    return config.get("hidden_act", "gelu") == "gelu"


def from_architecture(arch: Architecture, origin: str) -> dict:
    return normalize({
        "hidden_size": arch.hidden,
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.heads,
        "intermediate_size": arch.intermediate,
        "vocab_size": arch.vocab_size,
        "max_position_embeddings": arch.max_positions,
        "type_vocab_size": arch.type_vocab,
    }, origin)


def disagreements(config: dict, arch: Architecture) -> list[str]:
    pairs = {
        "num_hidden_layers": arch.layers, "hidden_size": arch.hidden, "num_attention_heads": arch.heads,
        "intermediate_size": arch.intermediate, "vocab_size": arch.vocab_size,
    }
    return [f"{key} is {config.get(key)} in the config but {value} in the manifest"
            for key, value in pairs.items() if config.get(key) != value]


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not a JSON object")
    return data


def read_config_file(path: Path) -> dict:
    """A config.json or bert_config.json; told apart by model_type (HF writes it, Google does not)."""
    data = read_json(path)
    if "model_type" in data or "architectures" in data:
        return normalize(data, str(path))
    return from_google(data, str(path))


def finalize(config: dict, groups: list[str], num_labels: int | None) -> dict:
    """The config.json to write for a checkpoint with these groups."""
    out = {k: v for k, v in config.items()
           if k not in ("architectures", "id2label", "label2id", "num_labels")}
    present = set(groups)
    out["architectures"] = [next((cls for need, cls in ARCHITECTURES if need <= present), "BertModel")]
    if num_labels and "classifier" in present:
        labels = config.get("id2label") or {str(n): f"LABEL_{n}" for n in range(num_labels)}
        if len(labels) == num_labels:
            out["id2label"] = labels
            out["label2id"] = {v: int(k) for k, v in labels.items()}
        else:
            out["id2label"] = {str(n): f"LABEL_{n}" for n in range(num_labels)}
            out["label2id"] = {f"LABEL_{n}": n for n in range(num_labels)}
    out["tie_word_embeddings"] = True
    return dict(sorted(out.items()))
