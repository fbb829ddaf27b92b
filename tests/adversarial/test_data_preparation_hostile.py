"""`bertvault prepare` against hostile pickles, kill -9 and Ctrl-C: nothing expands past what a file
holds, no worker outlives its run, and a killed run's leftovers never block the next one."""

from __future__ import annotations

import os
import pickle
import random
import resource
import signal
import sys
import time
import types
from pathlib import Path

import pytest
from hostile_training_kit import finish, run, start, wait_for, write_big_corpus, write_tiny_model

from bertvault.data import azureml, shards
from bertvault.errors import DataError, UnsafeInput
from bertvault.io import owners


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> Path:
    return write_big_corpus(tmp_path_factory.mktemp("corpus") / "big.txt")


def _shard_classes(monkeypatch):
    module = types.ModuleType("sources")
    monkeypatch.setitem(sys.modules, "sources", module)
    token_instance = type("TokenInstance", (), {"__module__": "sources"})
    creator = type("GenericPretrainingDataCreator", (), {"__module__": "sources"})
    module.TokenInstance, module.GenericPretrainingDataCreator = token_instance, creator
    return creator, token_instance


def _instance(cls, a, b, is_next=0):
    inst = cls()
    inst.tokens_a, inst.tokens_b, inst.is_next = a, b, is_next
    return inst


def _limit_memory():  # runs in the child: 3 GB of address space, far below what the crafted shard expands to
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.mark.timeout(120)
def test_a_small_shard_listing_one_instance_60000_times_is_refused_in_bounded_memory(tmp_path, monkeypatch,
                                                                                   tiny_model):
    creator, token_instance = _shard_classes(monkeypatch)
    shared = _instance(token_instance, ["the"] * 2000, ["man"] * 2000)
    shard = creator()
    shard.instances, shard.documents = [shared] * 60_000, None
    bomb = tmp_path / "wikipedia_segmented_part_0.bin"
    bomb.write_bytes(pickle.dumps(shard, protocol=4))
    assert bomb.stat().st_size < 130_000  # 240 million tokens, 128 KB on disk

    import subprocess

    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "bertvault", "prepare", str(bomb), "--vocab-from",
                             str(tiny_model), "--out", str(out), "--workers", "1", "--seq-len", "128"],
                            capture_output=True, text=True, timeout=90, preexec_fn=_limit_memory,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == UnsafeInput.exit_code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "240,000,000 tokens" in result.stderr.splitlines()[-1]
    assert not out.exists()


def test_sets_that_copy_a_shared_list_are_charged_against_the_file_size(tmp_path, monkeypatch):
    creator, _ = _shard_classes(monkeypatch)
    big = list(range(30_000))

    class CopiesTheList:
        def __reduce__(self):
            return frozenset, (big,)

    shard = creator()
    shard.instances, shard.vocab_words = [], [CopiesTheList() for _ in range(2_000)]
    path = tmp_path / "sets.bin"
    path.write_bytes(pickle.dumps(shard, protocol=2))  # 60 million elements from 120 KB
    with pytest.raises(UnsafeInput, match="sets copy more elements than the file holds"):
        azureml.load(path)

    shard.vocab_words = [frozenset(big[:100]), set(big[:50])]  # sets of their own are what a shard may hold
    path.write_bytes(pickle.dumps(shard, protocol=2))
    assert azureml.load(path) == []


def test_a_real_sized_shard_is_within_the_bound(tmp_path, monkeypatch):
    """The bound refuses expansion only: distinct token lists whose strings share memo entries pass."""
    creator, token_instance = _shard_classes(monkeypatch)
    words = [f"w{i}" for i in range(50)]
    rng = random.Random(0)
    shard = creator()
    shard.instances = [_instance(token_instance, rng.choices(words, k=rng.randint(1, 60)),
                                 rng.choices(words, k=rng.randint(1, 60)), rng.randint(0, 1))
                       for _ in range(2_000)]
    path = tmp_path / "fine.bin"
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps(shard, protocol=protocol))
        assert len(azureml.load(path)) == 2_000


