"""BERT configs: reading any config file into the canonical one (an HF config.json dict), checking it.

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

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bertvault.errors import ConversionError
from bertvault.formats import google_config
from bertvault.formats.base import read_json

if TYPE_CHECKING:
    from bertvault.registry.schema import Architecture

log = logging.getLogger(__name__)

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
# Numbers a config may carry, and what they must be (a string or NaN would reach the model otherwise).
NUMBERS = {
    "layer_norm_eps": (" above 0", lambda v: 0 < v < 1),
    "initializer_range": (" above 0", lambda v: 0 < v < 10),
    "hidden_dropout_prob": (" in [0, 1)", lambda v: 0 <= v < 1),
    "attention_probs_dropout_prob": (" in [0, 1)", lambda v: 0 <= v < 1),
}
# Which transformers class a checkpoint's heads make it (first match).
ARCHITECTURES = (
    ({"classifier"}, "BertForSequenceClassification"),
    ({"qa"}, "BertForQuestionAnswering"),
    ({"mlm", "nsp"}, "BertForPreTraining"),
    ({"mlm"}, "BertForMaskedLM"),
)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def normalize(config: dict, origin: str) -> dict:
    """Fill defaults and check that the numbers a BERT needs are there and sane."""
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise ConversionError(f"{origin} describes a {model_type!r} model, not BERT")
    out = {**DEFAULTS, **config}
    problems = [f"{origin} lacks {key}" if key not in out
                else f"{origin}: {key} must be a positive whole number, got {out[key]!r}"
                for key in REQUIRED if not _is_count(out.get(key))]
    problems += [f"{origin}: {key} must be a number{rule}, got {out[key]!r}"
                 for key, (rule, ok) in NUMBERS.items()
                 if key in out and not (_is_number(out[key]) and ok(out[key]))]
    if not isinstance(out.get("hidden_act"), str):
        problems.append(f"{origin}: hidden_act must be an activation name, got {out.get('hidden_act')!r}")
    if not problems and out["hidden_size"] % out["num_attention_heads"]:
        problems.append(f"{origin}: hidden_size {out['hidden_size']} is not a multiple of "
                        f"num_attention_heads {out['num_attention_heads']}")
    if problems:
        raise ConversionError(problems)
    return out


def from_google(config: dict, origin: str = "bert_config.json") -> dict:
    return normalize(google_config.to_hf(config, origin), origin)


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
