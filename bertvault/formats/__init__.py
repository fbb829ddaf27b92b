"""Checkpoint formats: one small reader/writer module each, registered here by name.

A format's names map to the canonical ones through converters/<keymap>.toml; the modules only move
tensors in and out of files. Each format also says which files hold it (`container`: a TF tensor
bundle, a safetensors file, a pickle) and recognises its own among the formats sharing a container
(`sniff` in its module); `formats.detect` loops over this table. Modules are imported when used,
so listing formats imports nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bertvault.errors import ConversionError

# How a file is opened, by its name. Several formats may share one; their modules' `sniff` tell.
CONTAINERS = ("tf-bundle", "safetensors", "pickle")


@dataclass(frozen=True)
class Format:
    name: str
    keymap: str  # converters/<keymap>.toml
    description: str
    module: str  # bertvault.formats.<module>: read(path), sniff(opened, path), write(dest, job) if writable
    writable: bool
    container: str  # how its weights are stored (CONTAINERS)
    file_suffixes: tuple[str, ...] = ()  # --out with one of these writes that single file

    @property
    def code(self) -> Any:
        return importlib.import_module(f"bertvault.formats.{self.module}")

    def reader(self) -> Any:
        return self.code.read

    def writer(self) -> Any:
        if not self.writable:
            raise ConversionError(f"{self.name} is read-only; write one of {', '.join(WRITABLE)}")
        return self.code.write


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("tf1", "tf1", "google-research/bert TF1 checkpoint folder (bert_model.ckpt.*, bert_config.json, "
           "vocab.txt)", "tf1", True, "tf-bundle"),
    Format("tf2", "tf2", "TF2 Model Garden object-based checkpoint (read-only)", "tf2", False, "tf-bundle"),
    Format("safetensors", "hf", "safetensors state dict, single or sharded with an index", "safetensors",
           True, "safetensors", (".safetensors",)),
    Format("pt", "hf", "PyTorch state dict (.bin/.pt), single or sharded with an index", "pt", True, "pickle",
           (".bin", ".pt", ".pth")),
    Format("hf", "hf", "Hugging Face model folder (config.json, model.safetensors, vocab.txt, "
           "tokenizer.json)", "hf", True, "folder"),
    Format("azureml-pt", "azureml-pt", "AzureML-BERT encoder state dict (.pt), no heads", "azureml", True,
           "pickle", (".pt", ".bin")),
    Format("nvidia-pt", "nvidia-pt", "NVIDIA DeepLearningExamples BERT checkpoint (.pt, read-only)", "nvidia",
           False, "pickle"),
)}
# Within a container, the first format whose sniff accepts a file takes it: the most specific first.
SNIFF_ORDER = ("tf2", "tf1", "safetensors", "nvidia-pt", "azureml-pt", "pt")
WRITABLE = tuple(name for name, f in FORMATS.items() if f.writable)
# Every suffix a lone weights file may carry, whatever its format.
WEIGHT_SUFFIXES = tuple(dict.fromkeys(s for f in FORMATS.values() for s in f.file_suffixes))

# The registry's format names (manifests) -> the converter's.
FROM_MANIFEST = {
    "tf1-checkpoint": "tf1",
    "tf2-checkpoint": "tf2",
    "hf-safetensors": "hf",
    "hf-pytorch": "hf",
    "azureml-encoder-pt": "azureml-pt",
    "nvidia-pt": "nvidia-pt",
}


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConversionError(f"unknown format {name!r}; expected one of {', '.join(FORMATS)}") from None


def in_container(container: str) -> list[Format]:
    """The formats stored in `container`, in the order their sniffs are asked."""
    return [FORMATS[name] for name in SNIFF_ORDER if FORMATS[name].container == container]
