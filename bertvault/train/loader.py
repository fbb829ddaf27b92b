"""DataLoader workers for pretraining: their errors reach the trainer as one line, no wait is
unbounded, and no worker outlives the training process.

- A known fault in a worker (a TFRecord with a bad checksum, a vanished shard) travels to the
  trainer as a value in place of the batch and is raised there as it was (DataError, exit 7),
  not as torch's wrapped traceback.
- Workers run in a process group of their own: Ctrl-C at the terminal and torchrun's SIGTERM to a
  trainer's group reach the trainer only, which saves a checkpoint and then stops the workers
  (SIGTERM keeps its default effect in a worker, so stopping one always works).
- A worker dies with the trainer (PR_SET_PDEATHSIG), and a batch that does not come within
  `TIMEOUT` seconds is an error, not a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data import default_collate as torch_collate

from bertvault.errors import BertvaultError, DataError
from bertvault.io.lifetime import die_with_parent, leave_stop_signals_to_parent, stop_signals_blocked

log = logging.getLogger(__name__)

TIMEOUT = 600.0  # seconds for one batch from a worker: memory-mapped or pread examples take milliseconds


class Failed:
    """A worker's known failure, sent to the trainer where a batch would go."""

    def __init__(self, error: BertvaultError):
        self.error = error


class Guarded(Dataset):
    """The dataset, with known faults returned as `Failed` values instead of raised in the worker."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int):
        try:
            return self.dataset[k]
        except BertvaultError as exc:
            return Failed(exc)
        except OSError as exc:  # a shard deleted or unreadable under a running job
            return Failed(DataError(f"reading training example {k} failed: {exc}"))


def collate(items: list):
    failed = next((item for item in items if isinstance(item, Failed)), None)
    return failed if failed is not None else torch_collate(items)


def _init_worker(_worker: int) -> None:
    """Runs first in each forked worker, with the stop signals still blocked (see `_start`)."""
    leave_stop_signals_to_parent()
    die_with_parent()


def make(dataset, batch_size: int, workers: int, generator: torch.Generator) -> DataLoader:
    return DataLoader(Guarded(dataset), batch_size=batch_size, shuffle=False, drop_last=True,
                      num_workers=workers, generator=generator, collate_fn=collate,
                      worker_init_fn=_init_worker if workers else None,
                      timeout=TIMEOUT if workers else 0)


def _start(loader: DataLoader):
    """iter(loader), which forks the workers: with the stop signals blocked meanwhile."""
    if not loader.num_workers:
        return iter(loader)
    with stop_signals_blocked():
        return iter(loader)


def stop(iterator) -> None:
    """Ends an iterator's workers now: torch's orderly shutdown, then SIGKILL for any left."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for worker in getattr(iterator, "_workers", []):
        if worker.is_alive():
            worker.kill()
            worker.join(timeout=5)


def _as_data_error(exc: RuntimeError) -> DataError | None:
    """torch's one-line reports about its workers (killed by a signal, timed out); None for others."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if text.startswith("DataLoader timed out"):
        return DataError(f"{text} waiting for a batch: a data-loader worker is stuck (a hung read of the "
                         "training data?); the workers were stopped")
    if text.startswith("DataLoader worker"):
        return DataError(f"{text}; the other workers were stopped (out of memory? try fewer --workers, "
                         "or --workers 0)")
    return None


def batches(loader: DataLoader) -> Iterator[dict]:
    """The loader's batches; a worker's failure is raised here, and the workers are stopped whenever
    this generator ends (exhausted, failed, or closed by the trainer)."""
    iterator = _start(loader)
    try:
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError as exc:
                error = _as_data_error(exc)
                if error is None:
                    raise
                raise error from None
            if isinstance(batch, Failed):
                raise batch.error
            yield batch
    finally:
        stop(iterator)
