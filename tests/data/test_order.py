"""The shard-by-shard order of streamed data: every example once per epoch, each rank on its own run of
shards, windows that read only their shards, resume, and the same items whether streamed or local."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from bertvault.data import order, prepare, shards
from bertvault.data.dataset import MODEL_INPUTS, PretrainingDataset
from bertvault.data.order import ShardOrder
from bertvault.data.streamed import Arrivals, StreamedFolder

COUNTS = [7, 0, 12, 3, 9, 1, 15, 4, 8, 0, 11, 6, 2, 10, 5]


def _orders(world: int, drop: bool, epoch: int = 3, window: int = 3) -> list[ShardOrder]:
    return [ShardOrder(COUNTS, seed=5, epoch=epoch, rank=r, world_size=world, shuffle=True, window=window,
                       drop_remainder=drop) for r in range(world)]


def _shard_of(example: int) -> int:
    return int(np.searchsorted(np.cumsum(COUNTS), example, side="right"))


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_ranks_cover_every_example_once(world):
    total = sum(COUNTS)
    seen = [o.example(k) for o in _orders(world, drop=False) for k in range(len(o))]
    assert sorted(seen) == list(range(total))
    kept = [o.example(k) for o in _orders(world, drop=True) for k in range(len(o))]
    assert len(kept) == total // world * world and len(set(kept)) == len(kept)
    assert {len(o) for o in _orders(world, drop=True)} == {total // world}


def test_each_rank_reads_a_run_of_shards_and_each_window_only_its_own():
    ranks = _orders(3, drop=True)
    owned = []
    for o in ranks:
        shards_read = {_shard_of(o.example(k)) for k in range(len(o))}
        windows = [o.window(w) for w in range(o.windows)]
        assert shards_read == {s for w in windows for s in w.shards}
        assert 1 not in shards_read and 9 not in shards_read  # empty shards are never asked for
        for w in windows:
            assert {_shard_of(o.example(k)) for k in range(w.start, w.end)} <= set(w.shards)
            assert len(w.shards) <= 3
        owned.append(shards_read)
    # a shard is read by two ranks only where their runs meet
    assert len(owned[0] & owned[1]) <= 1 and len(owned[1] & owned[2]) <= 1 and not owned[0] & owned[2]
    assert sum(len(s) for s in owned) <= len([c for c in COUNTS if c]) + 2


def test_epochs_and_seeds_change_the_order_and_windows_shuffle_their_examples():
    first = _orders(1, drop=True, epoch=0)[0]
    second = _orders(1, drop=True, epoch=1)[0]
    items = [first.example(k) for k in range(len(first))]
    assert items != [second.example(k) for k in range(len(second))]
    assert items != sorted(items)
    unshuffled = ShardOrder(COUNTS, seed=5, epoch=0, rank=0, world_size=1, shuffle=False, window=1,
                            drop_remainder=False)
    assert [unshuffled.example(k) for k in range(len(unshuffled))] == list(range(sum(COUNTS)))


def test_batch_windows_name_every_window_a_batch_reads():
    o = _orders(2, drop=True, window=2)[0]
    spans = o.batch_windows(4, 0, len(o) // 4)
    for j, (first, last) in enumerate(spans):
        touched = {o.window_of(k) for k in range(4 * j, 4 * j + 4)}
        assert touched == set(range(first, last + 1))


def _prepared(tmp_path, make_corpus, vocab, kind: str):
    text = make_corpus(documents=120)
    plan = prepare.plan([str(text)], str(vocab), str(tmp_path / kind),
                        prepare.Options(seq_len=64, chunk_bytes=3000, format=kind, dupe_factor=1))
    prepare.run(plan)
    return tmp_path / kind


@pytest.fixture
def native(tmp_path, make_corpus, uncased_vocab):
    return _prepared(tmp_path, make_corpus, uncased_vocab, "native")


@pytest.mark.parametrize("kind", ["native", "tfrecord"])
def test_a_streamed_folder_gives_the_items_of_the_local_one_in_the_same_order(kind, tmp_path, make_corpus,
                                                                              uncased_vocab):
    native = _prepared(tmp_path, make_corpus, uncased_vocab, kind)
    header = shards.read_header(native)
    assert len(header["shards"]) > 2 * order.WINDOW
    arrived = tmp_path / "arrived"
    shutil.copytree(native, arrived)
    for rank in range(2):
        local = PretrainingDataset(native, seed=3, epoch=1, rank=rank, world_size=2, drop_remainder=True,
                                   window=order.WINDOW)
        streamed = PretrainingDataset(StreamedFolder(Arrivals(arrived), header), seed=3, epoch=1,
                                      rank=rank, world_size=2, drop_remainder=True)
        assert len(local) == len(streamed)
        for k in range(0, len(local), 7):
            assert local.example_index(k) == streamed.example_index(k)
            assert all(torch.equal(local[k][key], streamed[k][key]) for key in MODEL_INPUTS)
        resumed = PretrainingDataset(StreamedFolder(Arrivals(arrived), header), seed=3, epoch=1,
                                     rank=rank, world_size=2, drop_remainder=True, start=40)
        following = [local.example_index(k) for k in range(40, 70)]
        assert [resumed.example_index(k) for k in range(30)] == following


def test_a_reader_waits_for_its_shard_and_raises_a_failed_fetch(native, tmp_path):
    import threading

    from bertvault.errors import ChecksumMismatch

    header = shards.read_header(native)
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    for name in (shards.HEADER, shards.VOCAB):
        shutil.copy(native / name, arrived / name)
    data = PretrainingDataset(StreamedFolder(Arrivals(arrived), header), seed=1, shuffle=False)
    first = header["shards"][0]
    late = threading.Timer(0.3, lambda: [shutil.copy(native / first[k], arrived / first[k])
                                         for k in ("ids", "index")])
    late.start()
    item = data[0]  # waits until the shard is there
    late.join()
    assert torch.equal(item["input_ids"], PretrainingDataset(native, seed=1, shuffle=False)[0]["input_ids"])
    Arrivals(arrived).fail(ChecksumMismatch("part-00003.ids.npy: md5 expected x, got y"))
    with pytest.raises(ChecksumMismatch, match="md5 expected"):
        data[len(data) - 1]  # its shard never came: the fetch's own error, in the reader
