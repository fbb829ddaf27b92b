"""Checkpoint formats: one small reader/writer module each, registered here by name.

A format's names map to the canonical ones through converters/<keymap>.toml; the modules only move
tensors in and out of files. Modules are imported when used, so listing formats imports nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bertvault.errors import ConversionError


@dataclass(frozen=True)
class Format:
    name: str
    keymap: str  # converters/<keymap>.toml
    description: str
    module: str  # bertvault.formats.<module>: read(path) and, if writable, write(dest, job)
    writable: bool
    folder_weights: str | None = None  # the weights file inside a folder output
    file_suffixes: tuple[str, ...] = ()  # --out with one of these writes that single file

    def reader(self) -> Any:
        return importlib.import_module(f"bertvault.formats.{self.module}").read

    def writer(self) -> Any:
        if not self.writable:
            raise ConversionError(f"{self.name} is read-only; write one of {', '.join(WRITABLE)}")
        return importlib.import_module(f"bertvault.formats.{self.module}").write


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("tf1", "tf1", "google-research/bert TF1 checkpoint folder (bert_model.ckpt.*, bert_config.json, vocab.txt)",
           "tf1", True),
    Format("tf2", "tf2", "TF2 Model Garden object-based checkpoint (read-only)", "tf2", False),
    Format("safetensors", "hf", "safetensors state dict, single or sharded with an index", "safetensors", True,
           "model.safetensors", (".safetensors",)),
    Format("pt", "hf", "PyTorch state dict (.bin/.pt), single or sharded with an index", "pt", True,
           "pytorch_model.bin", (".bin", ".pt", ".pth")),
    Format("hf", "hf", "Hugging Face model folder (config.json, model.safetensors, vocab.txt, tokenizer.json)",
           "hf", True),
    Format("azureml-pt", "azureml-pt", "AzureML-BERT encoder state dict (.pt), no heads", "azureml", True,
           "bert_encoder.pt", (".pt", ".bin")),
    Format("nvidia-pt", "nvidia-pt", "NVIDIA DeepLearningExamples BERT checkpoint (.pt, read-only)", "nvidia", False),
)}
WRITABLE = tuple(name for name, f in FORMATS.items() if f.writable)

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