def _stale_tag() -> str:
    dead = 2**22 + 12345  # above any pid_max of a test machine
    assert not owners.pid_alive(dead)
    return f"{owners.HOST}@{dead}@deadbeef"


def test_leftovers_of_a_dead_run_are_removed_and_a_live_run_is_left_alone(tmp_path):
    out = tmp_path / "out"
    stale = out / f"{shards.STAGING}{_stale_tag()}"
    stale.mkdir(parents=True)
    (stale / "part-00000.ids.npy").write_bytes(b"half")
    shards.check_out(out)  # no error: the folder holds only a dead run's staging folder
    assert list(out.iterdir()) == []

    live = out / f"{shards.STAGING}{owners.new_tag()}"  # this test's own process: alive
    live.mkdir()
    with pytest.raises(DataError, match=f"being written by another prepare \\(process {os.getpid()}"):
        shards.check_out(out)
    assert live.is_dir()


def test_a_commit_cut_short_is_removed_but_a_users_files_are_not(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("part-00000.ids.npy", "part-00000.index.npy", "vocab.txt", ".bertvault-data.json.x1.tmp"):
        (out / name).write_bytes(b"x")
    (out / f"{shards.STAGING}{_stale_tag()}").mkdir()
    shards.check_out(out)  # shards moved into place, no header: an unfinished output of ours
    assert list(out.iterdir()) == []

    (out / "notes.md").write_text("mine")
    (out / "part-00000.ids.npy").write_bytes(b"x")
    (out / f"{shards.STAGING}{_stale_tag()}").mkdir()
    with pytest.raises(DataError, match="is not empty"):
        shards.check_out(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.md", "part-00000.ids.npy"]


def _staged_part(out: Path):
    return lambda: any(out.glob(f"{shards.STAGING}*/part-*"))


@pytest.mark.timeout(240)
def test_kill_9_mid_prepare_leaves_no_worker_and_the_same_command_then_succeeds(tmp_path, big_corpus,
                                                                                   tiny_model):
    out = tmp_path / "out"
    command = ["prepare", big_corpus, "--vocab-from", tiny_model, "--out", out, "--workers", "2"]
    process = start(*command)
    wait_for(_staged_part(out), process)
    process.kill()  # the parent only, as the OOM killer does
    killed = finish(process, timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert killed.left_behind == [], "pool workers outlived the killed prepare"
    assert any(p.name.startswith(shards.STAGING) for p in out.iterdir())

    again = run(*command, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / shards.HEADER).is_file()
    assert not any(p.name.startswith(".") for p in out.iterdir())
    header = shards.read_header(out)
    assert header["counts"]["documents"] == 24000


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_at_any_moment_of_prepare_leaves_nothing_and_exits_130(tmp_path, big_corpus, tiny_model,
                                                                        workers):
    out = tmp_path / "out"
    command = ["prepare", big_corpus, "--vocab-from", tiny_model, "--out", out, "--workers", str(workers)]
    moments = [(signal.SIGINT, 0.0), (signal.SIGTERM, 0.15), (signal.SIGINT, 0.3)]
    for attempt, (sig, delay) in enumerate(moments):
        process = start(*command)
        wait_for(out.exists, process)  # the work has begun
        time.sleep(delay)
        os.killpg(process.pid, sig)  # as a terminal's Ctrl-C: the whole process group
        stopped = finish(process, timeout=60)
        assert "wrote" not in stopped.stdout, "the run finished before the signal: use a larger corpus"
        assert stopped.returncode == 130, (attempt, stopped.returncode, stopped.stderr[-3000:])
        assert "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
        assert stopped.left_behind == []
        assert not out.exists(), list(out.iterdir())  # the run made it, the run removed it
    done = run(*command, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
