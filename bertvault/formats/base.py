"""What readers hand to the engine and what the engine hands to writers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bertvault.convert.engine import Entry
from bertvault.convert.tensors import LazyTensor


@dataclass
class TensorSource:
    """A checkpoint's tensors under their own names; `load` reads one."""

    entries: dict[str, Entry]
    load: Callable[[str], np.ndarray]
    files: list[Path]
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata
    close: Callable[[], None] = lambda: None


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
