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


class PlainBuilder:
    """The pair loop written plainly, one helper per step of google's create_instances_from_document
    (as PairBuilder was before its helpers were inlined for speed)."""

    def __init__(self, seq_len, short_seq_prob, rng):
        self.max_tokens, self.short_seq_prob, self.rng = seq_len - 3, short_seq_prob, rng
        self.rows, self.no_random_doc = [], 0

    def between(self, low, high):
        return low + int(self.rng.random() * (high - low + 1))

    def cut(self, start, length, removed):
        return start + (self.rng.getrandbits(removed).bit_count() if removed else 0), length - removed

    def add_document(self, doc, starts, lens, bounds):
        short = self.rng.random() < self.short_seq_prob
        target = self.between(2, self.max_tokens) if short else self.max_tokens
        chunk, length, i = bounds[doc], 0, bounds[doc]
        while i < bounds[doc + 1]:
            length += lens[i]
            if i == bounds[doc + 1] - 1 or length >= target:
                i = self.pair(doc, chunk, i, target, starts, lens, bounds)
                chunk, length = i + 1, 0
            i += 1

    def other(self, doc, documents):
        if documents < 2:
            return None
        other = self.between(0, documents - 2)
        return other + 1 if other >= doc else other

    def pair(self, doc, first, last, target, starts, lens, bounds):
        count = last - first + 1
        a_count = 1 if count == 1 else self.between(1, count - 1)
        a_start = starts[first]
        a_len = starts[first + a_count - 1] + lens[first + a_count - 1] - a_start
        other = self.other(doc, len(bounds) - 1)
        if other is not None and (count == 1 or self.rng.random() < 0.5):
            label, j = 1, self.between(bounds[other], bounds[other + 1] - 1)
            b_start, b_len = starts[j], 0
            while j < bounds[other + 1]:
                b_len, j = b_len + lens[j], j + 1
                if b_len >= target - a_len:
                    break
            last = first + a_count - 1
        elif count > 1:
            label, b_start = 0, starts[first + a_count]
            b_len = starts[last] + lens[last] - b_start
        else:
            self.no_random_doc += 1
            return last
        cut_a, cut_b = truncation(a_len, b_len, self.max_tokens)
        self.rows.append((*self.cut(a_start, a_len, cut_a), *self.cut(b_start, b_len, cut_b), label))
        return last


def test_the_builder_draws_as_the_plain_loop():
    """Same pairs and same random state after, over corpora of every shape: one document, two, many;
    sentences longer than seq_len; every short_seq_prob."""
    for seed in range(200):
        r = random.Random(seed)
        documents = r.choice([1, 2, 3, 10, 50])
        lens = [r.choice([1, 2, 60, 130, 300]) if r.random() < 0.3 else r.randint(1, 40)
                for _ in range(r.randint(documents, documents * 30))]
        starts = np.cumsum([0, *lens[:-1]]).tolist()
        bounds = [0, *sorted(r.sample(range(1, len(lens)), min(documents - 1, len(lens) - 1))), len(lens)]
        seq_len, short = r.choice([8, 16, 64, 128, 512]), r.choice([0.0, 0.1, 0.5, 1.0])
        built = [builder(seq_len, short, random.Random(seed * 7)) for builder in (PairBuilder, PlainBuilder)]
        for builder in built:
            for _ in range(2):
                for doc in range(len(bounds) - 1):
                    builder.add_document(doc, starts, lens, bounds)
        assert built[0].rows == built[1].rows and built[0].no_random_doc == built[1].no_random_doc
        assert built[0].rng.random() == built[1].rng.random()
