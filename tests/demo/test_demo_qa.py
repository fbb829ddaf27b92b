"""The demo's question-answering step, as `make run` does it: the tiny model learns where the answer
stands, and its export, read by transformers, answers the demo's question."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from demo_runs import run_demo_finetune

from bertvault.demo import qa_task
from bertvault.demo.__main__ import QA_ARGS, QA_QUESTIONS


def test_each_answer_is_the_name_after_its_role_and_another_name_is_there_too(tmp_path):
    train, dev = qa_task.write_task(tmp_path / "a", train=300)
    again, _ = qa_task.write_task(tmp_path / "b", train=300)
    assert train.read_text() == again.read_text()
    paragraphs = json.loads(train.read_text())["data"][0]["paragraphs"]
    assert len(paragraphs) == 300
    for paragraph in paragraphs:
        context, [qa] = paragraph["context"], paragraph["qas"]
        [answer] = qa["answers"]
        start = answer["answer_start"]
        role = qa["question"].removeprefix("who was the ").removesuffix(" ?")
        assert role in qa_task.ROLES
        assert context[start : start + len(answer["text"])] == answer["text"]
        assert context[:start].endswith(f"the {role} was ")
        assert sum(context.split().count(name) for name in qa_task.NAMES) == 2  # the answer and another
    names = [p["qas"][0]["answers"][0]["text"] for p in paragraphs]
    assert set(names) == set(qa_task.NAMES)


@pytest.mark.timeout(300)
def test_the_demo_question_answering_is_learned_and_the_export_answers(tmp_path):
    env = {**os.environ, "BERTVAULT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "bertvault", "pull", "bert-demo-tiny"], env=env, check=True,
                   capture_output=True, timeout=120)
    train, dev = qa_task.write_task(tmp_path / "task", train=QA_QUESTIONS)
    out = tmp_path / "out"
    result = run_demo_finetune(QA_ARGS, from_="bert-demo-tiny", task="squad", train=str(train), eval=str(dev),
                               out=str(out))
    exact = [r["eval_exact"] for r in result.history]
    # Pointing at either name would give ~50; the model learns which one, and keeps it.
    assert exact[0] < 90 and result.best_scores["exact"] >= 90 and exact[-1] >= 85, exact

    # The export, loaded by transformers, answers as the run's predictions did.
    predictions = json.loads((out / "predictions.json").read_text())
    paragraphs = json.loads(dev.read_text())["data"][0]["paragraphs"]
    right = 0
    for paragraph in paragraphs[:20]:
        qa = paragraph["qas"][0]
        answer, probability = qa_task.answer(out / "model", qa["question"], paragraph["context"])
        assert answer == predictions[qa["id"]] and 0 < probability <= 1
        right += answer == qa["answers"][0]["text"]
    assert right >= 18
    context, question, gold = qa_task.first_question(dev)
    assert qa_task.answer(out / "model", question, context)[0] == gold  # the one the demo prints
