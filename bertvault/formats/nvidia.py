"""NVIDIA DeepLearningExamples BERT checkpoints (ckpt_<step>.pt): read-only.

The file is a dict: `model` (the state dict) beside `optimizer`, `master params`, `epoch`, `files`
and sometimes a pickled `data_loader`. Only `model` is converted; the rest is training state and is
reported as dropped. A file whose pickle holds objects (the DataLoader) is refused like any pickle
carrying code: re-save `checkpoint["model"]` alone with trusted code first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from bertvault.errors import ConversionError
from bertvault.formats import pt
from bertvault.formats.base import TensorSource

log = logging.getLogger(__name__)


def sniff(obj: object, path: Path) -> bool:
    """A training checkpoint ({"model": state dict, ...}), or DDP-wrapped names and NVIDIA's `dense_act`."""
    if isinstance(obj, Mapping) and "model" in obj:
        return True
    keys = list(obj) if isinstance(obj, Mapping) else []
    return any(str(k).startswith("module.") or ".dense_act." in str(k) for k in keys)


def from_object(obj: object, path: Path) -> TensorSource:
    if isinstance(obj, Mapping) and "model" in obj:
        if not pt.is_tensor_dict(obj["model"]):
            raise ConversionError(f"{path}: its `model` entry is not a state dict of tensors")
        rest = sorted(k for k in obj if k != "model")
        if rest:
            log.info("%s: not converted (training state): %s", path, ", ".join(map(str, rest)))
        source = pt.source_from_state_dict(obj["model"], [path])
        source.metadata["bertvault.training_state"] = ", ".join(map(str, rest))
        return source
    return pt.from_object(obj, path)


def read(path: Path) -> TensorSource:
    return from_object(pt.load_pickle(path), path)
