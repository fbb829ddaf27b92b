"""`pretrain --data gs://bucket/prefix`: a prepared folder in a bucket (fake-gcs-server behind a proxy
that logs and can hold back reads), streamed shard by shard: the first step before the last shard,
kill -9 and --resume at the exact example, the bound on local shards, each rank on its own shards."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from servers import StorageLog

from bertvault import paths
from bertvault.data import order, shards
from bertvault.data.order import ShardOrder
from bertvault.errors import DataError
from bertvault.train import pretrain, pretrain_data

REPO = Path(__file__).resolve().parents[2]
TINY = {"batch_size": 8, "seq_len": 64, "max_predictions": 10, "log_every": 1, "save_every": 0}
FLAGS = ["--batch-size", "8", "--seq-len", "64", "--max-predictions", "10", "--log-every", "1"]
SEED = 12345  # the default --seed


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_bert) -> Path:
    """About a hundred small native shards of sample_text.txt's sentences, prepared with the tiny vocab."""
    from bertvault.data import prepare

    pool = [line.strip() for line in (REPO / "bertvault/resources/sample_text.txt").read_text().splitlines()
            if line.strip()]
    rng = random.Random(3)
    docs = ["\n".join(rng.choice(pool) for _ in range(rng.randint(5, 20))) for _ in range(260)]
    folder = tmp_path_factory.mktemp("streamed")
    (folder / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    out = folder / "prepared"
    options = prepare.Options(seq_len=64, max_predictions=10, seed=1, chunk_bytes=2000)
    prepare.run(prepare.plan([str(folder / "corpus.txt")], str(tiny_bert / "vocab.txt"), str(out), options,
                             lowercase=True))
    assert len(shards.read_header(out)["shards"]) > 10 * order.WINDOW
    return out


@dataclass
class Bucket:
    url: str
    proxy: StorageLog
    folder: Path

    @property
    def header(self) -> dict:
        return shards.read_header(self.folder)

    def shard_files(self) -> set[str]:
        return {e[k] for e in self.header["shards"] for k in ("ids", "index")}

    def read(self, since: int = 0) -> list[str]:
        """Shard files read from the bucket (each request once), from the `since`-th request on."""
        return [name.rsplit("/", 1)[-1] for name in self.proxy.objects_read()[since:]
                if name.rsplit("/", 1)[-1] in self.shard_files()]

    def window_files(self, epoch: int, rank: int = 0, world: int = 1) -> list[set[str]]:
        o = self.order(epoch, rank, world)
        entries = self.header["shards"]
        return [{entries[s][k] for s in o.window(w).shards for k in ("ids", "index")}
                for w in range(o.windows)]

    def order(self, epoch: int, rank: int = 0, world: int = 1) -> ShardOrder:
        counts = [e["examples"] for e in self.header["shards"]]
        return ShardOrder(counts, seed=SEED, epoch=epoch, rank=rank, world_size=world, shuffle=True,
                          window=order.WINDOW, drop_remainder=True)


@pytest.fixture
def bucket(gcs_server, prepared, monkeypatch) -> Bucket:
    name = f"stream-{uuid.uuid4().hex[:8]}"
    for path in sorted(prepared.iterdir()):
        gcs_server.upload(name, f"data/{path.name}", path.read_bytes())
    proxy = StorageLog(gcs_server.endpoint)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
    yield Bucket(f"gs://{name}/data", proxy, prepared)
    proxy.close()


def _start(args: list) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bertvault", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}:\n"
                                 f"{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.005)


def _finish(process: subprocess.Popen, timeout: float) -> str:
    """The run's stderr once it ends; one still running after `timeout` s is killed and fails the test."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"the run did not end within {timeout} s") from None


def _stepped(out: Path) -> bool:
    metrics = out / "metrics.jsonl"
    return metrics.is_file() and metrics.stat().st_size > 0


def _losses(out: Path) -> dict[int, float]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


@pytest.mark.timeout(240)
def test_training_starts_before_the_last_shard_is_read(tmp_path, bucket, tiny_bert):
    """The bucket serves the first three windows of shards and holds back every other shard: the first
    step comes all the same (pulling the whole prefix first, it never would)."""
    allowed, lock = set(), threading.Lock()

    def held_back(name: str) -> bool:
        if name.rsplit("/", 1)[-1] not in bucket.shard_files():
            return False
        with lock:
            if name in allowed or len(allowed) < 3 * 2 * order.WINDOW:
                allowed.add(name)
                return False
        return True

    bucket.proxy.hold(held_back)
    out = tmp_path / "run"
    process = _start(["pretrain", "--from", tiny_bert, "--data", bucket.url, "--out", out, "--steps", 40,
                      *FLAGS])
    try:
        _wait_for(lambda: _stepped(out), process, "first step")
        read_by_then = set(bucket.read())
        assert len(read_by_then) < len(bucket.shard_files())
    finally:
        bucket.proxy.release()
    stderr = _finish(process, 180)
    assert process.returncode == 0, stderr[-3000:]
    read = bucket.read()
    assert len(read) == len(set(read))  # no shard fetched twice
    assert 2 * 2 * order.WINDOW < len(read) < len(bucket.shard_files())  # read on as it went, not all
    record = json.loads((out / "model" / "provenance.json").read_text())
    assert record["sources"][1]["source"] == bucket.url and record["sources"][1]["streamed"] is True


@pytest.mark.timeout(300)
def test_kill_9_then_resume_continues_at_the_exact_example(tmp_path, bucket, tiny_bert):
    windows = bucket.window_files(epoch=0)
    stuck = bucket.order(0).window_of(20 * 8 - 1) + 1  # after checkpoint 20: held back, the kill lands there
    later = set().union(*windows[stuck:]) - set().union(*windows[:stuck])
    bucket.proxy.hold(lambda name: name.rsplit("/", 1)[-1] in later)
    common = ["--from", tiny_bert, "--data", bucket.url, "--steps", 36, "--save-every", 10, "--lr", "2e-3",
              *FLAGS]
    killed = tmp_path / "killed"
    process = _start(["pretrain", *common, "--out", killed])
    _wait_for(lambda: (killed / "checkpoints" / "step-00000020").is_dir(), process, "checkpoint 20")
    time.sleep(0.5)  # let it run on into the held-back shards
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    left = {p.name for p in (paths.home() / "stream").glob("*/part-*")}  # whole, verified shards it left
    bucket.proxy.release()

    before = len(bucket.proxy.objects_read())
    resumed = subprocess.run([sys.executable, "-m", "bertvault", "pretrain", "--out", killed, "--resume"],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fetched_again = set(bucket.read(before))
    done_with = set().union(*windows[:bucket.order(0).window_of(20 * 8)])
    assert not fetched_again & left, "shards the killed run left whole were fetched again"
    assert not fetched_again & done_with, "shards read before the checkpoint were fetched again"

    straight = tmp_path / "straight"  # uninterrupted, in this process on one thread like the runs above
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain.run(pretrain.resolve_settings({}, {**TINY, "from_": str(tiny_bert), "data": bucket.url,
                                                    "out": str(straight), "steps": 36, "save_every": 10,
                                                    "lr": 2e-3}, resume=False))
    finally:
        torch.set_num_threads(threads)
    after_kill, uninterrupted = _losses(killed), _losses(straight)
    assert sorted(after_kill) == list(range(1, 37))
    for step in range(21, 37):
        assert after_kill[step] == pytest.approx(uninterrupted[step], rel=1e-6, abs=1e-6), step
    assert len({round(after_kill[s], 4) for s in range(21, 37)}) > 5  # the losses do move


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_shards_are_on_their_way_ends_the_wait(tmp_path, bucket, tiny_bert, sig):
    """The bucket holds back a window's shards for two minutes: Ctrl-C (or SIGTERM) ends the run at once,
    exit 130, one line, the last checkpoint kept."""
    windows = bucket.window_files(epoch=0)
    stuck = bucket.order(0).window_of(10 * 8 - 1) + 1  # the first window after step 10
    later = set().union(*windows[stuck:]) - set().union(*windows[:stuck])
    bucket.proxy.hold(lambda name: name.rsplit("/", 1)[-1] in later)
    out = tmp_path / "run"
    process = _start(["pretrain", "--from", tiny_bert, "--data", bucket.url, "--out", out, "--steps", 40,
                      "--save-every", 5, *FLAGS])
    _wait_for(lambda: (out / "checkpoints" / "step-00000010").is_dir() and bucket.proxy.held, process,
              "a held shard")
    size = -1
    while size != (out / "metrics.jsonl").stat().st_size:  # no step for a while: it waits for the shards
        size = (out / "metrics.jsonl").stat().st_size
        time.sleep(1.0)
    started = time.monotonic()
    process.send_signal(sig)
    stderr = _finish(process, 30)
    assert time.monotonic() - started < 15
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "--resume" in stderr.strip().splitlines()[-1]
    assert "on their way" in stderr
    assert (out / "checkpoints" / "step-00000010").is_dir()


def _bytes_here() -> int:
    """Streamed shards on disk: every stream folder, and the downloads in flight."""
    total = 0
    for pattern, root in (("*/*", paths.home() / "stream"), ("*/data", paths.home() / "partial")):
        for path in root.glob(pattern) if root.is_dir() else []:
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # removed meanwhile
                pass
    return total


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [0, 1])
def test_the_local_shards_never_exceed_the_bound(tmp_path, bucket, tiny_bert, workers):
    sizes = sorted((p.stat().st_size for p in bucket.folder.glob("part-*")), reverse=True)
    fixed = sum((bucket.folder / n).stat().st_size for n in (shards.HEADER, shards.VOCAB))
    bound = fixed + sum(sizes[:2 * 2 * order.WINDOW + 2])  # two windows of the largest shards, and one more
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _bytes_here())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = tmp_path / "run"
    try:
        pretrain.run(pretrain.resolve_settings({}, {**TINY, "from_": str(tiny_bert), "data": bucket.url,
                                                    "out": str(out), "steps": 120, "workers": workers,
                                                    "stream_cache": str(bound)}, resume=False))
    finally:
        stop.set()
        sampler.join()
    fetched = sum((bucket.folder / name).stat().st_size for name in bucket.read())
    assert fetched > 1.5 * bound  # shards came and went
    assert 0.5 * bound < peak[0] <= bound
    assert not list((paths.home() / "stream").iterdir())  # a finished run leaves none behind


def test_a_bound_below_one_batch_is_refused_before_training(tmp_path, bucket, tiny_bert, bertvault):
    out = tmp_path / "run"
    result = bertvault("pretrain", "--from", tiny_bert, "--data", bucket.url, "--out", out, "--steps", 5,
                       "--stream-cache", "16KiB", *FLAGS, check=False)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "--stream-cache 16KiB" in line and "Traceback" not in result.stderr
    assert not (out / "metrics.jsonl").exists() or not _stepped(out)
    suggested = re.search(r"give --stream-cache (\S+) or more", line).group(1)
    shutil.rmtree(out)
    bertvault("pretrain", "--from", tiny_bert, "--data", bucket.url, "--out", out, "--steps", 5,
              "--stream-cache", suggested, *FLAGS)  # what it asks for is enough


@pytest.mark.parametrize("damage", ["outside", "negative", "missing", "list"])
def test_a_header_that_does_not_fit_the_bucket_is_refused(tmp_path, gcs_server, prepared, monkeypatch,
                                                          tiny_bert, damage):
    header = json.loads((prepared / shards.HEADER).read_text())
    entry = header["shards"][3]
    entry.update({"outside": {"ids": "../../escape.npy"}, "negative": {"examples": -5},
                  "missing": {"index": "part-99999.index.npy"}, "list": {}}[damage])
    header = [header] if damage == "list" else header
    name = f"lies-{uuid.uuid4().hex[:8]}"
    for path in sorted(prepared.iterdir()):
        data = json.dumps(header).encode() if path.name == shards.HEADER else path.read_bytes()
        gcs_server.upload(name, f"data/{path.name}", data)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    settings = pretrain.resolve_settings({}, {**TINY, "from_": str(tiny_bert), "data": f"gs://{name}/data",
                                              "out": str(tmp_path / "run")}, resume=False)
    expected = {"negative": "not a header `bertvault prepare` writes", "list": "a JSON list, not a"}.get(
        damage, "not in the bucket")
    with pytest.raises(DataError, match=expected):
        pretrain_data.open_stream(settings, tiny_bert / "vocab.txt", True, tmp_path / "run", _Rank(0, 1))
    assert not (tmp_path.parent / "escape.npy").exists()


class _Rank:
    def __init__(self, rank: int, world: int):
        self.rank, self.world_size, self.is_main = rank, world, rank == 0


def test_each_rank_fetches_only_its_own_shards(tmp_path, bucket, tiny_bert):
    settings = pretrain.resolve_settings({}, {**TINY, "from_": str(tiny_bert), "data": bucket.url,
                                              "out": str(tmp_path / "run"), "workers": 0}, resume=False)
    fetched = []
    for rank in range(2):
        stream = pretrain_data.open_stream(settings, tiny_bert / "vocab.txt", True, tmp_path / "run",
                                           _Rank(rank, 2))
        batches = iter(stream)
        for _ in range(25):
            next(batches)
        fetched.append(set(stream.feed.prefetch.fetched))
        batches.close()
        own = set().union(*bucket.window_files(epoch=0, rank=rank, world=2))
        assert fetched[rank] <= own, "a rank fetched shards of the other's run"
        assert len(fetched[rank]) > 2 * 2 * order.WINDOW
    assert len(fetched[0] & fetched[1]) <= 2  # at most the one shard where the two runs meet


def test_gc_removes_the_shards_of_a_dead_run_only(tmp_path):
    from bertvault.cache import gc, streams

    script = ("from bertvault.cache import streams; f = streams.claim('data-train-0of1'); "
              "(f / 'x').write_bytes(b'1')")
    subprocess.run([sys.executable, "-c", script], check=True, env=os.environ, timeout=60)
    live = streams.claim("data-train-1of2")
    (live / "y").write_bytes(b"2")
    report = gc.gc()
    assert [Path(p).name.split("@")[0] for p in report.leftovers] == ["data-train-0of1"]
    assert [p.name for p in (paths.home() / "stream").iterdir()] == [live.name]
    adopted = streams.claim("data-train-1of2")  # ours is alive: another run makes its own
    assert adopted != live
