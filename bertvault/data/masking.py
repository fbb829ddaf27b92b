"""Masked-LM predictions as google-research/bert's create_masked_lm_predictions makes them.

Positions other than [CLS]/[SEP] are candidates; n = min(max_predictions, max(1, round(len · p)))
of them are picked at random (whole words when `continuation` is given: a word is a token plus
the '##' pieces after it, never crossing [SEP]); each picked token becomes [MASK] 80% of the
time, stays itself 10%, becomes a uniformly random vocab token 10%.
Used statically when writing TFRecords and dynamically by the training dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskSpec:
    max_predictions: int
    masked_lm_prob: float
    vocab_size: int
    mask_id: int
    continuation: np.ndarray | None = None  # bool per vocab id: '##' piece; None = token masking


def candidates(len_a: int, len_b: int) -> np.ndarray:
    """Positions of A and B tokens in [CLS] A [SEP] B [SEP]."""
    return np.concatenate([np.arange(1, 1 + len_a), np.arange(2 + len_a, 2 + len_a + len_b)])


def _word_positions(ids: np.ndarray, cand: np.ndarray, count: int, spec: MaskSpec, rng: np.random.Generator):
    # A word starts at a non-'##' token or right after [CLS]/[SEP] (a gap in the candidates).
    starts = ~spec.continuation[ids[cand]]
    starts[0] = True
    starts[1:] |= np.diff(cand) != 1
    bounds = np.append(np.flatnonzero(starts), len(cand))
    chosen: list[np.ndarray] = []
    total = 0
    for word in rng.permutation(len(bounds) - 1):
        size = bounds[word + 1] - bounds[word]
        if total + size > count:
            continue  # google skips a word that does not fit and tries the next one
        chosen.append(cand[bounds[word] : bounds[word + 1]])
        total += size
        if total == count:
            break
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


def choose(ids: np.ndarray, len_a: int, len_b: int, spec: MaskSpec, rng: np.random.Generator) -> np.ndarray:
    """The positions to predict in one unpadded example (unsorted)."""
    cand = candidates(len_a, len_b)
    count = min(spec.max_predictions, max(1, round(len(ids) * spec.masked_lm_prob)), len(cand))
    if spec.continuation is None:
        return rng.choice(cand, size=count, replace=False)
    return _word_positions(ids, cand, count, spec, rng)


def mask(ids: np.ndarray, len_a: int, len_b: int, spec: MaskSpec, rng: np.random.Generator):
    """(masked copy of ids, sorted masked positions, original ids there) for one example."""
    positions = np.sort(choose(ids, len_a, len_b, spec, rng))
    originals = ids[positions]
    masked = ids.copy()
    roll = rng.random(len(positions))
    masked[positions[roll < 0.8]] = spec.mask_id
    swap = positions[roll >= 0.9]
    masked[swap] = rng.integers(0, spec.vocab_size, size=len(swap))
    return masked, positions, originals


def continuation_table(tokens: list[str]) -> np.ndarray:
    return np.fromiter((t.startswith("##") for t in tokens), dtype=bool, count=len(tokens))
