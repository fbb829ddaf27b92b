"""TFRecords: what `prepare --format tfrecord` writes parses under run_pretraining.py's feature spec."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bertvault.data import prepare, tfrecord
from bertvault.data.dataset import PretrainingDataset
from bertvault.errors import DataError
from bertvault.formats.vocab import read_vocab

SEQ, PRED = 128, 20


def _google_records(files):
    """Parse files exactly as google-research/bert's run_pretraining.input_fn_builder does."""
    import tensorflow as tf

    name_to_features = {
        "input_ids": tf.io.FixedLenFeature([SEQ], tf.int64),
        "input_mask": tf.io.FixedLenFeature([SEQ], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([SEQ], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([PRED], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([PRED], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([PRED], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
    dataset = tf.data.TFRecordDataset([str(f) for f in files])
    dataset = dataset.map(lambda record: tf.io.parse_single_example(record, name_to_features))
    return [{k: v.numpy() for k, v in example.items()} for example in dataset]


@pytest.fixture
def prepared(tmp_path, corpus, uncased_vocab):
    plan = prepare.plan([str(corpus)], str(uncased_vocab), str(tmp_path / "tfr"),
                        prepare.Options(format="tfrecord", seq_len=SEQ, max_predictions=PRED, dupe_factor=2))
    return tmp_path / "tfr", prepare.run(plan)


def test_tfrecords_parse_with_googles_feature_spec(prepared, uncased_vocab):
    out, header = prepared
    vocab = read_vocab(uncased_vocab)
    records = _google_records(sorted(out.glob("*.tfrecord")))
    assert len(records) == header["counts"]["examples"] > 300
    masked = kept = 0
    predictions = 0
    for r in records:
        length = int(r["input_mask"].sum())
        assert r["input_mask"][:length].all() and not r["input_mask"][length:].any()
        ids, seg = r["input_ids"], r["segment_ids"]
        assert ids[0] == vocab["[CLS]"] and ids[length - 1] == vocab["[SEP]"]
        assert (ids[length:] == vocab["[PAD]"]).all()
        first_sep = int(np.flatnonzero(seg[:length] == 1)[0]) - 1
        assert ids[first_sep] == vocab["[SEP]"]
        assert not seg[: first_sep + 1].any() and seg[first_sep + 1 : length].all()
        count = int(r["masked_lm_weights"].sum())
        assert count == min(PRED, max(1, round(length * 0.15)))
        positions = r["masked_lm_positions"][:count]
        assert (np.diff(positions) > 0).all() and (positions > 0).all() and (positions < length - 1).all()
        assert not r["masked_lm_positions"][count:].any() and not r["masked_lm_ids"][count:].any()
        masked += int((ids[positions] == vocab["[MASK]"]).sum())
        kept += int((ids[positions] == r["masked_lm_ids"][:count]).sum())
        predictions += count
        assert r["next_sentence_labels"][0] in (0, 1)
    assert 0.76 < masked / predictions < 0.84
    assert 0.08 < kept / predictions < 0.12


def test_tfrecords_convert_back_to_the_same_pairs(prepared, tmp_path, uncased_vocab):
    out, header = prepared
    native = tmp_path / "native"
    plan = prepare.plan([str(out / "part-00000.tfrecord")], str(uncased_vocab), str(native),
                        prepare.Options())
    assert plan.options.seq_len == SEQ  # taken from the records
    converted = prepare.run(plan)
    assert converted["counts"]["examples"] == header["counts"]["examples"]
    from_records = PretrainingDataset(out, shuffle=False)
    from_native = PretrainingDataset(native, shuffle=False)
    for k in range(0, from_native.num_examples, 7):
        a1, b1, l1 = from_records.pair(k)
        a2, b2, l2 = from_native.pair(k)
        assert a1.tolist() == a2.tolist() and b1.tolist() == b2.tolist() and l1 == l2


def test_dataset_reads_bare_tfrecord_files_with_a_vocab(prepared, tmp_path, uncased_vocab):
    out, header = prepared
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(out / "part-00000.tfrecord", bare / "train.tfrecord")
    with pytest.raises(DataError, match="pass vocab="):
        PretrainingDataset(bare)
    data = PretrainingDataset(bare, vocab=uncased_vocab, seed=3)
    assert data.num_examples == header["counts"]["examples"] and data.seq_len == SEQ
    item = data[0]
    assert item["input_ids"].shape == (SEQ,) and item["masked_lm_positions"].shape == (PRED,)


def test_corrupt_record_is_reported(prepared, tmp_path):
    out, _ = prepared
    damaged = tmp_path / "damaged.tfrecord"
    data = bytearray((out / "part-00000.tfrecord").read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt record|checksum"):
        list(tfrecord.records(damaged))


def test_whole_word_masking_in_tfrecords(tmp_path, corpus, uncased_vocab):
    from bertvault.formats.vocab import vocab_tokens

    plan = prepare.plan([str(corpus)], str(uncased_vocab), str(tmp_path / "wwm"),
                        prepare.Options(format="tfrecord", seq_len=SEQ, max_predictions=PRED, dupe_factor=1,
                                        whole_word_mask=True))
    prepare.run(plan)
    continuation = np.array([t.startswith("##") for t in vocab_tokens(uncased_vocab)])
    pieces = 0
    for r in _google_records(sorted((tmp_path / "wwm").glob("*.tfrecord"))):
        count = int(r["masked_lm_weights"].sum())
        chosen = set(r["masked_lm_positions"][:count].tolist())
        original = r["input_ids"].copy()
        original[r["masked_lm_positions"][:count]] = r["masked_lm_ids"][:count]
        length = int(r["input_mask"].sum())
        for p in chosen:
            if p + 1 < length and continuation[original[p + 1]]:
                assert p + 1 in chosen, "a word is masked whole"
                pieces += 1
    assert pieces > 20


def _batch_inputs(seed: int, n: int = 300):
    from bertvault.data import features
    from bertvault.data.masking import MaskSpec

    rng = np.random.default_rng(seed)
    len_a, len_b = rng.integers(1, 70, n), rng.integers(1, 70, n)
    over = len_a + len_b > SEQ - 3
    len_b[over] = np.maximum(1, SEQ - 3 - len_a[over])
    len_a = np.minimum(len_a, SEQ - 4)
    tokens = rng.integers(1000, 30000, int((len_a + len_b).sum())).astype(np.uint16)
    index = np.stack([np.cumsum(len_a + len_b) - len_a - len_b, len_a, len_b, rng.integers(0, 2, n)], axis=1)
    return tokens, index, features.Specials(0, 101, 102, 103), MaskSpec(PRED, 0.15, 30522, 103)


def test_masked_positions_are_the_smallest_random_keys():
    """Each example's masked positions: the `count` candidates with the smallest of one uniform key
    per position, as an argsort of the keys picks them (the same draws, so the same output as ever)."""
    from bertvault.data import features

    tokens, index, specials, spec = _batch_inputs(5)
    got = features.google_batch(tokens, index, SEQ, specials, spec, np.random.default_rng(9))
    keys = np.random.default_rng(9).random((len(index), SEQ))
    for row, (_, len_a, len_b, _) in enumerate(index.tolist()):
        candidates = np.r_[1 : 1 + len_a, 2 + len_a : 2 + len_a + len_b]
        count = min(PRED, max(1, round((len_a + len_b + 3) * 0.15)), len_a + len_b)
        expected = np.sort(candidates[np.argsort(keys[row, candidates])[:count]])
        assert got["masked_lm_positions"][row, :count].tolist() == expected.tolist()
        assert not got["masked_lm_positions"][row, count:].any()
        assert got["masked_lm_weights"][row].sum() == count


def test_tied_keys_still_mask_count_distinct_candidates():
    from bertvault.data import features

    class Coarse:  # keys from 8 values: ties at every cutoff
        def __init__(self):
            self.rng = np.random.default_rng(1)

        def random(self, shape):
            return np.floor(self.rng.random(shape) * 8) / 8

        def integers(self, *args):
            return self.rng.integers(*args)

    tokens, index, specials, spec = _batch_inputs(6)
    got = features.google_batch(tokens, index, SEQ, specials, spec, Coarse())
    for row, (_, len_a, len_b, _) in enumerate(index.tolist()):
        count = min(PRED, max(1, round((len_a + len_b + 3) * 0.15)), len_a + len_b)
        positions = got["masked_lm_positions"][row, :count]
        assert len(set(positions.tolist())) == count and (np.diff(positions) > 0).all()
        assert ((positions >= 1) & (positions <= len_a + len_b + 1) & (positions != len_a + 1)).all()
