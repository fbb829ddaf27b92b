"""`--data` -> the stream of micro-batches one rank trains on (built on bertvault.data).

`--data` may be raw text (one sentence per line, blank line between documents) or AzureML
shards, prepared on the fly into OUT/data; a `bertvault prepare` output folder; TFRecord files
(a file, a folder or a glob); or a registered dataset name. Preparing happens once, on rank 0,
and a resumed run reuses the prepared folder.

Order and position: bertvault.data's dataset gives rank r of W the permuted examples r, r+W, ...;
batches are consecutive items of that, the last partial batch of an epoch is dropped (so every
rank takes the same number of steps per epoch), and the position saved in a checkpoint is
(epoch, batches taken in that epoch).
"""

from __future__ import annotations

import contextlib
import glob
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bertvault import sources
from bertvault.errors import DataError, TrainingError
from bertvault.train import loader as loader_module

log = logging.getLogger(__name__)

# What PretrainingModel.forward takes; the dataset's `labels` (the -100 form) is not needed.
MODEL_KEYS = ("input_ids", "token_type_ids", "attention_mask", "masked_lm_positions", "masked_lm_ids",
              "masked_lm_weights", "next_sentence_label")
EVAL_SEED_OFFSET = 1_000_003  # eval masks differ from any training epoch's


def _is_prepared(path: Path) -> bool:
    from bertvault.data import shards

    return path.is_dir() and (path / shards.HEADER).is_file()


def _local_spec(spec: str) -> str:
    """A path or glob as given; a registered dataset -> its cached folder; a URL -> pulled."""
    if glob.has_magic(spec) and "://" not in spec:
        return spec
    return str(sources.resolve(spec).path)


def check_exists(spec: str) -> None:
    """A path (or glob) that matches something, or a registered dataset in the cache."""
    if glob.has_magic(spec) and "://" not in spec and not glob.glob(spec):
        raise DataError(f"--data {spec}: the pattern matches no file")
    _local_spec(spec)  # raises for a name that is neither a path nor a cached registered dataset


def _prepare(spec: str, vocab_path: Path, lowercase: bool, target: Path, settings) -> Path:
    from bertvault.data import prepare

    options = prepare.Options(seq_len=settings.seq_len, max_predictions=settings.max_predictions,
                              masked_lm_prob=settings.mask_prob, seed=settings.seed, workers=max(1, settings.workers))
    plan = prepare.plan([spec], str(vocab_path), str(target), options, lowercase)
    log.info("preparing %s into %s (for a large corpus, `bertvault prepare --workers N` first is faster)",
             spec, target)
    prepare.run(plan)
    return target


def resolve_source(spec: str, vocab_path: Path, lowercase: bool, target: Path, settings, device) -> str:
    """A source PretrainingDataset reads; text and AzureML shards are prepared first (rank 0 only)."""
    spec = _local_spec(spec)
    path = Path(spec).expanduser()
    if _is_prepared(path):
        return spec
    if _is_prepared(target):  # prepared by an earlier (interrupted) run of this --out
        return str(target)
    from bertvault.data import inputs

    if path.exists():
        kinds = {f.kind for f in inputs.classify([spec])}
        if kinds == {"tfrecord"}:
            return spec
    elif glob.has_magic(spec):
        return spec  # a glob of TFRecords
    failure = None
    if device.is_main:
        try:
            _prepare(spec, vocab_path, lowercase, target, settings)
        except DataError as exc:
            failure = str(exc)
    failure = device.broadcast_object(failure)
    if failure:
        raise DataError(failure)
    return str(target)


def _dataset(source: str, vocab_path: Path, settings, seed: int, rank: int, world: int, shuffle: bool):
    from bertvault.data.dataset import PretrainingDataset

    dataset = PretrainingDataset(source, vocab=vocab_path, seed=seed, rank=rank, world_size=world,
                                 shuffle=shuffle, drop_remainder=True, seq_len=settings.seq_len,
                                 max_predictions=settings.max_predictions, masked_lm_prob=settings.mask_prob)
    if len(dataset) < settings.batch_size:
        raise DataError(
            f"{source}: {dataset.num_examples} examples give {len(dataset)} per process, fewer than one batch of "
            f"{settings.batch_size}; lower --batch-size or add data"
        )
    return dataset


def _own_generator(*seed: int) -> torch.Generator:
    """A DataLoader draws its workers' base seed from this, not from the global RNG: starting an
    epoch's loader must not shift the dropout stream (or a resumed run would diverge)."""
    return torch.Generator().manual_seed(hash(seed) & 0x7FFF_FFFF_FFFF_FFFF)


def _batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    with contextlib.closing(loader_module.batches(loader)) as batches:
        for batch in batches:
            yield {k: batch[k] for k in MODEL_KEYS}


class Stream:
    """Endless micro-batches for one rank, epoch after epoch; `state()` / `restore()` for checkpoints."""

    def __init__(self, dataset, batch_size: int, workers: int):
        self.dataset = dataset
        self.batch_size = batch_size
        self.workers = workers
        self.epoch = 0
        self.taken = 0  # batches of this epoch already handed out

    def state(self) -> dict:
        return {"epoch": self.epoch, "batches": self.taken}

    def restore(self, state: dict) -> None:
        self.epoch, self.taken = int(state["epoch"]), int(state["batches"])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            per_epoch = (self.dataset.num_examples // self.dataset.world_size) // self.batch_size
            if self.taken >= per_epoch:
                self.epoch, self.taken = self.epoch + 1, 0
            self.dataset.set_epoch(self.epoch, self.taken * self.batch_size)
            loader = loader_module.make(self.dataset, self.batch_size, self.workers,
                                        _own_generator(self.dataset.seed, self.epoch))
            with contextlib.closing(_batches(loader)) as stream:  # closing this generator stops the workers
                for batch in stream:
                    self.taken += 1
                    yield batch
            self.epoch, self.taken = self.epoch + 1, 0


def open_stream(settings, vocab_path: Path, lowercase: bool, out: Path, device) -> Stream:
    source = resolve_source(settings.data, vocab_path, lowercase, out / "data", settings, device)
    dataset = _dataset(source, vocab_path, settings, settings.seed, device.rank, device.world_size, shuffle=True)
    log.info("training data %s: %d examples", source, dataset.num_examples)
    return Stream(dataset, settings.batch_size, settings.workers)


def eval_batches(settings, vocab_path: Path, lowercase: bool, out: Path, device) -> list[dict[str, torch.Tensor]]:
    """Fixed batches (fixed masks, file order): --eval-data, else the start of the training data."""
    if settings.eval_data:
        source = resolve_source(settings.eval_data, vocab_path, lowercase, out / "eval-data", settings, device)
    else:
        source = resolve_source(settings.data, vocab_path, lowercase, out / "data", settings, device)
        log.info("no --eval-data: evaluating on the first %d batches of the training data (fixed masks)",
                 settings.eval_batches)
    dataset = _dataset(source, vocab_path, settings, settings.seed + EVAL_SEED_OFFSET, device.rank,
                       device.world_size, shuffle=False)
    loader = loader_module.make(dataset, settings.batch_size, 0, _own_generator(settings.seed, -1))
    batches = []
    with contextlib.closing(_batches(loader)) as stream:
        for batch in stream:
            batches.append(batch)
            if len(batches) == settings.eval_batches:
                break
    if not batches:
        raise TrainingError(f"the eval data {source} gives no full batch of {settings.batch_size}")
    return batches
