"""`pretrain --data gs://bucket/prefix`: a `bertvault prepare` folder in a bucket, streamed.

The prefix is listed once; its header (which lists every shard and its examples) and vocab are
fetched first, so the order of every epoch is known before any shard is (data/order.py: shards
shuffled, each rank a contiguous run of them, examples shuffled within windows of a few shards).
Each process then fetches only its own shards, in the order it will read them, a few windows
ahead, into a folder of its own under the cache root (cache/streams.py) that never holds more
than its share of --stream-cache (fetch/stream.py); a shard goes once the batches reading it are
taken. Before each batch the trainer waits until that batch's shards are all there, so the first
step comes as soon as the first window has arrived, and no data-loader worker waits unbounded.

A run killed or stopped leaves its folder to the next run with the same data, rank and world size
(`--resume` finds the shards it was about to read); a finished run removes it; `cache gc` removes
those of processes that have ended. A prefix without a header (TFRecords from elsewhere, raw text)
is pulled whole, as before: nothing says how many examples its files hold until they are read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from bertvault import paths, sources
from bertvault.cache import layout, streams
from bertvault.data import shards
from bertvault.data.streamed import FAILED, Arrivals, StreamedFolder
from bertvault.errors import DataError, UsageError
from bertvault.fetch.stream import Prefetch
from bertvault.registry.schema import Artifact
from bertvault.sizes import format_size, parse_size

log = logging.getLogger(__name__)

AHEAD = 2  # windows fetched beyond the one being read


@dataclass(frozen=True)
class Remote:
    url: str
    artifact: Artifact


def find(spec: str | None) -> Remote | None:
    """The bucket folder `spec` names, when it is a prepared folder to stream; None otherwise (a local
    path, a name, a prefix already pulled whole, or one without a header)."""
    if not spec or paths.offline():  # offline: no listing either; the cached copy or nothing
        return None
    artifact = sources.remote_folder(spec)
    if artifact is None:
        return None
    if layout.is_cached(artifact.name):
        log.info("%s is pulled already: training reads the cached copy", spec)
        return None
    if shards.HEADER not in {f.path for f in artifact.files}:
        log.info("%s holds no %s (not a `bertvault prepare` folder): it is pulled whole before training; "
                 "only prepared folders are streamed, their header says what each shard holds", spec,
                 shards.HEADER)
        return None
    return Remote(spec, artifact)


def describe(remote: Remote) -> dict:
    """The provenance entry of streamed data: what the listing says (its bytes are never all here)."""
    return {"source": remote.url, "streamed": True, "sizes": {f.path: f.size for f in remote.artifact.files}}


def share_of(settings) -> int:
    """This process's share of --stream-cache (the processes of a machine divide it)."""
    return parse_size(settings.stream_cache, "--stream-cache") // max(1, settings.nproc_per_node)


def _check(header: dict, where: str) -> None:
    """What the order and the readers rely on, from a header that came over the network."""
    entries = header.get("shards")
    kind = header.get("kind")
    keys = {"native": ("ids", "index"), "tfrecord": ("file",)}.get(kind)
    sound = (keys is not None and isinstance(entries, list) and isinstance(header.get("seq_len"), int)
             and header["seq_len"] > 0 and isinstance(header.get("vocab"), dict)
             and isinstance(header["vocab"].get("file"), str)
             and all(isinstance(e, dict) and isinstance(e.get("examples"), int) and e["examples"] >= 0
                     and all(isinstance(e.get(k), str) for k in keys) for e in entries))
    if not sound:
        raise DataError(f"{where}: not a header `bertvault prepare` writes (kind, seq_len, vocab and, for "
                        "each shard, its files and a count of examples); prepare the data again")


def _rounded_up(size: int) -> str:
    return f"{-(-size // 2**20)}MiB" if size >= 2**20 else f"{-(-size // 2**10)}KiB"


