"""The demo's finetuning step, as `make run` does it: dev accuracy rises and stays up, no collapse."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from demo_runs import run_demo_finetune

from bertvault.demo.__main__ import FINETUNE_ARGS
from bertvault.demo.task import write_task


@pytest.mark.timeout(240)
def test_the_demo_task_is_learned_and_stays_learned(tmp_path):
    env = {**os.environ, "BERTVAULT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "bertvault", "pull", "bert-demo-tiny"], env=env, check=True,
                   capture_output=True, timeout=120)
    train, dev = write_task(tmp_path / "task")
    result = run_demo_finetune(FINETUNE_ARGS, from_="bert-demo-tiny", train=str(train), eval=str(dev),
                               out=str(tmp_path / "out"))
    accuracy = [r["eval_accuracy"] for r in result.history]
    labels = [line.rsplit("\t", 1)[1] for line in dev.read_text().splitlines()[1:]]
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert accuracy[-1] >= 0.85 and result.best_scores["accuracy"] >= 0.9, accuracy
    # Once it has learned, it stays learned: no epoch falls back to the majority class.
    learned = next(i for i, a in enumerate(accuracy) if a >= 0.8)
    assert min(accuracy[learned:]) > majority + 0.2, accuracy
