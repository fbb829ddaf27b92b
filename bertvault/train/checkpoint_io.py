"""Model weights in and out of training: any checkpoint -> canonical weights; HF and TF1 exports.

Canonical form: `transformers.BertForPreTraining` state-dict names (`bert.*`, `cls.*`), an HF
`config.json` and a `vocab.txt`. Every checkpoint is read through `bertvault.convert` (the one
reader of every format, HF folders included); exports write the one tokenizer (formats.tokenizer).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from bertvault.errors import ConversionError, TrainingError
from bertvault.formats import tokenizer
from bertvault.io.atomic import atomic_output
from bertvault.sources import Source

log = logging.getLogger(__name__)

# The decoder is the word-embedding matrix and its bias is cls.predictions.bias; files keep one copy.
TIED = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}


@dataclass
class ModelSource:
    """Weights with canonical names, the HF config, the vocab and how the text was cased."""

    name: str
    state_dict: dict[str, torch.Tensor]
    config: dict
    vocab_path: Path | None
    lowercase: bool | None


def load_model_source(source: Source, weights: bool = True) -> ModelSource:
    """A resolved checkpoint (any format bertvault reads) as canonical weights, through the converter's
    one reader. weights=False reads only the config (for the checks before a launch)."""
    from bertvault.convert import load_canonical

    canonical = load_canonical(source)
    try:
        state_dict = canonical.state_dict() if weights else {}
        config = canonical.hf_config()
    finally:
        canonical.close()
    return ModelSource(source.name, state_dict, config, canonical.vocab_path, canonical.lowercase)


def check_vocab(config: dict, vocab_path: Path | None,
                state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """The vocab must index the embedding rows: same size, or rows padded to a multiple of 8."""
    if vocab_path is None:
        raise TrainingError("the checkpoint has no vocab.txt beside it; pass one with --vocab")
    lines = sum(1 for _ in vocab_path.open(encoding="utf-8"))
    rows = config.get("vocab_size")
    if state_dict and "bert.embeddings.word_embeddings.weight" in state_dict:
        rows = state_dict["bert.embeddings.word_embeddings.weight"].shape[0]
    if rows != lines and not (rows > lines and rows % 8 == 0 and rows - lines < 8):
        raise TrainingError(
            f"checkpoint and vocab disagree: the model has {rows} word embeddings but {vocab_path} has "
            f"{lines} tokens; pass the vocab.txt the checkpoint was trained with (--vocab)"
        )


# --- the model --------------------------------------------------------------------------------------

def build_model(config: dict, state_dict: dict[str, torch.Tensor] | None, dropout: float | None = None):
    """BertForPreTraining with SDPA attention, weights loaded; heads made fresh when absent."""
    from transformers import BertConfig, BertForPreTraining
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    values = {k: v for k, v in config.items() if not k.startswith("_")}
    if dropout is not None:
        values["hidden_dropout_prob"] = values["attention_probs_dropout_prob"] = dropout
    bert_config = BertConfig(**values)
    bert_config.architectures = ["BertForPreTraining"]
    model = BertForPreTraining._from_config(bert_config, attn_implementation="sdpa")
    if state_dict is None:
        return model, []
    weights = {k: v for k, v in state_dict.items() if k not in TIED}
    known = set(model.state_dict())
    extra = sorted(k for k in weights if k not in known)
    if extra:
        log.warning("not part of BertForPreTraining, left out: %s",
                    ", ".join(extra[:8]) + (" ..." if len(extra) > 8 else ""))
    problems = [
        f"{k}: checkpoint {list(v.shape)} vs model {list(model.state_dict()[k].shape)}"
        for k, v in weights.items() if k in known and tuple(v.shape) != tuple(model.state_dict()[k].shape)
    ]
    if problems:
        raise ConversionError(["the weights do not fit the config", *problems])
    missing, _ = model.load_state_dict({k: v for k, v in weights.items() if k in known}, strict=False)
    missing = [k for k in missing if k not in TIED and not k.endswith(("position_ids", "token_type_ids"))]
    encoder_missing = [k for k in missing if k.startswith("bert.") and not k.startswith("bert.pooler.")]
    if encoder_missing:
        raise ConversionError(f"the checkpoint lacks encoder weights: {', '.join(encoder_missing[:6])}")
    model.tie_weights()
    fresh = [k for k in missing if not k.startswith("bert.encoder")]
    return model, fresh


# --- writing ----------------------------------------------------------------------------------------

def canonical_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies, tied duplicates left out (safetensors refuses shared memory)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if k not in TIED and not k.endswith(("position_ids", "token_type_ids"))}


def save_weights(model: torch.nn.Module, folder: Path) -> None:
    """model.safetensors + config.json: canonical, and loadable by transformers as it is."""
    from safetensors.torch import save_file

    save_file(canonical_state_dict(model), folder / "model.safetensors", metadata={"format": "pt"})
    config = model.config.to_dict()
    config["architectures"] = ["BertForPreTraining"]
    config.pop("_attn_implementation_autoset", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def save_vocab(folder: Path, vocab_path: Path, lowercase: bool, max_length: int) -> None:
    """vocab.txt and the tokenizer files: a training checkpoint reads back tokenized as it was."""
    tokenizer.write_files(folder, vocab_path, lowercase, max_length)


def export_hf(model: torch.nn.Module, vocab_path: Path, lowercase: bool, target: Path) -> Path:
    """An HF folder loadable by AutoModelForPreTraining and AutoTokenizer, written atomically."""
    with atomic_output(target) as tmp:
        tmp.mkdir()
        save_weights(model, tmp)
        tokenizer.write_files(tmp, vocab_path, lowercase, model.config.max_position_embeddings)
    return target


def export_tf1(model: torch.nn.Module, vocab_path: Path, lowercase: bool, target: Path) -> Path:
    """A google-research/bert TF1 checkpoint (bert_model.ckpt.*, bert_config.json, vocab.txt)."""
    try:
        from bertvault.convert import export_tf1 as write_tf1
        from bertvault.convert import from_state_dict
    except ImportError:
        raise TrainingError("--export tf1 needs bertvault's converter (bertvault.convert), missing here"
                            ) from None
    config = model.config.to_dict()
    canonical = from_state_dict(canonical_state_dict(model), config, vocab_path, lowercase)
    write_tf1(canonical, target, force=True)
    return target
