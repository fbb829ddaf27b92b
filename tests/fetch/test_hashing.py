"""The hasher: file order from buffers handed over out of order, bytes read back where no buffer
was lent, with and without direct I/O; every lent buffer goes back to its pool."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import threading

import pytest
from fetch_helpers import random_bytes

from bertvault.fetch.buffers import Pool
from bertvault.fetch.hashing import Hasher, Progress
from bertvault.io.ranges import RangeSet
from bertvault.io.space import open_direct

SIZE = 3_000_001  # an unaligned tail


@pytest.mark.parametrize("direct", [False, True], ids=["page-cache", "direct-io"])
def test_out_of_order_writes_hash_in_file_order(tmp_path, direct) -> None:
    data = random_bytes(SIZE, seed=7)
    path = tmp_path / "partial"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, SIZE)
    direct_fd = open_direct(path) if direct else None
    if direct and direct_fd is None:
        pytest.skip(f"no direct I/O on the filesystem of {tmp_path}")
    pool = Pool(4, 65536)
    progress = Progress(RangeSet())
    hasher = Hasher(fd, {"sha256", "md5"}, progress, block=50_000, direct_fd=direct_fd)
    hasher.start()
    # Pieces of assorted sizes, written in shuffled order; a lent buffer only while the pool has one.
    cuts = sorted({0, SIZE, *random.Random(1).sample(range(1, SIZE), 60)})
    pieces = list(itertools.pairwise(cuts))
    random.Random(2).shuffle(pieces)
    lent_count = 0
    for start, end in pieces:
        os.pwrite(fd, data[start:end], start)
        buffer = pool.get() if end - start <= pool.size else None
        if buffer is not None:
            lent_count += 1
            buffer[: end - start] = data[start:end]
        progress.add(start, end, buffer, pool.put)
    progress.finish(SIZE)
    hashes = hasher.result(SIZE)
    assert hashes == {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}
    returned = [pool.get() for _ in range(4)]
    assert lent_count > 0 and [len(b) for b in returned] == [pool.size] * 4  # all came back, whole
    os.close(fd)
    if direct_fd is not None:
        os.close(direct_fd)


def test_an_abort_returns_held_buffers_and_ends_the_hasher(tmp_path) -> None:
    fd = os.open(tmp_path / "partial", os.O_RDWR | os.O_CREAT, 0o644)
    pool = Pool(2, 4096)
    progress = Progress(RangeSet())
    hasher = Hasher(fd, {"sha256"}, progress, block=4096)
    hasher.start()
    held = pool.get()
    os.pwrite(fd, bytes(4096), 8192)
    progress.add(8192, 12288, held, pool.put)  # ahead of a gap that never fills
    threading.Timer(0.05, progress.abort).start()
    hasher.join(5)
    assert not hasher.is_alive() and pool.get() is not None and pool.get() is not None
    os.close(fd)


def test_the_pool_keeps_spares_for_whoever_asks_without_them() -> None:
    pool = Pool(3, 4096)
    ahead = pool.get(spare=2)
    assert ahead is not None and pool.get(spare=2) is None  # two left: both are spares
    assert pool.get(wait=0.01, spare=2) is None  # waiting does not take a spare either
    spares = [pool.get(), pool.get()]
    assert all(b is not None for b in spares) and pool.get() is None
    threading.Timer(0.05, pool.put, args=(ahead,)).start()
    assert pool.get(wait=5) is ahead  # a waiter wakes when a buffer comes back
    with pytest.raises(ValueError, match="given back"):
        pool.put(ahead[:100])
