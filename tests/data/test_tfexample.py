"""The hand-laid tf.train.Example records are protobuf's bytes and TensorFlow's framing, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertvault.data import tfexample, tfrecord

# Every varint length from 1 to 10 bytes, both sides of each boundary, and negative int64s (10 bytes).
EDGES = [0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28, 2**31 - 1, 2**32, 2**35, 2**49, 2**56,
         2**63 - 1, -1, -128, -(2**63)]
FLOATS = np.array([0.0, -0.0, 1.0, 0.5, -3.25e-7, 1e30, np.inf, np.nan], np.float32)


def _protobuf(batch: dict[str, np.ndarray], row: int) -> bytes:
    message = tfrecord.example_class()()
    for name, values in batch.items():
        feature = message.features.feature[name]
        target = feature.float_list if tfrecord.KINDS[name] == "float" else feature.int64_list
        target.value[:] = values[row].tolist()
    return message.SerializeToString(deterministic=True)


def _batch(rng: np.random.Generator, n: int, seq_len: int, predictions: int, high: int) -> dict:
    def ints(width: int) -> np.ndarray:
        values = rng.integers(0, high, (n, width), dtype=np.int64)
        spots = rng.random((n, width)) < 0.2
        values[spots] = rng.choice(np.array(EDGES, dtype=np.int64), spots.sum())
        return values

    return {
        "input_ids": ints(seq_len), "input_mask": rng.integers(0, 2, (n, seq_len)),
        "segment_ids": rng.integers(0, 2, (n, seq_len)), "masked_lm_positions": ints(predictions),
        "masked_lm_ids": ints(predictions), "next_sentence_labels": rng.integers(0, 2, (n, 1)),
        "masked_lm_weights": rng.choice(FLOATS, (n, predictions)),
    }


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), seq_len=st.sampled_from([1, 8, 128, 200, 512]),
       predictions=st.integers(1, 80), high=st.sampled_from([2, 128, 30522, 250_000, 2**40]))
def test_examples_are_protobufs_deterministic_bytes(seed, n, seq_len, predictions, high):
    batch = _batch(np.random.default_rng(seed), n, seq_len, predictions, high)
    flat, lengths = tfexample.encode(batch, tfrecord.KINDS)
    ends = np.cumsum(lengths).tolist()
    got = [flat[end - length : end].tobytes() for length, end in zip(lengths.tolist(), ends)]
    assert len(got) == n and ends[-1] == len(flat)
    assert got == [_protobuf(batch, row) for row in range(n)]


def test_one_byte_values_and_plain_lists():
    batch = {"input_mask": np.ones((3, 5), np.uint8), "masked_lm_weights": np.zeros((3, 2), np.float32)}
    flat, lengths = tfexample.encode(batch, tfrecord.KINDS)
    assert flat[: lengths[0]].tobytes() == _protobuf(batch, 0)


def test_records_are_what_tensorflows_writer_writes(tmp_path):
    tf = pytest.importorskip("tensorflow")
    batch = _batch(np.random.default_rng(3), 300, 128, 20, 30522)
    path = tmp_path / "theirs.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in range(300):
            writer.write(_protobuf(batch, row))
    assert tfrecord.encode_records(batch).tobytes() == path.read_bytes()
    parsed = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset([str(path)])]
    assert parsed[7].features.feature["input_ids"].int64_list.value == batch["input_ids"][7].tolist()
