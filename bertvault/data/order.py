"""The order of one rank's examples when shards arrive one after another (streamed data).

A global permutation (dataset.py's order for local data) touches every shard in every batch, so a
streamed run would need the whole dataset before its first step. This order touches a few shards
at a time, as google-research/bert's input pipeline (files shuffled, a few interleaved) and the
streaming dataset libraries do:

1. epoch e lays the non-empty shards end to end in a seeded permutation (file order when not
   shuffling);
2. rank r of W takes one contiguous run of that sequence: positions [r·L, (r+1)·L) with
   L = N // W (with drop_remainder; else the first N mod W ranks take one more), so a rank reads
   only its own shards, about S/W of them (a shard on the border of two runs is read by both);
3. the pieces of shards in that run are grouped into windows of `window` consecutive pieces, and
   the examples of a window are permuted together, seeded by (seed, epoch, where the window starts).

Item k of a rank's epoch is therefore a function of (counts, seed, epoch, rank, world, window)
only, never of what is on disk: a run resumed from (epoch, items taken) continues with the exact
example it would have read next, whatever cache size or number of loader workers it runs with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bertvault.data.permutation import Permutation

WINDOW = 8  # shards whose examples are shuffled together: a batch mixes up to this many corpus regions
_SALT = 0x5EED_5A4D  # keeps these permutations apart from dataset.py's global one


@dataclass(frozen=True)
class Window:
    start: int  # first item of the rank's epoch it holds
    end: int  # one past its last item
    shards: tuple[int, ...]  # the shards it reads, as numbered in the header


class ShardOrder:
    """Rank `rank`'s items of epoch `epoch` (see the module docstring)."""

    def __init__(self, counts: Sequence[int], *, seed: int, epoch: int, rank: int, world_size: int,
                 shuffle: bool, window: int, drop_remainder: bool):
        counts = np.asarray(counts, dtype=np.int64)
        self.bounds = np.concatenate([[0], np.cumsum(counts)])  # first example of each shard
        self.seed, self.epoch, self.shuffle = seed, epoch, shuffle
        total = int(self.bounds[-1])
        sequence = np.flatnonzero(counts)  # an empty shard is never fetched
        if shuffle and len(sequence) > 1:
            sequence = sequence[Permutation(len(sequence), [seed, epoch, _SALT])(np.arange(len(sequence)))]
        starts = np.concatenate([[0], np.cumsum(counts[sequence])])  # of each shard in the sequence
        share, extra = divmod(total, world_size)
        length = share if drop_remainder else share + (rank < extra)
        self.begin = rank * share + (0 if drop_remainder else min(rank, extra))
        self.length = length
        first = int(np.searchsorted(starts, self.begin, side="right")) - 1
        last = int(np.searchsorted(starts, self.begin + length, side="left")) if length else first
        self.piece_shards = sequence[first:last]
        # where each piece's shard starts, in items of this rank (the first may start before 0)
        self.piece_origin = starts[first:last] - self.begin
        self.piece_start = np.maximum(self.piece_origin, 0)
        self.window_size = window
        self.window_starts = np.append(self.piece_start[::window], length).astype(np.int64)
        self._permutations: dict[int, Permutation] = {}

    def __len__(self) -> int:
        return self.length

    @property
    def windows(self) -> int:
        return len(self.window_starts) - 1

    def window(self, w: int) -> Window:
        shards = tuple(int(s) for s in self.piece_shards[w * self.window_size:(w + 1) * self.window_size])
        return Window(int(self.window_starts[w]), int(self.window_starts[w + 1]), shards)

    def window_of(self, item: int) -> int:
        return int(np.searchsorted(self.window_starts, item, side="right")) - 1

    def _permutation(self, w: int, size: int) -> Permutation:
        found = self._permutations.get(w)
        if found is None:
            if len(self._permutations) > 4:  # items are read in order: a few windows are enough
                self._permutations.clear()
            found = self._permutations[w] = Permutation(
                size, [self.seed, self.epoch, _SALT, self.begin + int(self.window_starts[w])])
        return found

    def example(self, item: int) -> int:
        """The global example behind item `item` (0 <= item < len(self)) of this rank's epoch."""
        w = self.window_of(item)
        start, end = int(self.window_starts[w]), int(self.window_starts[w + 1])
        if self.shuffle and end - start > 1:
            item = start + int(self._permutation(w, end - start)(item - start)[0])
        piece = int(np.searchsorted(self.piece_start, item, side="right")) - 1
        shard = int(self.piece_shards[piece])
        return int(self.bounds[shard]) + item - int(self.piece_origin[piece])

    def batch_windows(self, batch_size: int, first_item: int, batches: int) -> np.ndarray:
        """[first window, last window] of each of `batches` batches of `batch_size` items from `first_item`"""
        starts = first_item + np.arange(batches, dtype=np.int64) * batch_size
        ends = starts + batch_size - 1
        return np.stack([np.searchsorted(self.window_starts, starts, side="right") - 1,
                         np.searchsorted(self.window_starts, ends, side="right") - 1], axis=1)
