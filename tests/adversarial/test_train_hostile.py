"""`bertvault pretrain` and `finetune` against hostile and broken input: pickles carrying code, damaged
data under data-loader workers, runaway learning rates, pruned resume points, kills and signals.
Each case runs the real command in a session of its own, with a hard timeout; no process of that
session may be left when it ends."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from hostile_training_kit import (
    SAMPLE_TEXT,
    TINY_RUN,
    finish,
    run,
    start,
    wait_for,
    write_big_corpus,
    write_prepared,
    write_tiny_model,
)

from bertvault.data import shards, tfrecord
from bertvault.errors import DataError, TrainingError, UnsafeInput
from bertvault.train import checkpoints


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model) -> Path:
    return write_prepared(tmp_path_factory.mktemp("data") / "native", tiny_model)


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> Path:
    return write_big_corpus(tmp_path_factory.mktemp("corpus") / "big.txt")


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def pretrain_here(**values) -> None:
    """A first run in this process (quicker than a CLI start), to set up a folder to resume."""
    from bertvault.train import pretrain

    tiny = {"batch_size": 4, "seq_len": 64, "max_predictions": 10, "log_every": 1, "workers": 0}
    pretrain.run(pretrain.resolve_settings({}, {**tiny, **values}, resume=False))


def strict_json_lines(path: Path) -> list[dict]:
    def refuse(constant):
        raise AssertionError(f"{path} holds a bare {constant}, which is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.fixture
def code_carrying_model(tmp_path, tiny_model) -> Path:
    folder = tmp_path / "evil-model"
    folder.mkdir()
    for name in ("config.json", "vocab.txt"):
        (folder / name).write_bytes((tiny_model / name).read_bytes())
    weights = {"bert.embeddings.word_embeddings.weight": torch.zeros(4), "extra": RunsCode(tmp_path / "ran")}
    torch.save(weights, folder / "pytorch_model.bin")
    return folder


@pytest.mark.timeout(180)
def test_a_code_carrying_pickle_is_unsafe_input_on_every_training_path(tmp_path, code_carrying_model,
                                                                        prepared):
    marker = tmp_path / "ran"
    pretrained = run("pretrain", "--from", code_carrying_model, "--data", prepared, "--out", tmp_path / "p",
                     "--steps", "2", *TINY_RUN)
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nthe man\ta\nthe woman\tb\n")
    finetuned = run("finetune", "--from", code_carrying_model, "--train", tmp_path / "t.tsv", "--eval",
                    tmp_path / "t.tsv", "--out", tmp_path / "f")
    for result in (pretrained, finetuned):
        assert result.returncode == UnsafeInput.exit_code, result.stderr[-3000:]
        assert "references posix.system" in result.error_line and "weights_only" not in result.stderr
    assert not marker.exists()


@pytest.mark.timeout(180)
def test_resume_refuses_a_code_carrying_training_state_and_damaged_state(tmp_path, tiny_model, prepared):
    out = tmp_path / "run"
    pretrain_here(from_=str(tiny_model), data=str(prepared), out=str(out), steps=2)
    state = out / "checkpoints" / "step-00000002" / checkpoints.STATE
    good = state.read_bytes()
    torch.save({"optimizer": RunsCode(tmp_path / "ran")}, state)
    unsafe = run("pretrain", "--out", out, "--resume", "--steps", "4")
    assert unsafe.returncode == UnsafeInput.exit_code
    assert "training_state.pt references posix.system" in unsafe.error_line
    assert not (tmp_path / "ran").exists()

    state.write_bytes(good)
    trainer = state.with_name(checkpoints.TRAINER)
    trainer.write_text(json.dumps({"step": "two", "data": [], "python_rng": None}))
    damaged = run("pretrain", "--out", out, "--resume", "--steps", "4")
    assert damaged.returncode == TrainingError.exit_code
    assert "cannot be read" in damaged.error_line and "step 'two'" in damaged.error_line


@pytest.mark.timeout(240)
def test_a_resumed_run_whose_keep_prunes_its_resume_point_saves_and_exits(tmp_path, tiny_model, prepared):
    out = tmp_path / "run"
    pretrain_here(from_=str(tiny_model), data=str(prepared), out=str(out), steps=4, save_every=2)
    assert len(checkpoints.existing(out / "checkpoints")) == 2
    resumed = run("pretrain", "--out", out, "--resume", "--steps", "8", "--keep", "1", timeout=150)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.left_behind == []
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000008"]
    assert (out / "model" / "vocab.txt").read_bytes() == (tiny_model / "vocab.txt").read_bytes()
    saved = checkpoints.load(out / "checkpoints" / "step-00000008")
    assert saved.step == 8


def _tfrecords_with_one_bad_crc(tmp_path: Path, tiny_model: Path) -> Path:
    from bertvault.data import prepare

    folder = tmp_path / "tfr"
    options = prepare.Options(seq_len=64, max_predictions=10, seed=1, dupe_factor=3, format="tfrecord")
    prepare.run(prepare.plan([str(SAMPLE_TEXT)], str(tiny_model / "vocab.txt"), str(folder), options,
                             lowercase=True))
    path = folder / "part-00000.tfrecord"
    records = tfrecord.index(path)
    assert len(records) >= 40
    data = bytearray(path.read_bytes())
    offset, _ = records[len(records) // 2]
    data[offset + 10] ^= 0xFF  # inside the record's bytes: its length header is fine, its data CRC is not
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bad_crc_read_by_a_loader_worker_is_one_line_and_the_run_exits(tmp_path, tiny_model, workers):
    bad = _tfrecords_with_one_bad_crc(tmp_path, tiny_model)
    result = run("pretrain", "--from", tiny_model, "--data", bad, "--out", tmp_path / "run", "--steps", "100",
                 "--workers", workers, *TINY_RUN, timeout=150)
    assert result.returncode == DataError.exit_code, result.stderr[-3000:]
    assert "bad.tfrecord: corrupt record at byte" in result.error_line
    assert "DataLoader worker" not in result.stderr
    assert result.left_behind == [], "data-loader workers outlived the run"


@pytest.mark.timeout(300)
def test_a_bad_crc_under_two_torchrun_processes_is_one_line_and_all_exit(tmp_path, tiny_model):
    """The rank that reads the bad record fails; the other one, cut off in a collective, stays quiet."""
    bad = _tfrecords_with_one_bad_crc(tmp_path, tiny_model)
    result = run("pretrain", "--from", tiny_model, "--data", bad, "--out", tmp_path / "run", "--steps", "100",
                 "--workers", "1", "--nproc-per-node", "2", *TINY_RUN, timeout=200)
    assert result.returncode == DataError.exit_code, result.stderr[-3000:]
    assert "bad.tfrecord: corrupt record at byte" in result.error_line
    assert "[rank" not in result.stderr
    assert result.left_behind == []


@pytest.mark.timeout(60)
def test_a_loader_worker_that_hangs_is_an_error_within_the_timeout(monkeypatch):
    """A worker stuck on a read (a dead network mount) must not hang the run: the wait is bounded."""
    from bertvault.train import loader, pretrain_data

    class Stuck(torch.utils.data.Dataset):
        seed, world_size, num_examples = 0, 1, 64

        def __len__(self):
            return 64

        def set_epoch(self, epoch, start=0):
            pass

        def __getitem__(self, k):
            if k >= 8:
                time.sleep(3600)
            return {key: torch.zeros(2) for key in pretrain_data.MODEL_KEYS}

    def children() -> set[str]:
        tasks = Path("/proc/self/task").glob("*/children")
        return {pid for task in tasks for pid in task.read_text().split()}

    before = children()
    monkeypatch.setattr(loader, "TIMEOUT", 2.0)
    stream = iter(pretrain_data.Stream(Stuck(), batch_size=4, workers=1))
    began = time.monotonic()
    with pytest.raises(DataError, match="timed out after 2.0 seconds waiting for a batch"):
        for _ in range(16):
            next(stream)
    assert time.monotonic() - began < 30
    assert children() - before == set(), "the stuck worker is still running"


@pytest.mark.timeout(180)
def test_weights_that_turn_infinite_are_never_checkpointed(tmp_path, tiny_model, prepared):
    out = tmp_path / "run"
    result = run("pretrain", "--from", tiny_model, "--data", prepared, "--out", out, "--steps", "10",
                 "--save-every", "1", "--warmup", "0", "--lr", "1e39", *TINY_RUN[:-2], "--log-every", "5")
    assert result.returncode == TrainingError.exit_code, result.stderr[-3000:]
    assert "weights became non-finite by step 1" in result.error_line and "lower --lr" in result.error_line
    assert checkpoints.existing(out / "checkpoints") == []
    assert strict_json_lines(out / "metrics.jsonl") == []


@pytest.mark.timeout(180)
def test_a_non_finite_loss_stops_with_the_last_good_checkpoint_intact(tmp_path, tiny_model, prepared):
    out = tmp_path / "run"
    result = run("pretrain", "--from", tiny_model, "--data", prepared, "--out", out, "--steps", "10",
                 "--save-every", "1", "--warmup", "0", "--lr", "1e9", *TINY_RUN[:-2], "--log-every", "5")
    assert result.returncode == TrainingError.exit_code, result.stderr[-3000:]
    assert "the loss became non-finite at step 2" in result.error_line
    found = checkpoints.existing(out / "checkpoints")
    assert [step for step, _ in found] == [1]
    from safetensors.torch import load_file

    weights = load_file(found[0][1] / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert strict_json_lines(out / "metrics.jsonl") == []


def _finetune_files(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(0)
    words = "the man went to store was very good bad he she".split()
    rows = [(" ".join(rng.choices(words, k=5)), rng.choice("ab"), i % 5) for i in range(48)]
    train, regression = tmp_path / "train.tsv", tmp_path / "scores.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label, _ in rows))
    lines = [f"{s}\t{score}\n" for s, _, score in rows]
    lines[6] = "the man went\tnan\n"
    regression.write_text("sentence\tlabel\n" + "".join(lines))
    return train, regression


@pytest.mark.timeout(180)
def test_finetune_with_a_runaway_learning_rate_stops_with_exit_8_and_saves_nothing(tmp_path, tiny_model):
    train, _ = _finetune_files(tmp_path)
    out = tmp_path / "out"
    result = run("finetune", "--from", tiny_model, "--train", train, "--eval", train, "--out", out,
                 "--lr", "1e9", "--epochs", "2", "--batch-size", "16", "--max-seq-len", "16")
    assert result.returncode == TrainingError.exit_code, result.stderr[-3000:]
    assert "epoch 1" in result.error_line and "lower --lr" in result.error_line
    assert not (out / "model").exists()
    assert strict_json_lines(out / "metrics.jsonl") == []


@pytest.mark.timeout(120)
def test_nan_regression_labels_are_a_data_error_naming_file_and_row(tmp_path, tiny_model):
    _, scores = _finetune_files(tmp_path)
    result = run("finetune", "--from", tiny_model, "--task", "regression", "--train", scores,
                 "--eval", scores, "--out", tmp_path / "out", "--epochs", "1")
    assert result.returncode == DataError.exit_code, result.stderr[-3000:]
    assert f"{scores}: regression labels must be finite numbers; not so in row 7 ('nan')" in result.error_line


def test_metrics_are_strict_json(tmp_path):
    from bertvault.train.metrics import MetricsLog

    log = MetricsLog(tmp_path, enabled=True)
    log.log({"step": 1, "eval_pearson": float("nan"), "loss": float("inf"), "lr": 1e-5})
    log.close()
    assert strict_json_lines(tmp_path / "metrics.jsonl") == [{"step": 1, "eval_pearson": None, "loss": None,
                                                              "lr": 1e-5}]


def test_a_kill_during_save_or_prune_never_loses_or_fakes_a_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (2, 4, 6):
        folder = checkpoints.folder_for(root, step)
        folder.mkdir(parents=True)
        (folder / checkpoints.TRAINER).write_text(json.dumps({"step": step}))
    # Killed while replacing step 6 (renamed aside, new one not yet in place), while writing step 8,
    # and while pruning step 2 (renamed out of the step-* names first). The temporaries carry the
    # pid of their writer (io/atomic.py), here one that is gone.
    dead = subprocess.Popen(["true"])
    dead.wait()
    os.replace(root / "step-00000006", root / f".step-00000006.bvtmp-{dead.pid}-old-0a0b0c0d")
    (root / f".step-00000008.bvtmp-{dead.pid}-1a2b3c4d").mkdir()
    os.replace(root / "step-00000002", root / ".step-00000002.pruned")
    checkpoints.clean_partial(root)
    assert sorted(p.name for p in root.iterdir()) == ["step-00000004", "step-00000006"]
    checkpoints.prune(root, keep=1)
    assert [p.name for p in root.iterdir()] == ["step-00000006"]


@pytest.mark.timeout(240)
def test_kill_9_while_pretrain_prepares_its_data_then_the_same_command_runs(tmp_path, tiny_model, big_corpus):
    out = tmp_path / "run"
    command = ["pretrain", "--from", tiny_model, "--data", big_corpus, "--out", out, "--steps", "2",
               "--workers", "2", *TINY_RUN]
    process = start(*command)
    wait_for(lambda: any((out / "data").glob(f"{shards.STAGING}*/part-*")), process, timeout=120)
    process.kill()
    killed = finish(process, timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert killed.left_behind == []
    again = run(*command, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "data" / shards.HEADER).is_file() and (out / "model" / "model.safetensors").is_file()
    assert not any(p.name.startswith(".") for p in (out / "data").iterdir())


@pytest.mark.timeout(300)
def test_signals_during_a_save_leave_complete_checkpoints_and_the_run_resumes(tmp_path, tiny_model, prepared):
    """Ctrl-C, then Ctrl-C again or SIGTERM while the checkpoint is written: exit 130, every step-*
    folder complete, and --resume finishes the run."""
    out = tmp_path / "run"
    common = ["--from", tiny_model, "--data", prepared, "--out", out, "--steps", "100000",
              "--save-every", "0",              *TINY_RUN]
    for attempt, second in enumerate([signal.SIGINT, signal.SIGTERM]):
        args = ["pretrain", *common] if attempt == 0 else ["pretrain", "--out", out, "--resume"]
        process = start(*args)
        metrics = out / "metrics.jsonl"
        seen = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) > seen + 2, process,
                 timeout=120)
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.05)
        os.killpg(process.pid, second)
        stopped = finish(process, timeout=60)
        assert stopped.returncode == 130, stopped.stderr[-3000:]
        assert stopped.left_behind == []
        for step, folder in checkpoints.existing(out / "checkpoints"):
            assert checkpoints.load(folder).step == step
            assert {"model.safetensors", "config.json", "vocab.txt", "settings.toml"} <= {p.name for p in
                                                                                        folder.iterdir()}
        assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    newest = checkpoints.existing(out / "checkpoints")[-1][0]
    done = run("pretrain", "--out", out, "--resume", "--steps", str(newest + 2), timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"done: {newest + 2} steps" in done.stdout
