"""`--data` -> the stream of micro-batches one rank trains on (built on bertvault.data).

`--data` may be raw text (one sentence per line, blank line between documents) or AzureML
shards, prepared on the fly into OUT/data; a `bertvault prepare` output folder; TFRecord files
(a file, a folder or a glob); or a registered dataset name. Preparing happens once, on rank 0,
and a resumed run reuses the prepared folder. A prepared folder in a bucket (gs://) is streamed
(streaming.py): training starts once the first shards are here, not after the whole pull.

Order and position: bertvault.data's dataset gives rank r of W the permuted examples r, r+W, ...;
batches are consecutive items of that, the last partial batch of an epoch is dropped (so every
rank takes the same number of steps per epoch), and the position saved in a checkpoint is
(epoch, batches taken in that epoch). Streamed data follows data/order.py's order instead (a few
shards at a time), with the same position.
"""

from __future__ import annotations

import contextlib
import glob
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bertvault import sources
from bertvault.errors import DataError, TrainingError
from bertvault.sizes import format_size
from bertvault.train import loader as loader_module
from bertvault.train import streaming

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
    """A path (or glob) that matches something, a registered dataset in the cache, or a bucket folder."""
    if streaming.find(spec) is not None:
        return
    if glob.has_magic(spec) and "://" not in spec and not glob.glob(spec):
        raise DataError(f"--data {spec}: the pattern matches no file")
    _local_spec(spec)  # raises for a name that is neither a path nor a cached registered dataset


def _prepare(spec: str, vocab_path: Path, lowercase: bool, target: Path, settings) -> Path:
    from bertvault.data import prepare

    options = prepare.Options(seq_len=settings.seq_len, max_predictions=settings.max_predictions,
                              masked_lm_prob=settings.mask_prob, seed=settings.seed,
                              workers=max(1, settings.workers))
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


def _dataset(source, vocab_path: Path, settings, seed: int, rank: int, world: int, shuffle: bool, label: str):
    from bertvault.data.dataset import PretrainingDataset

    dataset = PretrainingDataset(source, vocab=vocab_path, seed=seed, rank=rank, world_size=world,
                                 shuffle=shuffle, drop_remainder=True, seq_len=settings.seq_len,
                                 max_predictions=settings.max_predictions, masked_lm_prob=settings.mask_prob)
    if len(dataset) < settings.batch_size:
        raise DataError(
            f"{label}: {dataset.num_examples} examples give {len(dataset)} per process, fewer than one batch "
            f"of {settings.batch_size}; lower --batch-size or add data"
        )
    return dataset


@contextlib.contextmanager
def _streamed(remote: streaming.Remote, role: str, vocab_path: Path, settings, seed: int, device,
              shuffle: bool) -> Iterator[tuple]:
    """(dataset, feed) of a bucket folder; the feed stops (its folder kept for a rerun) if this fails."""
    feed = streaming.Feed(remote, role, settings, device.rank, device.world_size)
    try:
        dataset = _dataset(feed.source, vocab_path, settings, seed, device.rank, device.world_size, shuffle,
                           remote.url)
        feed.attach(dataset, settings.batch_size)
        yield dataset, feed
    except BaseException:
        feed.stop()
        raise


def _own_generator(*seed: int) -> torch.Generator:
    """A DataLoader draws its workers' base seed from this, not from the global RNG: starting an
    epoch's loader must not shift the dropout stream (or a resumed run would diverge)."""
    return torch.Generator().manual_seed(hash(seed) & 0x7FFF_FFFF_FFFF_FFFF)


def _batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    with contextlib.closing(loader_module.batches(loader)) as batches:
        for batch in batches:
            yield {k: batch[k] for k in MODEL_KEYS}


class WaitInterrupted(TrainingError):
    """Ctrl-C or SIGTERM while the next batch's shards were still on their way."""

    exit_code = 130


