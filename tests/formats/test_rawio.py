"""Tensors mapped in place and written at planned offsets by worker threads."""

from __future__ import annotations

import os
import threading
import time
import zlib

import numpy as np
import pytest

from bertvault.errors import ConversionError
from bertvault.formats import rawio


def test_mapped_arrays_read_in_place_and_never_write_back(tmp_path):
    data = np.arange(5000, dtype=np.float32)
    path = tmp_path / "raw"
    path.write_bytes(b"x" * 12 + data.tobytes())  # an offset that is no page boundary
    mapped = rawio.MappedFile(path)
    array = mapped.array(12, np.dtype(np.float32), (50, 100))
    mapped.close()  # arrays already mapped stay valid
    assert np.array_equal(array, data.reshape(50, 100))
    array += 1  # copy-on-write
    assert path.read_bytes()[12:] == data.tobytes()


def test_a_range_past_the_end_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "raw"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(ConversionError, match="truncated"):
        rawio.MappedFile(path).array(64, np.dtype(np.float32), (10,))


def _placed(arrays, tmp_path, regions: bool = False):
    """Jobs for `arrays` back to back; with `regions`, each also lies in an input file as it is."""
    source = tmp_path / "input"
    source.write_bytes(b"pad" + b"".join(a.tobytes() for a in arrays))
    jobs, at = [], 0
    for array in arrays:
        region = (source, 3 + at) if regions else None
        jobs.append(rawio.Placed(at, array.nbytes, lambda a=array: a, region))
        at += array.nbytes
    return jobs


@pytest.mark.parametrize("regions", [False, True])
@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_land_at_their_offsets_with_their_crcs(tmp_path, regions, workers):
    arrays = [np.full(n, k, dtype=np.uint8) for k, n in enumerate([3, (4 << 20) + 5, 0, 1000, 7, 9])]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        crcs = rawio.write_placed(fd, _placed(arrays, tmp_path, regions), want_crc=True, workers=workers)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"".join(a.tobytes() for a in arrays)
    assert crcs == [zlib.crc32(a.tobytes()) for a in arrays]


def test_a_region_copied_file_to_file_is_never_produced(tmp_path):
    def never():
        raise AssertionError("produced")

    (tmp_path / "input").write_bytes(b"0123456789")
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        rawio.write_placed(fd, [rawio.Placed(0, 4, never, (tmp_path / "input", 6))])
        with pytest.raises(ConversionError, match="truncated"):  # the input shrank after it was read
            rawio.write_placed(fd, [rawio.Placed(0, 8, never, (tmp_path / "input", 6))])
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes()[:4] == b"6789"


def test_a_failing_job_stops_the_rest(tmp_path):
    started = []
    gate = threading.Event()

    def fail():
        gate.wait(5)
        raise ConversionError("bad tensor")

    def ok(k):
        started.append(k)
        gate.set()
        time.sleep(0.02)
        return np.zeros(4, dtype=np.uint8)

    jobs = [rawio.Placed(0, 4, fail)] + [rawio.Placed(4 * k, 4, lambda k=k: ok(k)) for k in range(1, 50)]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(ConversionError, match="bad tensor"):
            rawio.write_placed(fd, jobs, workers=2)
    finally:
        os.close(fd)
    assert len(started) < 10  # the queued jobs were cancelled, not run


def test_workers_run_ahead_by_bytes_past_a_run_of_small_tensors(tmp_path):
    """A tensor that takes long (a big transpose) does not leave the other worker idle behind a few
    biases: the tensor after them is produced meanwhile, up to AHEAD_BYTES ahead."""
    later_started = threading.Event()
    seen: list[bool] = []

    def slow():
        seen.append(later_started.wait(2))
        return np.zeros(4, dtype=np.uint8)

    def later():
        later_started.set()
        return np.ones(4, dtype=np.uint8)

    small = [rawio.Placed(4 * k, 4, lambda: np.zeros(4, dtype=np.uint8)) for k in range(1, 6)]
    jobs = [rawio.Placed(0, 4, slow), *small, rawio.Placed(24, 4, later)]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        rawio.write_placed(fd, jobs, workers=2)
    finally:
        os.close(fd)
    assert seen == [True]
    assert (tmp_path / "out").read_bytes() == bytes(24) + b"\x01" * 4
