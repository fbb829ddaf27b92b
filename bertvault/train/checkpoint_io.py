"""Model weights in and out of training: any checkpoint -> canonical weights; HF and TF1 exports.

Canonical form: `transformers.BertForPreTraining` state-dict names (`bert.*`, `cls.*`), an HF
`config.json` and a `vocab.txt`. Formats other than Hugging Face folders go through
`bertvault.convert`; an HF folder or a `.safetensors` file is read here directly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from bertvault.errors import ConversionError, TrainingError

log = logging.getLogger(__name__)

# The decoder is the word-embedding matrix and its bias is cls.predictions.bias; files keep one copy.
TIED = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
HEAD_PREFIXES = ("cls.predictions.transform.", "cls.predictions.bias", "cls.seq_relationship.")


@dataclass
class ModelSource:
    """Weights with canonical names, the HF config, the vocab and how the text was cased."""

    name: str
    state_dict: dict[str, torch.Tensor]
    config: dict
    vocab_path: Path | None
    lowercase: bool | None

    @property
    def has_heads(self) -> bool:
        return any(k.startswith(HEAD_PREFIXES) for k in self.state_dict)


# --- reading ----------------------------------------------------------------------------------------

def canonical_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF spellings seen in the wild -> BertForPreTraining names (no prefix, gamma/beta, buffers)."""
    out = {}
    for key, tensor in state_dict.items():
        key = key.removeprefix("module.")
        if key.endswith(("position_ids", "token_type_ids")):
            continue  # buffers, rebuilt by the model
        if not key.startswith(("bert.", "cls.", "classifier.", "qa_outputs.")):
            key = "bert." + key  # a bare BertModel (MiniLM, AzureML encoders)
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[key] = tensor
    return out


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        weights: dict[str, torch.Tensor] = {}
        for shard in shards:
            weights.update(load_file(folder / shard))
        return weights
    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        # A pickle from the internet can run code: tensors and plain containers only.
        try:
            return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - the unpickler raises many kinds
            raise ConversionError(f"{folder / 'pytorch_model.bin'} is not a plain tensor file: {exc}") from None
    raise ConversionError(f"{folder} has config.json but no model.safetensors or pytorch_model.bin")


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from None
    if config.get("model_type", "bert") != "bert":
        raise ConversionError(f"{path.parent} holds a {config.get('model_type')!r} model; bertvault trains BERT only")
    return config


def _hf_folder(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return canonical_names(_read_weights(folder)), _read_config(folder / "config.json")


def _lowercase_of(folder: Path, vocab_path: Path | None, artifact=None) -> bool | None:
    """How the checkpoint's text was cased: tokenizer_config.json, the registry, else the vocab."""
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        try:
            value = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("do_lower_case")
            if isinstance(value, bool):
                return value
        except (OSError, ValueError):
            pass
    if artifact is not None and artifact.architecture is not None:
        return not artifact.architecture.cased
    return guess_lowercase(vocab_path) if vocab_path else None


def guess_lowercase(vocab_path: Path) -> bool:
    """An uncased vocab has (almost) no upper-case word pieces."""
    tokens = vocab_path.read_text(encoding="utf-8").splitlines()
    upper = sum(1 for t in tokens if t[:1].isupper() and not t.startswith("["))
    return upper < 0.01 * max(len(tokens), 1)


def _from_convert(source: str, weights: bool = True) -> ModelSource:
    """Every other format, through bertvault.convert's canonical reader."""
    try:
        from bertvault.convert import load_canonical
    except ImportError:
        raise ConversionError(
            f"{source}: not a Hugging Face folder (config.json + model.safetensors), and this install has no "
            "converter for other formats"
        ) from None
    canonical = load_canonical(source)
    try:
        state_dict = canonical_names(canonical.state_dict()) if weights else {}
        config = canonical.hf_config()
    finally:
        canonical.close()
    return ModelSource(str(source), state_dict, config, canonical.vocab_path, canonical.lowercase)


def load_model_source(source: str, weights: bool = True) -> ModelSource:
    """A registered name or a path, in any format bertvault reads, as canonical weights.

    weights=False reads only the config and finds the vocab (cheap: for checks before a launch).
    """
    from bertvault.sources import resolve

    resolved = resolve(source)
    path = resolved.path
    folder = path if path.is_dir() else path.parent
    if path.is_dir() and (path / "config.json").is_file() and _has_hf_weights(path):
        config = _read_config(path / "config.json")
        state_dict = _hf_folder(path)[0] if weights else {}
    elif path.suffix == ".safetensors" and (folder / "config.json").is_file():
        from safetensors.torch import load_file

        config = _read_config(folder / "config.json")
        state_dict = canonical_names(load_file(path)) if weights else {}
    else:
        return _from_convert(source, weights)
    vocab = folder / "vocab.txt" if (folder / "vocab.txt").is_file() else None
    return ModelSource(source, state_dict, config, vocab, _lowercase_of(folder, vocab, resolved.artifact))


def _has_hf_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in
               ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"))


def check_vocab(config: dict, vocab_path: Path | None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """The vocab must index the embedding rows: same size, or rows padded to a multiple of 8."""
    if vocab_path is None:
        raise TrainingError("the checkpoint has no vocab.txt beside it; pass one with --vocab")
    lines = sum(1 for _ in vocab_path.open(encoding="utf-8"))
    rows = config.get("vocab_size")
    if state_dict and "bert.embeddings.word_embeddings.weight" in state_dict:
        rows = state_dict["bert.embeddings.word_embeddings.weight"].shape[0]
    if rows != lines and not (rows > lines and rows % 8 == 0 and rows - lines < 8):
        raise TrainingError(
            f"checkpoint and vocab disagree: the model has {rows} word embeddings but {vocab_path} has {lines} "
            "tokens; pass the vocab.txt the checkpoint was trained with (--vocab)"
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

@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yields a temporary folder beside `target`; renames it into place only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def save_vocab(folder: Path, vocab_path: Path, lowercase: bool) -> None:
    """vocab.txt and how text was cased: enough for a training checkpoint to be read back as it was."""
    shutil.copyfile(vocab_path, folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase}), encoding="utf-8")


def save_tokenizer(folder: Path, vocab_path: Path, lowercase: bool, max_length: int) -> None:
    """vocab.txt, tokenizer.json and tokenizer_config.json: the files `convert --to hf` writes."""
    from bertvault.formats.sidecars import copy_vocab, write_tokenizer

    copy_vocab(folder, vocab_path, required=True, fmt="hf")
    write_tokenizer(folder, vocab_path, lowercase, max_length)


def export_hf(model: torch.nn.Module, vocab_path: Path, lowercase: bool, target: Path) -> Path:
    """An HF folder loadable by AutoModelForPreTraining and AutoTokenizer, written atomically."""
    with atomic_folder(target) as tmp:
        save_weights(model, tmp)
        save_tokenizer(tmp, vocab_path, lowercase, model.config.max_position_embeddings)
    return target


def export_tf1(model: torch.nn.Module, vocab_path: Path, lowercase: bool, target: Path) -> Path:
    """A google-research/bert TF1 checkpoint (bert_model.ckpt.*, bert_config.json, vocab.txt)."""
    try:
        from bertvault.convert import export_tf1 as write_tf1
        from bertvault.convert import from_state_dict
    except ImportError:
        raise TrainingError("--export tf1 needs bertvault's converter (bertvault.convert), missing here") from None
    config = model.config.to_dict()
    canonical = from_state_dict(canonical_state_dict(model), config, vocab_path, lowercase)
    write_tf1(canonical, target, force=True)
    return target