class Feed:
    """One streamed dataset of this process: its folder, its prefetcher, and where its reader is."""

    def __init__(self, remote: Remote, role: str, settings, rank: int, world_size: int):
        self.remote, self.settings = remote, settings
        self.bound = share_of(settings)
        self.folder = streams.claim(f"{remote.artifact.name}-{role}-{rank}of{world_size}")
        (self.folder / FAILED).unlink(missing_ok=True)
        self.arrivals = Arrivals(self.folder)
        self.prefetch = Prefetch(remote.artifact, self.folder, self.bound, ahead=AHEAD,
                                 on_failure=self.arrivals.fail)
        self.dataset = None
        self.batch_size = 1
        self._checked_epoch: int | None = None
        self._order = None
        try:
            self.source = StreamedFolder(self.arrivals, self._header())
        except BaseException:
            self.stop()
            raise

    def _header(self) -> dict:
        path = self.folder / shards.HEADER
        previous = path.read_bytes() if path.is_file() else None
        self.prefetch.fetch_now([shards.HEADER], fresh=True)
        if previous is not None and previous != path.read_bytes():
            self.prefetch.clear()  # shards of an earlier version of the data
        header = shards.read_header(self.folder)
        _check(header, f"{self.remote.url}/{shards.HEADER}")
        listed = {f.path for f in self.remote.artifact.files}
        named = [header["vocab"]["file"]] + [name for e in header["shards"] for key, name in e.items()
                                             if key in ("ids", "index", "file")]
        missing = [n for n in named if n not in listed]
        if missing:
            raise DataError(f"{self.remote.url}/{shards.HEADER} lists {', '.join(missing[:3])}"
                            f"{' ...' if len(missing) > 3 else ''}, not in the bucket; the upload is "
                            "incomplete (push or prepare it again)")
        self.prefetch.fetch_now([header["vocab"]["file"]])
        return header

    def attach(self, dataset, batch_size: int) -> None:
        self.dataset, self.batch_size = dataset, batch_size

    # --- the plan and the reader's position -------------------------------------------------------

    def _files(self, order, w: int) -> list[str]:
        return [name for shard in order.window(w).shards for name in self.dataset.shard_files(shard)]

    def _plan(self, epoch: int, item: int) -> Iterator[tuple[tuple[int, int], list[str]]]:
        """(epoch, window) and its files, in reading order, from item `item` of epoch `epoch` on."""
        while True:
            order = self.dataset.shard_order(epoch)
            read = len(order) // self.batch_size * self.batch_size  # the last partial batch is never read
            if read == 0:
                return
            for w in range(order.window_of(item) if item < read else order.windows, order.windows):
                if order.window(w).start >= read:
                    break
                yield (epoch, w), self._files(order, w)
            epoch, item = epoch + 1, 0

    def follow(self, epoch: int, item: int) -> None:
        """The reader continues from item `item` of epoch `epoch`."""
        self.prefetch.follow(self._plan(epoch, item))

    def _check_fits(self, order, epoch: int) -> None:
        """Every batch of the epoch can have all its shards here at once, within the bound."""
        batches = len(order) // self.batch_size
        if self._checked_epoch == epoch or batches == 0:
            return
        sizes = np.array([sum(map(self.prefetch.size, self._files(order, w))) for w in range(order.windows)])
        total = np.concatenate([[0], np.cumsum(sizes)])
        spans = order.batch_windows(self.batch_size, 0, batches)
        need = int((total[spans[:, 1] + 1] - total[spans[:, 0]]).max()) + sum(
            self.prefetch.size(p) for p in (shards.HEADER, self.source.header["vocab"]["file"]))
        if need > self.bound:
            processes = max(1, self.settings.nproc_per_node)
            raise UsageError(
                f"--stream-cache {self.settings.stream_cache} gives each of {processes} process(es) "
                f"{format_size(self.bound)}, but a batch of epoch {epoch} reads shards of "
                f"{format_size(need)} at once; give --stream-cache {_rounded_up(need * processes)} or more")
        self._checked_epoch = epoch

    def before(self, epoch: int, item: int, count: int,
               cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Block until items [item, item + count) of epoch `epoch` can be read (True), or `cancelled()`
        (False); windows before that item may go."""
        order = self._order_of(epoch)
        self._check_fits(order, epoch)
        first, last = order.window_of(item), order.window_of(min(item + count, len(order)) - 1)
        self.prefetch.consumed((epoch, first), (epoch, last))
        return self.prefetch.wait_for([p for w in range(first, last + 1) for p in self._files(order, w)],
                                      cancelled)

    def _order_of(self, epoch: int):
        if self._order is None or self._order.epoch != epoch:
            self._order = self.dataset.shard_order(epoch)
        return self._order

    def stop(self) -> None:
        """Stop fetching. The folder stays, owned by this process: once it ends, the next run with the same
        data, rank and world size adopts it (a resumed run finds the shards it was about to read)."""
        self.prefetch.close()
        log.debug("streamed %d files of %s (at most %s here at once)", len(self.prefetch.fetched),
                  self.remote.url, format_size(self.prefetch.peak))

    def discard(self) -> None:
        """Stop fetching and remove the folder: its shards are of no more use."""
        self.stop()
        streams.discard(self.folder)
