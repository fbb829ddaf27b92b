"""benchmarks/docstring_tasks.py makes files that the finetuning tasks read as they read the published
ones, and benchmarks/bench_finetune_cpu.py --quick runs both sides of the comparison."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import docstring_tasks  # noqa: E402 - benchmarks/ is not a package


@pytest.fixture(scope="module")
def pool() -> list[str]:
    return docstring_tasks.sentences()


def test_squad_answers_are_spans_of_their_context_and_dev_shares_no_paragraph(tmp_path):
    from bertvault.train.tasks.squad_data import read_squad

    train, dev = docstring_tasks.write_squad(tmp_path, 60, 20)
    sets = {path: read_squad(path, version_2=False) for path in (train, dev)}
    for squad in sets.values():
        for question in squad.questions:
            [answer] = question.answers
            context = squad.contexts[question.paragraph]
            assert context[answer.start : answer.start + len(answer.text)] == answer.text
            # the question is the answer's sentence with the answer turned into "what" (one of its
            # "what" words: the sentence may hold others)
            asked = question.text.rstrip("?")
            spots = [m.start() for m in re.finditer(r"\bwhat\b", asked)]
            assert any(asked[:at] + answer.text + asked[at + 4 :] in context for at in spots), asked
    assert len(sets[train].questions) == 60 and len(sets[dev].questions) == 20
    assert not set(sets[train].contexts) & set(sets[dev].contexts)
    assert read_squad(train, False).contexts == sets[train].contexts  # deterministic
    assert train.read_bytes() == docstring_tasks.write_squad(tmp_path / "again", 60, 20)[0].read_bytes()


def test_paragraph_lengths_are_squad_like(pool):
    # 400 paragraphs: the lengths are drawn, and the pool (so the draws) depends on what other tests
    # imported into the modules it reads; a few past 250 words are then all but certain
    data = docstring_tasks.squad_set(pool, 2000, seed=1)
    words = sorted(len(p["context"].split()) for p in data["data"][0]["paragraphs"])
    assert 80 <= words[len(words) // 2] <= 150 and words[-1] >= 250


@pytest.mark.parametrize("name", ["cola", "sst2", "mrpc", "stsb", "rte"])
def test_glue_folders_are_found_and_read_as_glue_tasks(tmp_path, name):
    from bertvault.train import tables
    from bertvault.train.tasks import glue

    root = docstring_tasks.write_glue(tmp_path, train=30, dev=10)
    spec = glue.TASKS[name]
    files = glue.locate(name, str(root), tmp_path / "work")
    cols = glue.columns(spec, files.source)
    for path, rows in ((files.train, 30), (files.dev[0], 10)):
        table = tables.read_table(path)
        labels = [row[cols.label] for row in table.rows]
        assert all(row[cols.text] for row in table.rows)
        assert len(labels) == rows
        if spec.kind == "classification":
            assert set(labels) <= set(spec.labels)
        else:
            assert all(0 <= float(v) <= 5 for v in labels)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_quick_benchmark_runs_both_sides(tmp_path):
    """About 1.5 minutes: MiniLM finetuned on 24 questions by bertvault and by the Trainer."""
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_finetune_cpu.py"), "--quick"], env=env,
                          capture_output=True, text=True, timeout=540, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    medians = summary["medians"]
    for side in ("bertvault", "trainer (padded to max_seq_len)"):
        figures = medians[side]
        assert figures["features_per_epoch"] >= 24  # every question makes at least one window
        assert 0 < figures["total_wall"] < figures["train_wall"] and 0 < figures["train_cpu"]
    speedup = medians["speedup_vs_trainer (padded to max_seq_len)"]
    assert speedup["train_cpu"] == pytest.approx(
        medians["bertvault"]["train_cpu"] / medians["trainer (padded to max_seq_len)"]["train_cpu"])
    assert summary["recipe"]["max_seq_len"] == 128 and len(summary["load_before"]) == 3
