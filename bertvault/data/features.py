"""One training example from one pair: `[CLS] A [SEP] B [SEP]`, padded, masked.

`build` + `model_inputs` make one example for the training dataset, under the names
`transformers.BertForPreTraining` takes plus gather-friendly masked arrays; `google_batch` makes
many at once under run_pretraining.py's feature names (what a TFRecord holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bertvault.data.masking import MaskSpec, choose, continuation_table, mask

IGNORE = -100  # label of an unmasked position (torch's cross-entropy ignore_index)


@dataclass(frozen=True)
class Specials:
    pad: int
    cls: int
    sep: int
    mask: int

    @classmethod
    def of(cls, vocab: dict[str, int]) -> Specials:
        return cls(vocab["[PAD]"], vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"])


def mask_spec(tokens: list[str], vocab: dict[str, int], max_predictions: int, masked_lm_prob: float,
              whole_word_mask: bool) -> MaskSpec:
    return MaskSpec(max_predictions, masked_lm_prob, len(tokens), vocab["[MASK]"],
                    continuation_table(tokens) if whole_word_mask else None)


@dataclass
class Example:
    ids: np.ndarray  # masked input ids, padded to seq_len
    segments: np.ndarray
    length: int  # real tokens before padding
    positions: np.ndarray  # masked positions, padded with 0 to max_predictions
    originals: np.ndarray  # original ids there, padded with 0
    weights: np.ndarray  # 1.0 for a real prediction, 0.0 for padding
    label: int  # 1 = B is a random sentence


def build(a: np.ndarray, b: np.ndarray, label: int, seq_len: int, specials: Specials, spec: MaskSpec,
          rng: np.random.Generator) -> Example:
    la, lb = len(a), len(b)
    length = la + lb + 3
    ids = np.empty(length, dtype=np.int64)
    ids[0], ids[1 + la], ids[-1] = specials.cls, specials.sep, specials.sep
    ids[1 : 1 + la], ids[2 + la : -1] = a, b
    masked, positions, originals = mask(ids, la, lb, spec, rng)
    padded = np.full(seq_len, specials.pad, dtype=np.int64)
    padded[:length] = masked
    segments = np.zeros(seq_len, dtype=np.int64)
    segments[2 + la : length] = 1
    count = len(positions)
    out_pos = np.zeros(spec.max_predictions, dtype=np.int64)
    out_ids = np.zeros(spec.max_predictions, dtype=np.int64)
    weights = np.zeros(spec.max_predictions, dtype=np.float32)
    out_pos[:count], out_ids[:count], weights[:count] = positions, originals, 1.0
    return Example(padded, segments, length, out_pos, out_ids, weights, int(label))


def attention_mask(example: Example) -> np.ndarray:
    out = np.zeros(len(example.ids), dtype=np.int64)
    out[: example.length] = 1
    return out


def model_inputs(example: Example) -> dict[str, np.ndarray]:
    labels = np.full(len(example.ids), IGNORE, dtype=np.int64)
    real = example.weights > 0
    labels[example.positions[real]] = example.originals[real]
    return {
        "input_ids": example.ids,
        "token_type_ids": example.segments,
        "attention_mask": attention_mask(example),
        "labels": labels,
        "next_sentence_label": np.array(example.label, dtype=np.int64),
        "masked_lm_positions": example.positions,
        "masked_lm_ids": example.originals,
        "masked_lm_weights": example.weights,
    }


def google_batch(tokens: np.ndarray, index: np.ndarray, seq_len: int, specials: Specials, spec: MaskSpec,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """run_pretraining.py's features for many pairs at once (rows of a Pairs index: start, len A,
    len B, label), masked as `build` masks one: a uniformly random subset of the candidates (or
    whole words, example by example), then 80/10/10. Arrays come in the narrowest type that holds
    their values (a TFRecord stores every integer as int64 whatever the type here)."""
    n, width = len(index), spec.max_predictions
    start, len_a, len_b, label = (index[:, k : k + 1].astype(np.int32) for k in range(4))
    j = np.arange(seq_len, dtype=np.int32)[None, :]
    length = len_a + len_b + 3
    b_from = len_a + 2
    in_b = (j >= b_from) & (j < length)  # with B's [SEP]: the segment-1 positions
    candidate = (j >= 1) & (j < length - 1)
    candidate[np.arange(n), b_from[:, 0] - 1] = False  # A's [SEP]
    source = np.where(candidate, start + j - 1 - in_b, 0)
    ids = np.where(candidate, tokens[np.clip(source, 0, max(len(tokens) - 1, 0))], specials.pad)
    ids = ids.astype(np.int32)
    rows = np.arange(n)
    ids[:, 0] = specials.cls
    ids[rows, len_a[:, 0] + 1] = specials.sep
    ids[rows, length[:, 0] - 1] = specials.sep
    positions = _positions(ids, candidate, len_a, len_b, length[:, 0], spec, rng)
    valid = positions < seq_len
    positions = np.where(valid, positions, 0)
    originals = np.where(valid, ids[rows[:, None], positions], 0)
    masked = ids.copy()
    roll = rng.random((n, width))
    r, c = np.nonzero(valid & (roll < 0.8))
    masked[r, positions[r, c]] = spec.mask_id
    r, c = np.nonzero(valid & (roll >= 0.9))
    masked[r, positions[r, c]] = rng.integers(0, spec.vocab_size, len(r))
    return {
        "input_ids": masked,
        "input_mask": (j < length).view(np.uint8),
        "segment_ids": in_b.view(np.uint8),
        "masked_lm_positions": positions,
        "masked_lm_ids": originals,
        "masked_lm_weights": valid.astype(np.float32),
        "next_sentence_labels": label,
    }


def _positions(ids, candidate, len_a, len_b, length, spec: MaskSpec, rng: np.random.Generator) -> np.ndarray:
    """[n, max_predictions]: each example's masked positions in increasing order, then seq_len."""
    (n, seq_len), width = ids.shape, spec.max_predictions
    positions = np.full((n, width), seq_len, dtype=np.int32)
    if spec.continuation is None:
        count = np.clip(np.round(length * spec.masked_lm_prob), 1, width).astype(np.int64)
        count = np.minimum(count, length - 3)
        keys = np.where(candidate, rng.random((n, seq_len)), 2.0)  # a random subset: the smallest keys
        # the count-th smallest key of each row, then the keys up to it: a sort of the keys costs a
        # third of an argsort, and positions come out in order
        cutoff = np.take_along_axis(np.sort(keys, axis=1), (count - 1)[:, None], 1)
        picked = keys <= cutoff
        if np.count_nonzero(picked) != count.sum():  # a tie at a cutoff (keys are 53-bit): keep `count`
            picked &= np.cumsum(picked, axis=1) <= count[:, None]
        at = np.flatnonzero(picked)
        row = np.repeat(np.arange(n), count)
        positions[row, np.arange(len(at)) - np.repeat(np.cumsum(count) - count, count)] = at - row * seq_len
        return positions
    for r in range(n):
        picked = choose(ids[r, : length[r]], int(len_a[r, 0]), int(len_b[r, 0]), spec, rng)
        positions[r, : len(picked)] = np.sort(picked)
    return positions


def pair_from_google(features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Undo a TFRecord example's static masking: (A ids, B ids, label) as they were before."""
    ids = features["input_ids"].copy()
    real = features["masked_lm_weights"] > 0
    ids[features["masked_lm_positions"][real]] = features["masked_lm_ids"][real]
    inside = features["input_mask"] > 0
    len_a = int(np.count_nonzero((features["segment_ids"] == 0) & inside)) - 2
    len_b = int(np.count_nonzero((features["segment_ids"] == 1) & inside)) - 1
    return ids[1 : 1 + len_a], ids[2 + len_a : 2 + len_a + len_b], int(features["next_sentence_labels"][0])
