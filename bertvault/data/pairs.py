"""Sentence pairs (A, B, is-random-next) as google-research/bert's create_pretraining_data builds them.

Per document, sentences are gathered into a chunk until it reaches the target length
(`seq_len - 3`, or with probability `short_seq_prob` a random length in [2, seq_len - 3], drawn
once per document as google does). A is the chunk's first 1..k-1 sentences; B is the rest of the
chunk, or (half of the time, and always for a one-sentence chunk) text from a random point of
another document, label 1. Sentences not used by a random B go back into the next chunk. The pair
is then cut to fit: tokens come off the longer side, from the front or back at random.

Pairs are kept as ranges into one flat id array, so building them costs a few integer operations
per sentence, and `gather` copies every pair's tokens with one numpy indexing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Pairs:
    """Examples as flat token ids (A then B, no specials) plus an [n, 4] index:
    start in `tokens`, len A, len B, next-sentence label (1 = B is random)."""

    tokens: np.ndarray
    index: np.ndarray
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)


def truncation(len_a: int, len_b: int, limit: int) -> tuple[int, int]:
    """How many tokens google's truncate_seq_pair removes from A and from B.

    It removes one token at a time from the longer side (B on a tie): the longer side first loses
    the difference, the rest alternates B, A, B, ...
    """
    excess = len_a + len_b - limit
    if excess <= 0:
        return 0, 0
    first = min(excess, abs(len_a - len_b))
    rest = excess - first
    cut_a, cut_b = rest // 2, rest - rest // 2
    if len_a > len_b:
        cut_a += first
    else:
        cut_b += first
    return cut_a, cut_b


def _fronts(count: int, rng: random.Random) -> int:
    """How many of `count` one-token cuts hit the front: each is a fair coin, as in google."""
    return rng.getrandbits(count).bit_count() if count else 0


def cut(start: int, length: int, removed: int, rng: random.Random) -> tuple[int, int]:
    front = _fronts(removed, rng)
    return start + front, length - removed


class PairBuilder:
    """Builds pairs from documents given as sentence ranges into one flat id array.

    The loop runs once per sentence of the corpus (times the dupe factor), so its helpers are
    inlined, drawing from `rng` exactly as they did (the same seed gives the same pairs)."""

    def __init__(self, seq_len: int, short_seq_prob: float, rng: random.Random):
        self.max_tokens = seq_len - 3
        self.short_seq_prob = short_seq_prob
        self.rng = rng
        self.rows: list[tuple[int, int, int, int, int]] = []  # a_start, a_len, b_start, b_len, label
        self.no_random_doc = 0

    def add_document(self, doc: int, starts: list[int], lens: list[int], doc_bounds: list[int]) -> None:
        random, target = self.rng.random, self.max_tokens
        if random() < self.short_seq_prob:
            target = 2 + int(random() * (self.max_tokens - 1))
        last = doc_bounds[doc + 1]
        chunk_first = i = doc_bounds[doc]
        length = 0
        while i < last:
            length += lens[i]
            if i == last - 1 or length >= target:
                i = self._pair(doc, chunk_first, i, target, starts, lens, doc_bounds)
                chunk_first, length = i + 1, 0
            i += 1

    def _pair(self, doc, first, last, target, starts, lens, doc_bounds) -> int:
        """Emit one pair from sentences first..last; return the last sentence it consumed."""
        random = self.rng.random
        count = last - first + 1
        a_end = first if count == 1 else first + int(random() * (count - 1))
        a_start = starts[first]
        a_len = starts[a_end] + lens[a_end] - a_start
        documents = len(doc_bounds) - 1
        other = None
        if documents >= 2:  # a uniformly random other document
            other = int(random() * (documents - 1))
            other += other >= doc
        if other is not None and (count == 1 or random() < 0.5):
            label, sentences = 1, (doc_bounds[other], doc_bounds[other + 1])
            b_start, b_len = _random_b(*sentences, target - a_len, starts, lens, random)
            last = a_end  # the unused sentences start the next chunk
        elif count > 1:
            label = 0
            b_start = starts[a_end + 1]
            b_len = starts[last] + lens[last] - b_start
        else:  # one sentence and no other document to draw B from
            self.no_random_doc += 1
            return last
        if a_len + b_len > self.max_tokens:
            cut_a, cut_b = truncation(a_len, b_len, self.max_tokens)
            a_start, a_len = cut(a_start, a_len, cut_a, self.rng)
            b_start, b_len = cut(b_start, b_len, cut_b, self.rng)
        self.rows.append((a_start, a_len, b_start, b_len, label))
        return last


def _random_b(low: int, high: int, want: int, starts: list[int], lens: list[int], random) -> tuple[int, int]:
    """B from a random sentence of sentences low..high-1 on, until it holds `want` tokens."""
    j = low + int(random() * (high - low))
    b_start, b_len = starts[j], 0
    while j < high:
        b_len += lens[j]
        j += 1
        if b_len >= want:
            break
    return b_start, b_len


def gather(ids: np.ndarray, rows: np.ndarray) -> Pairs:
    """Copy each row's A and B ranges out of `ids` into a Pairs (rows: a_start, a_len, b_start, b_len,
    label)."""
    rows = rows.reshape(-1, 5).astype(np.int64)
    starts = rows[:, [0, 2]].reshape(-1)
    lens = rows[:, [1, 3]].reshape(-1)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    positions = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])
    index = np.stack([offsets[:-1:2], rows[:, 1], rows[:, 3], rows[:, 4]], axis=1)
    return Pairs(ids[positions], index.astype(np.int64))


def truncate_pairs(pairs: Pairs, max_tokens: int, rng: random.Random) -> tuple[Pairs, int]:
    """Cut every pair to at most max_tokens (A+B) as google does; returns (pairs, how many were cut)."""
    index = pairs.index
    over = np.flatnonzero(index[:, 1] + index[:, 2] > max_tokens)
    if not len(over):
        return pairs, 0
    rows = np.stack([index[:, 0], index[:, 1], index[:, 0] + index[:, 1], index[:, 2], index[:, 3]], axis=1)
    for k in over.tolist():
        a_start, a_len, b_start, b_len, _ = rows[k].tolist()
        cut_a, cut_b = truncation(a_len, b_len, max_tokens)
        rows[k, 0], rows[k, 1] = cut(a_start, a_len, cut_a, rng)
        rows[k, 2], rows[k, 3] = cut(b_start, b_len, cut_b, rng)
    result = gather(pairs.tokens, rows)
    result.stats = pairs.stats
    return result, len(over)
