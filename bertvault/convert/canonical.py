"""The canonical form (BertForPreTraining names + HF config + vocab.txt) and reading any format into it."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bertvault import formats
from bertvault.convert import config as configs
from bertvault.convert.engine import ReadReport, plan_read
from bertvault.convert.keymap import load_keymap
from bertvault.convert.ops import padded_vocab
from bertvault.convert.schema import load_schema
from bertvault.errors import ConversionError
from bertvault.formats.detect import Opened
from bertvault.formats.tensors import LazyTensor
from bertvault.sources import Source, resolve

if TYPE_CHECKING:
    from bertvault.registry.schema import Artifact

log = logging.getLogger(__name__)


@dataclass
class Canonical:
    """A BERT in canonical names, its tensors read on demand."""

    tensors: dict[str, LazyTensor]
    config: dict  # HF config.json fields (architectures is filled in by hf_config)
    vocab_path: Path | None
    lowercase: bool | None
    report: ReadReport
    source: Path | None = None  # what the reader took: a file, a TF prefix or a folder
    artifact: str | None = None  # the registered name it came from
    closers: list[Callable[[], None]] = field(default_factory=list)
    origin: Source | None = None  # what the user named, resolved (None for a model in memory)

    @property
    def format(self) -> str:
        return self.report.format

    @property
    def groups(self) -> list[str]:
        return self.report.groups

    @property
    def tied(self) -> dict[str, str]:
        """alias -> owner for the ties this checkpoint has (the MLM head's decoder)."""
        return {a: o for a, o in load_schema().ties.items() if o in self.tensors and "mlm" in self.groups}

    def hf_config(self) -> dict:
        return configs.finalize(self.config, self.groups, self.report.num_labels)

    def state_dict(self, dtype=None) -> dict:
        """torch tensors under canonical names, the tied aliases sharing their owner's tensor."""
        from bertvault.formats.tensors import numpy_to_torch

        out = {name: numpy_to_torch(t.load()) for name, t in self.tensors.items()}
        if dtype is not None:
            out = {k: v.to(dtype) if v.is_floating_point() else v for k, v in out.items()}
        for alias, owner in self.tied.items():
            out[alias] = out[owner]
        return out

    def to_model(self, dtype=None, *, init_missing: bool = True):
        """A transformers BertForPreTraining on the CPU with these weights. Heads the source lacks
        (`groups` says which are real) are randomly initialised, or zeros with init_missing=False,
        which skips initialising weights that are overwritten anyway (seconds for BERT-large).
        Finetuned heads are not part of it."""
        import torch
        from transformers import BertConfig, BertForPreTraining

        dtype = dtype or torch.float32
        with contextlib.nullcontext() if init_missing else _no_init_weights():
            model = BertForPreTraining(BertConfig(**self.hf_config()))
        model = model.to(dtype).eval()
        state = {k: v for k, v in self.state_dict(dtype).items() if k.startswith(("bert.", "cls."))}
        # assign: the model takes these tensors (mapped from the file where no op changed them) as
        # its weights instead of copying them, so it holds one copy of the model, not two.
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if unexpected:
            raise ConversionError(f"transformers' BertForPreTraining rejected keys: {sorted(unexpected)[:5]}")
        if not init_missing:
            parameters = dict(model.named_parameters())
            with torch.no_grad():
                for name in missing:
                    if name in parameters:
                        parameters[name].zero_()
        model.tie_weights()
        return model

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()


def _no_init_weights():
    """transformers' switch that skips random initialisation (its home moved in transformers 5)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights
        except ImportError:
            return contextlib.nullcontext()
    return no_init_weights()


def _config_for(opened: Opened, artifact: Artifact | None, override: Path | dict | None) -> tuple[dict, str]:
    folder = opened.folder
    metadata = opened.tensors.metadata
    if isinstance(override, dict):
        return configs.normalize(override, "the given config"), "the given config"
    if override is not None:
        return configs.read_config_file(Path(override)), str(override)
    if "bertvault.config" in metadata:
        try:
            value = json.loads(metadata["bertvault.config"])
        except json.JSONDecodeError:
            raise ConversionError(f"{opened.weights}: its bertvault.config metadata is not JSON") from None
        if not isinstance(value, dict):
            raise ConversionError(f"{opened.weights}: its bertvault.config metadata is not a JSON object")
        return configs.normalize(value, str(opened.weights)), "file metadata"
    for name in ("config.json", "bert_config.json"):
        if (folder / name).is_file():
            return configs.read_config_file(folder / name), str(folder / name)
    if artifact is not None and artifact.architecture is not None:
        return configs.from_architecture(artifact.architecture, f"manifest of {artifact.name}"), "manifest"
    raise ConversionError(
        f"no config for {opened.weights}: no config.json or bert_config.json in {folder} and no registered "
        "architecture; pass --config FILE"
    )


def count_tokens(vocab: Path) -> int:
    try:
        return len(vocab.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversionError(f"cannot read {vocab}: {exc}") from None


def load_canonical(source: Source | str | Path, *, from_format: str | None = None,
                   config: Path | dict | None = None, vocab: Path | None = None) -> Canonical:
    """A checkpoint in the canonical form: a resolved Source, or a path or registered name (resolved here).

    The Source's tensors are taken over (the Canonical closes them). Only names, shapes and dtypes
    are read here; tensors are read when a writer or `state_dict` asks."""
    if not isinstance(source, Source):
        source = resolve(str(source), "checkpoint", from_format=from_format, vocab=vocab)
    opened, artifact = source.checkpoint, source.artifact
    assert opened is not None, "resolve(..., 'checkpoint') opens the weights"
    try:
        return _canonical(source, opened, artifact, config)
    except BaseException:
        opened.close()
        raise


def _canonical(source: Source, opened: Opened, artifact: Artifact | None,
               config: Path | dict | None) -> Canonical:
    spec = formats.get(opened.format)
    tensors = opened.tensors
    hf_config, origin = _config_for(opened, artifact, config)
    if artifact is not None and artifact.architecture is not None and origin != "manifest":
        disagree = configs.disagreements(hf_config, artifact.architecture)
        if disagree:
            raise ConversionError([f"{artifact.name}: {d}" for d in disagree])
    vocab_path = source.vocab
    tokens = count_tokens(vocab_path) if vocab_path else None
    if spec.name == "nvidia-pt" and tokens and hf_config["vocab_size"] == padded_vocab(tokens) != tokens:
        hf_config = {**hf_config, "vocab_size": tokens}  # the padded size of NVIDIA's config, trimmed
    canonical, report = plan_read(load_keymap(spec.keymap), tensors.entries, tensors.load, hf_config)
    if tokens is not None and tokens != hf_config["vocab_size"]:
        rows = canonical["bert.embeddings.word_embeddings.weight"].shape[0]
        raise ConversionError(
            f"{vocab_path} has {tokens} tokens but the embeddings have {rows} rows ({origin} says vocab_size "
            f"{hf_config['vocab_size']}); use the vocab.txt that belongs to this checkpoint"
        )
    if tensors.metadata.get("bertvault.training_state"):
        state = tensors.metadata["bertvault.training_state"]
        report.dropped["training state, not weights"] = state.split(", ")
    for reason, keys in report.dropped.items():
        log.info("dropped %d key(s), %s: %s", len(keys), reason, ", ".join(keys[:4]))
    return Canonical(canonical, hf_config, vocab_path, source.lowercase, report,
                     opened.weights, artifact.name if artifact else None, [tensors.close], source)


def from_state_dict(state_dict: Mapping, config: dict, vocab_path: Path | None = None,
                    lowercase: bool | None = None) -> Canonical:
    """A canonical model from torch tensors in memory (a trainer's model.state_dict()), validated."""
    from bertvault.formats.pt import source_from_state_dict

    hf_config = configs.normalize(dict(config), "the given config")
    tensors = source_from_state_dict(state_dict, [])
    canonical, report = plan_read(load_keymap("hf"), tensors.entries, tensors.load, hf_config)
    return Canonical(canonical, hf_config, vocab_path, lowercase, report)
