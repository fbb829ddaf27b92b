"""GLUE: the task table against the registry and the official scores, its files found in every layout
(glue_data/, the Hub's Parquet, MRPC's source files pulled from the registry), and the resumable suite."""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest

from bertvault.errors import ManifestError, UsageError
from bertvault.registry import load_registry
from bertvault.train import finetune
from bertvault.train.pretrain import Interrupted
from bertvault.train.tasks import glue, glue_suite


def test_official_scores_match_sklearn_and_scipy():
    metrics = pytest.importorskip("sklearn.metrics")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    gold, predicted = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    mrpc = glue.metric_values(glue.TASKS["mrpc"], predicted, gold)
    assert mrpc["f1"] == pytest.approx(metrics.f1_score(gold, predicted))
    assert mrpc["accuracy"] == pytest.approx(metrics.accuracy_score(gold, predicted))
    cola = glue.metric_values(glue.TASKS["cola"], predicted, gold)
    assert cola["mcc"] == pytest.approx(metrics.matthews_corrcoef(gold, predicted))
    x, y = rng.normal(size=100), rng.normal(size=100)
    y[:10] = y[10]  # ties, which Spearman ranks by their average
    stsb = glue.metric_values(glue.TASKS["stsb"], x, y)
    assert stsb["pearson"] == pytest.approx(stats.pearsonr(x, y)[0])
    assert stsb["spearman"] == pytest.approx(stats.spearmanr(x, y)[0])
    gold3, predicted3 = rng.integers(0, 3, 90), rng.integers(0, 3, 90)
    assert glue.metric_values(glue.TASKS["mnli"], predicted3, gold3, "_mm") == \
        {"accuracy_mm": pytest.approx(metrics.accuracy_score(gold3, predicted3))}


def test_every_task_is_registered_in_both_forms():
    registry = load_registry()
    hub = {f.path: f for f in registry.get("nyu-mll/glue").files}
    for name, spec in glue.TASKS.items():
        for split in ("train", *spec.dev):
            path = f"{name}/{glue.HUB_SPLITS[split]}-00000-of-00001.parquet"
            assert path in hub and not hub[path].optional, path
        published = registry.get(f"glue/{name}")
        assert published.kind == "dataset" and published.format == "glue-tsv"
        assert all(u.startswith("https://dl.fbaipublicfiles.com/") for f in published.files for u in f.urls)
    assert registry.get("squad-v1.1").files[0].urls == [
        "https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v1.1.json"]
    assert [f.path for f in registry.get("rajpurkar/squad_v2").files] == [
        "squad_v2/train-00000-of-00001.parquet", "squad_v2/validation-00000-of-00001.parquet"]
    assert all(u.startswith("hf://datasets/") for f in registry.get("glue").files for u in f.urls)


def test_the_papers_table_and_average():
    """BERT-Base's test scores in the paper's Table 1, whose average (79.6) is over these nine columns;
    a WNLI score (the paper has none) is shown but left out of the average."""
    paper = {"mnli": {"accuracy": 0.846, "accuracy_mm": 0.834}, "qqp": {"f1": 0.712},
             "qnli": {"accuracy": 0.905}, "sst2": {"accuracy": 0.935}, "cola": {"mcc": 0.521},
             "stsb": {"spearman": 0.858}, "mrpc": {"f1": 0.889}, "rte": {"accuracy": 0.664},
             "wnli": {"accuracy": 0.651}}
    summary = {"table": glue_suite.table({k: {"scores": v} for k, v in paper.items()})}
    assert round(summary["table"]["average"], 1) == 79.6  # WNLI left out, as in the paper
    header, row = glue_suite.format_table(summary).splitlines()
    assert header.split() == ["MNLI-m", "MNLI-mm", "QQP", "QNLI", "SST-2", "CoLA", "STS-B", "MRPC", "RTE",
                              "WNLI", "Average"]
    assert row.split() == ["84.6", "83.4", "71.2", "90.5", "93.5", "52.1", "85.8", "88.9", "66.4", "65.1",
                           "79.6"]
    partial = {"table": glue_suite.table({"sst2": {"scores": {"accuracy": 0.9}}})}
    assert glue_suite.format_table(partial).splitlines()[-1] == "(average over SST-2 only)"


