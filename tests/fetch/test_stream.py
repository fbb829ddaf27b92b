"""fetch/stream.py against fake-gcs-server: files fetched in the order a reader needs them, verified,
never more bytes here than the bound, used ones removed, and a failure handed to the reader."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from bertvault.cache import layout
from bertvault.data.streamed import Arrivals
from bertvault.errors import DownloadError
from bertvault.fetch.stream import Prefetch
from bertvault.fetch.urls import artifact_for


@pytest.fixture
def bucket(gcs):
    name = f"prefetch-{uuid.uuid4().hex[:8]}"
    rng = random.Random(4)
    files = {f"part-{i:02d}": rng.randbytes(rng.randint(20_000, 60_000)) for i in range(12)}
    for path, data in files.items():
        gcs.upload(name, f"p/{path}", data)
    return name, files


def _bytes_here(folder: Path) -> int:
    """What the folder and the partial downloads hold (the bound covers both)."""
    here = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    partial = layout.partial_dir()
    return here + (sum(p.stat().st_size for p in partial.glob("*/data")) if partial.is_dir() else 0)


def _eventually(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_files_come_in_plan_order_within_the_bound_and_go_once_read(bucket, tmp_path):
    name, files = bucket
    artifact = artifact_for(f"gs://{name}/p")
    folder = tmp_path / "area"
    folder.mkdir()
    paths = sorted(files)
    groups = [(g, paths[2 * g:2 * g + 2]) for g in range(6)]
    bound = 150_000  # a little more than two groups of the largest files
    prefetch = Prefetch(artifact, folder, bound, jobs=2, ahead=2)
    seen, lock = [], threading.Lock()
    fetch = prefetch._fetcher.fetch

    def measured(spec, task):  # the bytes here right after every file arrives
        result = fetch(spec, task)
        with lock:
            seen.append(_bytes_here(folder))
        return result

    prefetch._fetcher.fetch = measured
    prefetch.follow(iter(groups))
    try:
        for key, wanted in groups:
            prefetch.consumed(key, key)
            prefetch.wait_for(wanted)
            for path in wanted:
                assert (folder / path).read_bytes() == files[path]
            earlier = [p for _, ps in groups[:key] for p in ps]
            assert _eventually(lambda: not any((folder / p).exists() for p in earlier))  # read groups go
            assert _bytes_here(folder) <= bound
    finally:
        prefetch.close()
    assert sorted(prefetch.fetched) == paths and len(prefetch.fetched) == len(paths)  # each once
    assert sorted(prefetch.fetched[:2]) == paths[:2]  # the first group first
    assert max(seen) <= bound and prefetch.peak <= bound
    assert max(seen) > 60_000  # more than one group was here at once: it does fetch ahead


def test_the_reader_can_need_more_groups_than_the_lookahead(bucket, tmp_path):
    name, files = bucket
    prefetch = Prefetch(artifact_for(f"gs://{name}/p"), tmp_path, 10**7, ahead=0)
    paths = sorted(files)
    prefetch.follow([(g, [p]) for g, p in enumerate(paths)])
    try:
        prefetch.consumed(0, 5)  # one batch reads groups 0..5
        prefetch.wait_for(paths[:6])
    finally:
        prefetch.close()
    assert set(paths[:6]) <= set(prefetch.fetched)


def test_a_failed_fetch_reaches_the_reader_here_and_in_other_processes(bucket, gcs, tmp_path):
    name, files = bucket
    artifact = artifact_for(f"gs://{name}/p")
    # gone since it was listed
    requests.delete(f"{gcs.endpoint}/storage/v1/b/{name}/o/p%2Fpart-03").raise_for_status()
    arrivals = Arrivals(tmp_path)
    prefetch = Prefetch(artifact, tmp_path, 10**7, on_failure=arrivals.fail)
    prefetch.follow([(g, [p]) for g, p in enumerate(sorted(files))])
    try:
        prefetch.consumed(3, 3)
        with pytest.raises(DownloadError, match="part-03"):
            prefetch.wait_for(["part-03"])
    finally:
        prefetch.close()
    with pytest.raises(DownloadError, match="part-03"):
        arrivals.path("part-03")  # a data-loader worker waiting for it
    assert not (tmp_path / "part-03").exists()


def test_files_left_by_an_earlier_run_are_kept_only_if_listed_and_whole(bucket, tmp_path):
    name, files = bucket
    (tmp_path / "part-00").write_bytes(files["part-00"])  # whole: kept, not fetched again
    (tmp_path / "part-01").write_bytes(files["part-01"][:100])  # cut short: fetched again
    (tmp_path / "stray").write_bytes(b"x")
    prefetch = Prefetch(artifact_for(f"gs://{name}/p"), tmp_path, 10**7)
    prefetch.follow([(0, ["part-00", "part-01"])])
    try:
        prefetch.wait_for(["part-00", "part-01"])
    finally:
        prefetch.close()
    assert prefetch.fetched == ["part-01"]
    assert (tmp_path / "part-01").read_bytes() == files["part-01"]
    assert not (tmp_path / "stray").exists()
    assert not os.access(tmp_path / "part-01", os.W_OK) or os.geteuid() == 0  # installed read-only