class Stream:
    """Endless micro-batches for one rank, epoch after epoch; `state()` / `restore()` for checkpoints.
    With a `feed` (streamed data), each batch waits for its shards before it is read; `stopping()`
    true (a stop was asked for) ends that wait with WaitInterrupted."""

    def __init__(self, dataset, batch_size: int, workers: int, feed: streaming.Feed | None = None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.workers = workers
        self.feed = feed
        self.stopping: Callable[[], bool] = lambda: False
        self.epoch = 0
        self.taken = 0  # batches of this epoch already handed out

    def state(self) -> dict:
        return {"epoch": self.epoch, "batches": self.taken}

    def restore(self, state: dict) -> None:
        self.epoch, self.taken = int(state["epoch"]), int(state["batches"])

    def _arrived(self) -> None:
        if self.feed is None:
            return
        if not self.feed.before(self.epoch, self.taken * self.batch_size, self.batch_size, self.stopping):
            raise WaitInterrupted(f"stopped while the next shards of {self.feed.remote.url} were on their "
                                  "way; the last checkpoint is kept: continue from it with --resume")

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        try:
            while True:
                per_epoch = (self.dataset.num_examples // self.dataset.world_size) // self.batch_size
                if self.taken >= per_epoch:
                    self.epoch, self.taken = self.epoch + 1, 0
                self.dataset.set_epoch(self.epoch, self.taken * self.batch_size)
                if self.feed is not None:
                    self.feed.follow(self.epoch, self.taken * self.batch_size)
                loader = loader_module.make(self.dataset, self.batch_size, self.workers,
                                            _own_generator(self.dataset.seed, self.epoch))
                # closing this generator stops the workers
                with contextlib.closing(_batches(loader)) as stream:
                    while self.taken < per_epoch:
                        self._arrived()
                        batch = next(stream, None)
                        if batch is None:
                            break
                        self.taken += 1
                        yield batch
                self.epoch, self.taken = self.epoch + 1, 0
        finally:
            if self.feed is not None:  # stopped or failed: the shards here stay for --resume
                self.feed.stop()

    def finish(self) -> None:
        """The run is complete: its streamed shards go."""
        if self.feed is not None:
            self.feed.discard()


def open_stream(settings, vocab_path: Path, lowercase: bool, out: Path, device) -> Stream:
    remote = streaming.find(settings.data)
    if remote is not None:
        with _streamed(remote, "train", vocab_path, settings, settings.seed, device, True) as (dataset, feed):
            log.info("training data %s: %d examples in %d shards, streamed (at most %s here for this "
                     "process)", remote.url, dataset.num_examples, int(dataset.shard_bounds[-1]),
                     format_size(feed.bound))
            return Stream(dataset, settings.batch_size, settings.workers, feed)
    source = resolve_source(settings.data, vocab_path, lowercase, out / "data", settings, device)
    dataset = _dataset(source, vocab_path, settings, settings.seed, device.rank, device.world_size, True,
                       source)
    log.info("training data %s: %d examples", source, dataset.num_examples)
    return Stream(dataset, settings.batch_size, settings.workers)


def describe(spec: str | None) -> dict:
    """The provenance entry of --data: streamed data by its listing (never pulled for it), else the files."""
    from bertvault import provenance

    remote = streaming.find(spec)
    if remote is not None:
        return streaming.describe(remote)
    return provenance.describe(sources.resolve(spec) if spec else None)


def _first_batches(dataset, settings, label: str,
                   feed: streaming.Feed | None = None) -> list[dict[str, torch.Tensor]]:
    loader = loader_module.make(dataset, settings.batch_size, 0, _own_generator(settings.seed, -1))
    batches: list[dict[str, torch.Tensor]] = []
    with contextlib.closing(_batches(loader)) as stream:
        while len(batches) < settings.eval_batches:
            if feed is not None and (len(batches) + 1) * settings.batch_size <= len(dataset):
                feed.before(0, len(batches) * settings.batch_size, settings.batch_size)
            batch = next(stream, None)
            if batch is None:
                break
            batches.append(batch)
    if not batches:
        raise TrainingError(f"the eval data {label} gives no full batch of {settings.batch_size}")
    return batches


def eval_batches(settings, vocab_path: Path, lowercase: bool, out: Path,
                 device) -> list[dict[str, torch.Tensor]]:
    """Fixed batches (fixed masks, file order): --eval-data, else the start of the training data."""
    if not settings.eval_data:
        log.info("no --eval-data: evaluating on the first %d batches of the training data (fixed masks)",
                 settings.eval_batches)
    spec = settings.eval_data or settings.data
    seed = settings.seed + EVAL_SEED_OFFSET
    remote = streaming.find(spec)
    if remote is not None:
        with _streamed(remote, "eval", vocab_path, settings, seed, device, False) as (dataset, feed):
            feed.follow(0, 0)
            batches = _first_batches(dataset, settings, remote.url, feed)
            feed.discard()  # read once: the shards are of no more use
            return batches
    target = out / ("eval-data" if settings.eval_data else "data")
    source = resolve_source(spec, vocab_path, lowercase, target, settings, device)
    dataset = _dataset(source, vocab_path, settings, seed, device.rank, device.world_size, False, source)
    return _first_batches(dataset, settings, source)
