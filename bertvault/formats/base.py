"""What readers hand to the engine and what the engine hands to writers."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bertvault.errors import ConversionError
from bertvault.formats.rawio import Placed
from bertvault.formats.tensors import Entry, LazyTensor


def read_json(path: Path) -> dict:
    """A JSON object from a file beside the weights (config, index, tokenizer config)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not a JSON object")
    return data


@dataclass
class TensorSource:
    """A checkpoint's tensors under their own names; `load` reads one."""

    entries: dict[str, Entry]
    load: Callable[[str], np.ndarray]
    files: list[Path]
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata
    close: Callable[[], None] = lambda: None


def produce(name: str, tensor: LazyTensor) -> np.ndarray:
    """A tensor's values for a writer, checked against what the file's header already promised."""
    array = tensor.load()
    if array.dtype != tensor.dtype:
        raise ConversionError(f"{name}: produced {array.dtype}, planned {tensor.dtype}")
    return array


def placed(offset: int, name: str, tensor: LazyTensor) -> Placed:
    """A tensor for rawio.write_placed, at `offset` of the output file."""
    return Placed(offset, tensor.nbytes, functools.partial(produce, name, tensor), tensor.region)


@dataclass
class WriteJob:
    """Tensors already renamed and shaped for the target format, and what goes beside them."""

    tensors: list[tuple[str, LazyTensor]]
    config: dict  # HF config.json, finalized for the heads present
    vocab_path: Path | None
    lowercase: bool | None
    tied: dict[str, str]  # alias -> owner, canonical names
    single_file: bool  # write only the weights file at the given path
    max_shard_size: int | None = None
