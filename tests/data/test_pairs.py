"""Pair construction: google's truncation rule in closed form, and the pair builder's invariants."""

from __future__ import annotations

import random

import numpy as np

from bertvault.data.pairs import PairBuilder, gather, truncation


def _google_truncate(len_a: int, len_b: int, limit: int) -> tuple[int, int]:
    """google-research/bert's truncate_seq_pair, counting what it removes from each side."""
    cut_a = cut_b = 0
    while len_a + len_b > limit:
        if len_a > len_b:
            len_a, cut_a = len_a - 1, cut_a + 1
        else:
            len_b, cut_b = len_b - 1, cut_b + 1
    return cut_a, cut_b


def test_truncation_equals_googles_loop():
    rng = random.Random(0)
    for _ in range(5000):
        a, b, limit = rng.randint(1, 300), rng.randint(1, 300), rng.randint(5, 300)
        assert truncation(a, b, limit) == _google_truncate(a, b, limit), (a, b, limit)


def _documents(rng: random.Random, count: int):
    lens, starts, bounds, at = [], [], [0], 0
    for _ in range(count):
        for _ in range(rng.randint(1, 30)):
            n = rng.randint(1, 60)
            starts.append(at)
            lens.append(n)
            at += n
        bounds.append(len(lens))
    return starts, lens, bounds, at


def test_builder_pairs_fit_and_stay_in_documents():
    rng = random.Random(3)
    starts, lens, bounds, total = _documents(rng, 200)
    # every token's value is its document number, so a range tells where it came from
    ids = np.empty(total, dtype=np.int64)
    for doc in range(len(bounds) - 1):
        first, last = bounds[doc], bounds[doc + 1]
        ids[starts[first] : starts[last - 1] + lens[last - 1]] = doc
    builder = PairBuilder(64, 0.1, rng)
    for doc in range(len(bounds) - 1):
        builder.add_document(doc, starts, lens, bounds)
    pairs = gather(ids, np.asarray(builder.rows))
    assert len(pairs) > 500
    labels = pairs.index[:, 3]
    assert 0.4 < labels.mean() < 0.6
    for start, len_a, len_b, label in pairs.index.tolist():
        assert len_a >= 1 and len_b >= 1 and len_a + len_b <= 61
        a_docs = set(pairs.tokens[start : start + len_a].tolist())
        b_docs = set(pairs.tokens[start + len_a : start + len_a + len_b].tolist())
        assert len(a_docs) == 1 and len(b_docs) == 1
        assert (a_docs == b_docs) == (label == 0)


def test_one_document_gives_only_actual_next_pairs():
    rng = random.Random(5)
    starts, lens = list(range(0, 500, 10)), [10] * 50
    builder = PairBuilder(32, 0.0, rng)
    builder.add_document(0, starts, lens, [0, 50])
    labels = [row[4] for row in builder.rows]
    assert labels and set(labels) == {0}
