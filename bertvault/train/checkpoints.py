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
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertvault.errors import TrainingError, UnsafeInput
from bertvault.io import atomic

log = logging.getLogger(__name__)

PATTERN = re.compile(r"^step-(\d+)$")
STATE = "training_state.pt"
TRAINER = "trainer_state.json"
PRUNED = ".pruned"


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
    """What a save or a prune killed half-way left: a checkpoint that was being replaced is put back,
    every other temporary (and pruned) folder of a dead process is removed."""
    atomic.recover(root)
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(".") and child.name.endswith(PRUNED):
                shutil.rmtree(child, ignore_errors=True)


def prune(root: Path, keep: int) -> None:
    """Drops all but the newest `keep` checkpoints. Each is renamed out of the `step-*` names first,
    so a kill during the removal never leaves a half-deleted folder that looks like a checkpoint."""
    for _, old in existing(root)[:-keep]:
        trash = old.with_name(f".{old.name}{PRUNED}")
        os.replace(old, trash)
        shutil.rmtree(trash, ignore_errors=True)


RUN_VOCAB = "vocab.txt"


def keep_vocab(vocab: Path, out: Path) -> Path:
    """The run's own copy of its vocab (OUT/vocab.txt), which checkpoints and exports copy from:
    `--keep` may prune the checkpoint a resumed run read its vocab from."""
    target = out / RUN_VOCAB
    data = vocab.read_bytes()
    if target.resolve() == vocab.resolve() or (target.is_file() and target.read_bytes() == data):
        return target
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{RUN_VOCAB}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


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
    prune(root, keep)
    log.info("saved checkpoint %s", target)
    return target


PER_RANK = ("data", "python_rng")  # pretraining's trainer state: one entry per process


def load(folder: Path, per_rank: tuple[str, ...] = PER_RANK) -> Saved:
    """A checkpoint to resume from. training_state.pt is a pickle: one that names code is refused as
    UnsafeInput (never run); damage of any kind is one TrainingError."""
    from bertvault.formats.pt import torch_load

    try:
        trainer_state = json.loads((folder / TRAINER).read_text(encoding="utf-8"))
        torch_state = torch_load(folder / STATE)
        problems = _shape_problems(trainer_state, torch_state, per_rank)
    except UnsafeInput:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file shows up as many kinds of error
        problems = [str(exc).splitlines()[0] if str(exc) else type(exc).__name__]
    if problems:
        raise TrainingError(f"checkpoint {folder} cannot be read ({'; '.join(problems)}); "
                            "resume from an earlier one (move this folder away)")
    return Saved(int(trainer_state["step"]), folder, torch_state, trainer_state)


def _shape_problems(trainer_state, torch_state, per_rank: tuple[str, ...]) -> list[str]:
    """What `--resume` reads from the two files, checked before any of it is used; `per_rank`: the
    trainer-state entries that hold one value per process."""
    if not isinstance(trainer_state, dict) or not isinstance(torch_state, dict):
        return [f"{TRAINER} and {STATE} must each hold a mapping"]
    problems = [f"{STATE} lacks {key!r}" for key in ("optimizer", "scheduler", "rng")
                if key not in torch_state]
    step = trainer_state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        problems.append(f"{TRAINER}: step {step!r} is not a count of steps")
    ranks = torch_state.get("rng")
    for key in per_rank:
        value = trainer_state.get(key)
        if not isinstance(value, list) or not isinstance(ranks, list) or len(value) != len(ranks):
            problems.append(f"{TRAINER}: {key!r} must be a list with one entry per process")
    return problems