def test_bad_suite_arguments_are_reported_together():
    with pytest.raises(UsageError) as error:
        glue_suite.check(["sst2", "squad", "glue/MRPC"], (2e-5, -1.0), "some")
    text = str(error.value)
    assert "no GLUE task 'squad'" in text and "must be positive, got -1.0" in text and "--keep" in text
    assert glue_suite.check(["rte", "glue/MRPC", "rte"], (2e-5,), "best") == ["mrpc", "rte"]  # GLUE's order


# --- data in every form -------------------------------------------------------------------------------

def sentences(words: list[str], rng: random.Random, label: int, k: int = 5) -> str:
    group = words[:20] if label == 0 else words[20:40]
    return " ".join(rng.choices(group, k=k))


def write_tsv(path: Path, header: list[str] | None, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sst2(folder: Path, words: list[str], train: int = 120, dev: int = 40) -> Path:
    rng = random.Random(1)
    for split, n in (("train", train), ("dev", dev)):
        labels = [rng.randint(0, 1) for _ in range(n)]
        rows = [[sentences(words, rng, y), str(y)] for y in labels]
        write_tsv(folder / f"{split}.tsv", ["sentence", "label"], rows)
    return folder


def write_mrpc_sources(folder: Path, words: list[str], pairs: int = 400) -> Path:
    """Microsoft's layout (a BOM, Quality first) and GLUE's dev ids: every fourth pair is dev; the
    second sentence's words tell the label."""
    rng = random.Random(2)
    rows, dev_ids = [], []
    for i in range(pairs):
        y = rng.randint(0, 1)
        a, b = sentences(words, rng, rng.randint(0, 1)), sentences(words, rng, 1 - y)
        rows.append([str(y), str(1000 + i), str(5000 + i), a, b])
        if i % 4 == 0:
            dev_ids.append(f"{1000 + i}\t{5000 + i}")
    folder.mkdir(parents=True, exist_ok=True)
    header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    body = "".join("\t".join(r) + "\n" for r in rows)
    (folder / "msr_paraphrase_train.txt").write_text(header + "\n" + body, encoding="utf-8")
    (folder / "msr_paraphrase_test.txt").write_text(header + "\n", encoding="utf-8")
    (folder / "mrpc_dev_ids.tsv").write_text("\n".join(dev_ids) + "\n", encoding="utf-8")
    return folder


def write_hub_mnli(root: Path, words: list[str]) -> Path:
    """nyu-mll/glue's layout: ClassLabel ids 0 entailment, 1 neutral, 2 contradiction."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = random.Random(3)
    groups = [words[:15], words[15:30], words[30:45]]
    for split, n in (("train", 480), ("validation_matched", 40), ("validation_mismatched", 40)):
        labels = [rng.randint(0, 2) for _ in range(n)]
        table = pa.table({"premise": [" ".join(rng.choices(words[45:80], k=4)) for _ in labels],
                          "hypothesis": [" ".join(rng.choices(groups[y], k=4)) for y in labels],
                          "label": pa.array(labels, pa.int64()), "idx": list(range(n))})
        (root / "mnli").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "mnli" / f"{split}-00000-of-00001.parquet")
    return root


def test_files_are_found_in_each_layout(tmp_path, task_words):
    glue_data = tmp_path / "glue_data"
    write_sst2(glue_data / "SST-2", task_words)
    found = glue.locate("sst2", str(glue_data), tmp_path / "work")
    assert (found.source, found.train) == ("tsv", glue_data / "SST-2" / "train.tsv")
    one_task = glue.locate("sst2", str(glue_data / "SST-2"), tmp_path / "work")
    assert one_task.dev == [glue_data / "SST-2" / "dev.tsv"]
    extracted = tmp_path / "extracted"
    write_sst2(extracted / "SST-2-v1", task_words)  # a zip whose folder has another name
    renamed = glue.locate("sst2", str(extracted), tmp_path / "work")
    assert renamed.train == extracted / "SST-2-v1" / "train.tsv"
    hub = write_hub_mnli(tmp_path / "hub", task_words)
    found = glue.locate("mnli", str(hub), tmp_path / "work")
    assert found.source == "hub" and [p.name for p in found.dev] == [
        "validation_matched-00000-of-00001.parquet", "validation_mismatched-00000-of-00001.parquet"]
    with pytest.raises(ManifestError, match=r"bertvault pull glue` or `bertvault pull glue-rte` first"):
        glue.locate("rte", None, tmp_path / "work")


def test_mrpc_is_cut_from_microsofts_files_by_glues_dev_ids(tmp_path, task_words):
    sources = write_mrpc_sources(tmp_path / "mrpc", task_words)
    found = glue.locate("mrpc", str(sources), tmp_path / "work")
    train, dev = found.train.read_text().splitlines(), found.dev[0].read_text().splitlines()
    assert train[0] == dev[0] == "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"  # the BOM is gone
    assert (len(train) - 1, len(dev) - 1) == (300, 100)
    assert all(int(line.split("\t")[1]) % 4 == 0 for line in dev[1:])


# --- finetuning GLUE tasks ----------------------------------------------------------------------------

def glue_values(tiny, out, **more):
    return {"from_": str(tiny), "out": str(out), "epochs": 2, "batch_size": 16, "max_seq_len": 24, "lr": 3e-3,
            "dropout": 0.0, **more}


@pytest.mark.timeout(120)
def test_mnli_from_the_hubs_parquet_scores_both_dev_sets(tmp_path, tiny_bert, task_words):
    hub = write_hub_mnli(tmp_path / "hub", task_words)
    out = tmp_path / "mnli"
    settings = finetune.resolve_settings({}, glue_values(tiny_bert, out, task="glue/mnli", train=str(hub),
                                                          epochs=3))
    result = finetune.run(settings)
    assert set(result.best_scores) == {"accuracy", "accuracy_mm"}
    assert result.best_scores["accuracy"] >= 0.8 and result.best_scores["accuracy_mm"] >= 0.8, result.history
    summary = json.loads((out / "eval_results.json").read_text())
    assert summary["labels"] == ["entailment", "neutral", "contradiction"] and summary["metric"] == "accuracy"
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(out / "model").id2label == {0: "entailment", 1: "neutral",
                                                                    2: "contradiction"}


@pytest.mark.timeout(180)
def test_a_registered_mrpc_is_pulled_and_finetuned_without_file_options(tmp_path, tiny_bert, task_words,
                                                                         bertvault, monkeypatch):
    sources = write_mrpc_sources(tmp_path / "published", task_words)
    manifest = tmp_path / "manifests" / "glue.toml"
    manifest.parent.mkdir()
    files = "".join(f'\n[[artifact.files]]\npath = "{n}"\nurls = ["{(sources / n).as_uri()}"]\n'
                    for n in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt", "mrpc_dev_ids.tsv"))
    manifest.write_text('[[artifact]]\nname = "glue-mrpc"\nkind = "dataset"\nformat = "glue-tsv"\n' + files)
    monkeypatch.setenv("BERTVAULT_MANIFESTS", str(manifest))
    bertvault("pull", "glue-mrpc")
    out = tmp_path / "mrpc"
    settings = finetune.resolve_settings({}, glue_values(tiny_bert, out, task="glue/mrpc", epochs=3))
    result = finetune.run(settings)
    assert set(result.best_scores) == {"f1", "accuracy"}
    assert result.best_scores["accuracy"] >= 0.8, result.history
    assert (out / "data" / "mrpc" / "dev.tsv").is_file()
    assert json.loads((out / "eval_results.json").read_text())["metric"] == "f1"


# --- the suite ----------------------------------------------------------------------------------------

class StopOnFirstEpoch:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def update(self, record):
        os.kill(os.getpid(), signal.SIGINT)

    def message(self, text):
        pass


@pytest.mark.timeout(300)
def test_the_suite_sweeps_keeps_the_best_and_resumes(tmp_path, tiny_bert, task_words):
    glue_data = tmp_path / "glue_data"
    write_sst2(glue_data / "SST-2", task_words)
    write_hub_mnli(glue_data, task_words)  # one folder may hold both forms
    out = tmp_path / "suite"
    values = {"epochs": 2, "batch_size": 16, "max_seq_len": 24, "dropout": 0.0, "device": "cpu"}
    lrs = (3e-3, 1e-5)
    with pytest.raises(Interrupted):
        glue_suite.run_suite(str(tiny_bert), out, ["sst2", "mnli"], lrs, str(glue_data), values,
                             display_for=lambda name, lr: StopOnFirstEpoch() if name == "mnli" else None)
    first = json.loads((out / "glue.json").read_text())
    assert list(first["tasks"]) == ["sst2"]  # written after each task
    finished = out / "sst2" / "lr-0.003" / "eval_results.json"
    stamp = finished.stat().st_mtime_ns
    assert any((out / "mnli" / "lr-0.003" / "checkpoints").glob("step-*"))

    summary = glue_suite.run_suite(str(tiny_bert), out, ["sst2", "mnli"], lrs, str(glue_data), values)
    assert finished.stat().st_mtime_ns == stamp  # finished runs are not run again
    assert set(summary["tasks"]) == {"sst2", "mnli"}
    sst2 = summary["tasks"]["sst2"]
    assert sst2["lr"] == 3e-3 and sst2["scores"]["accuracy"] > sst2["runs"]["1e-05"]["accuracy"]
    assert (out / "sst2" / "lr-0.003" / "model").is_dir()
    assert not (out / "sst2" / "lr-1e-05" / "model").exists()  # only the best run's model is kept
    columns = summary["table"]["columns"]
    assert set(columns) == {"SST-2", "MNLI-m", "MNLI-mm"}
    assert summary["table"]["average"] == pytest.approx(sum(columns.values()) / 3)
    assert json.loads((out / "glue.json").read_text()) == summary
    assert "MNLI-m" in glue_suite.format_table(summary)


@pytest.mark.timeout(300)
def test_evaluate_glue_in_a_pipe_says_which_run_each_line_is_about(tmp_path, tiny_bert, task_words):
    import subprocess
    import sys

    write_sst2(tmp_path / "glue_data" / "SST-2", task_words)
    run = subprocess.run([sys.executable, "-m", "bertvault", "evaluate", "glue", "--from", str(tiny_bert),
                          "--data", str(tmp_path / "glue_data"), "--tasks", "sst2", "--lrs", "5e-5",
                          "--lrs", "3e-5", "--epochs", "1", "--batch-size", "16", "--max-seq-len", "24",
                          "--device", "cpu", "--out", str(tmp_path / "suite")],
                         capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    for lr in ("5e-05", "3e-05"):
        assert any(line.startswith(f"glue/sst2 lr {lr}  epoch 1") for line in lines), run.stdout
    header = next(i for i, line in enumerate(lines) if line.startswith("MNLI-m"))
    assert lines[header].split()[-1] == "Average" and "SST-2" in lines[header].split()
    saved = json.loads((tmp_path / "suite" / "glue.json").read_text())
    assert lines[header + 1].split()[-1] == f"{saved['table']['average']:.1f}"
