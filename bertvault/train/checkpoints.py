"""Training checkpoints: written atomically, found again by `--resume`, pruned to the newest `--keep`.

    OUT/checkpoints/step-00001000/
        model.safetensors, config.json, vocab.txt   canonical weights (an HF folder as it is)
        settings.toml                               the resolved run settings
        training_state.pt                           optimizer, scheduler, grad scaler, torch RNG per rank
        trainer_state.json                          step, data position, Python/numpy RNG per rank

A checkpoint is built in a hidden temporary folder and renamed into place, so a `step-*` folder
is always complete; temporary folders left by a killed process are removed on the next start.
`training_state.pt` holds only tensors and plain containers and is read with `weights_only=True`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertvault.errors import TrainingError
from bertvault.io import atomic

log = logging.getLogger(__name__)

PATTERN = re.compile(r"^step-(\d+)$")
STATE = "training_state.pt"
TRAINER = "trainer_state.json"


def folder_for(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def existing(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = PATTERN.match(child.name)
        if match and (child / TRAINER).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest(root: Path) -> Path | None:
    found = existing(root)
    return found[-1][1] if found else None


def clean_partial(root: Path) -> None:
    """Temporary folders of a save that was killed half-way (their process is gone)."""
    for leftover in atomic.leftovers_in(root):
        atomic.remove(leftover)


def python_rng_state() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    legacy = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [legacy[0], legacy[1].tolist(), int(legacy[2]), int(legacy[3]), float(legacy[4])],
    }


def set_python_rng_state(state: dict[str, Any]) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


@dataclass
class Saved:
    step: int
    folder: Path
    torch_state: dict
    trainer_state: dict


def save(root: Path, step: int, write_model, torch_state: dict, trainer_state: dict, keep: int) -> Path:
    """Writes one checkpoint atomically, then drops the oldest beyond `keep`."""
    target = folder_for(root, step)
    with atomic.atomic_output(target) as tmp:
        tmp.mkdir()
        write_model(tmp)
        torch.save(_to_cpu(torch_state), tmp / STATE)
        (tmp / TRAINER).write_text(json.dumps({"step": step, **trainer_state}), encoding="utf-8")
    for _, old in existing(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("saved checkpoint %s", target)
    return target


def load(folder: Path) -> Saved:
    try:
        trainer_state = json.loads((folder / TRAINER).read_text(encoding="utf-8"))
        torch_state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file shows up as many kinds of error
        raise TrainingError(f"checkpoint {folder} cannot be read ({exc}); resume from an earlier one") from None
    return Saved(int(trainer_state["step"]), folder, torch_state, trainer_state)
