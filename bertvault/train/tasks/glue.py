"""The nine GLUE tasks as data: their files, columns, labels and official scores (`--task glue/<name>`).

GLUE ships in two forms, and each task knows both:

- as published (`bertvault pull glue-<name>`: the zips of dl.fbaipublicfiles.com/glue, whose TSVs
  `download_glue_data.py` puts in glue_data/<Folder>/), labels spelt as in the TSVs;
- the Hub's `nyu-mll/glue` (`bertvault pull glue`): one Parquet file per config and split, labels
  as ClassLabel ids in the order of `labels` below (so id i is `labels[i]` in the TSVs' spelling).

MRPC is published as Microsoft's two text files and GLUE's list of dev pairs; its train/dev TSVs
are cut from them as download_glue_data.py does. MNLI is scored on both dev sets: matched
(`accuracy`, which picks the best epoch) and mismatched (`accuracy_mm`). The official scores
(GLUE's and BERT's paper): Matthews correlation for CoLA, F1 and accuracy for MRPC and QQP,
Pearson and Spearman correlation for STS-B, accuracy for the rest. `paper` is the score BERT's
paper prints in its Table 1 (F1 for MRPC and QQP, Spearman for STS-B).

This module stays free of numpy and torch at import: train/config.py reads the task names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bertvault.errors import DataError, ManifestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cols:
    text: str
    pair: str | None
    label: str


@dataclass(frozen=True)
class GlueTask:
    folder: str  # glue_data/<folder> as published
    kind: str  # classification | regression
    labels: tuple[str, ...]  # the TSVs' spelling, in the Hub's ClassLabel order
    tsv: Cols  # columns of the published TSVs (CoLA's have no header: 0-based indexes)
    metrics: tuple[str, ...]  # official scores; the first picks the best epoch
    paper: str  # the score BERT's paper reports
    dev: tuple[str, ...] = ("dev",)  # dev files; MNLI has two
    hub: Cols = Cols("sentence1", "sentence2", "label")  # nyu-mll/glue's columns
    tsv_test_text: str | None = None  # CoLA's test.tsv has a header, unlike its train and dev files


TASKS: dict[str, GlueTask] = {
    "cola": GlueTask("CoLA", "classification", ("0", "1"), Cols("3", None, "1"), ("mcc", "accuracy"), "mcc",
                     hub=Cols("sentence", None, "label"), tsv_test_text="sentence"),
    "sst2": GlueTask("SST-2", "classification", ("0", "1"), Cols("sentence", None, "label"), ("accuracy",),
                     "accuracy", hub=Cols("sentence", None, "label")),
    "mrpc": GlueTask("MRPC", "classification", ("0", "1"), Cols("#1 String", "#2 String", "Quality"),
                     ("f1", "accuracy"), "f1"),
    "stsb": GlueTask("STS-B", "regression", (), Cols("sentence1", "sentence2", "score"),
                     ("spearman", "pearson"), "spearman"),
    "qqp": GlueTask("QQP", "classification", ("0", "1"), Cols("question1", "question2", "is_duplicate"),
                    ("f1", "accuracy"), "f1", hub=Cols("question1", "question2", "label")),
    "mnli": GlueTask("MNLI", "classification", ("entailment", "neutral", "contradiction"),
                     Cols("sentence1", "sentence2", "gold_label"), ("accuracy",), "accuracy",
                     dev=("dev_matched", "dev_mismatched"), hub=Cols("premise", "hypothesis", "label")),
    "qnli": GlueTask("QNLI", "classification", ("entailment", "not_entailment"),
                     Cols("question", "sentence", "label"), ("accuracy",), "accuracy",
                     hub=Cols("question", "sentence", "label")),
    "rte": GlueTask("RTE", "classification", ("entailment", "not_entailment"),
                    Cols("sentence1", "sentence2", "label"), ("accuracy",), "accuracy"),
    "wnli": GlueTask("WNLI", "classification", ("0", "1"), Cols("sentence1", "sentence2", "label"),
                     ("accuracy",), "accuracy"),
}

# Scores of the second and later dev sets carry a suffix (MNLI's mismatched: accuracy_mm).
DEV_SUFFIXES = ("", "_mm")
HUB_SPLITS = {"train": "train", "dev": "validation", "dev_matched": "validation_matched",
              "dev_mismatched": "validation_mismatched", "test": "test", "test_matched": "test_matched"}
# Where a task's files are, relative to a folder: (how they are read, train file, a dev file). In turn:
# glue_data/ as download_glue_data.py makes it, one task's folder (an extracted glue-<name> zip), the
# Hub's nyu-mll/glue repository, one of its config folders.
LAYOUTS = (
    ("tsv", "{folder}/train.tsv", "{folder}/{split}.tsv"),
    ("tsv", "train.tsv", "{split}.tsv"),
    ("hub", "{config}/train-00000-of-00001.parquet", "{config}/{hub_split}-00000-of-00001.parquet"),
    ("hub", "train-00000-of-00001.parquet", "{hub_split}-00000-of-00001.parquet"),
)
MRPC_RAW = ("msr_paraphrase_train.txt", "mrpc_dev_ids.tsv")  # what the glue-mrpc artifact holds
# Registered artifacts looked for in the cache when no files are given, in order.
REGISTERED = ("glue", "glue-{name}")


@dataclass
class Files:
    source: str  # tsv | hub
    train: Path
    dev: list[Path]


def _find(folder: Path, name: str, spec: GlueTask) -> Files | None:
    for source, train, dev in LAYOUTS:
        values = {"folder": spec.folder, "config": name}
        train_path = folder / train.format(**values)
        devs = [folder / dev.format(**values, split=split, hub_split=HUB_SPLITS[split]) for split in spec.dev]
        if train_path.is_file() and all(p.is_file() for p in devs):
            return Files(source, train_path, devs)
    return None


def _find_below(folder: Path, name: str, spec: GlueTask) -> Files | None:
    """A zip whose top folder is not named as glue_data names it: the one subfolder holding the files."""
    found = [f for f in (_find(sub, name, spec) for sub in sorted(folder.iterdir()) if sub.is_dir()) if f]
    return found[0] if len(found) == 1 else None


def split_mrpc(folder: Path, target: Path) -> Path:
    """GLUE's MRPC train.tsv and dev.tsv cut from Microsoft's training file by GLUE's dev pair ids."""
    from bertvault.train.tasks.loop import write_text

    train_text, ids_text = ((folder / name).read_text(encoding="utf-8-sig") for name in MRPC_RAW)
    dev_ids = {tuple(line.strip().split("\t")[:2]) for line in ids_text.splitlines() if line.strip()}
    header, *rows = [line for line in train_text.splitlines() if line.strip()]
    parts: dict[str, list[str]] = {"train": [header], "dev": [header]}
    for number, row in enumerate(rows, start=2):
        cells = row.strip().split("\t")
        if len(cells) != 5:
            raise DataError(f"{folder / MRPC_RAW[0]} line {number}: {len(cells)} fields, expected 5 "
                            "(Quality, #1 ID, #2 ID, #1 String, #2 String)")
        parts["dev" if (cells[1], cells[2]) in dev_ids else "train"].append("\t".join(cells))
    for name, lines in parts.items():
        write_text(target / f"{name}.tsv", "\n".join(lines) + "\n")
    return target


def registered_folder(name: str) -> Path | None:
    from bertvault.cache import layout

    for pattern in REGISTERED:
        artifact = pattern.format(name=name)
        if layout.is_cached(artifact):
            return layout.artifact_dir(artifact)
    return None


def locate(name: str, given: str | None, work: Path) -> Files:
    """A task's train and dev files: in the folder given (glue_data/, a task folder, the Hub's files),
    else in a registered GLUE artifact in the cache. `work` receives MRPC's cut TSVs."""
    spec = TASKS[name]
    folder = Path(given).expanduser() if given else registered_folder(name)
    if folder is None:
        artifacts = " or ".join(f"`bertvault pull {p.format(name=name)}`" for p in REGISTERED)
        raise ManifestError(f"glue/{name}: no GLUE data in the cache; run {artifacts} first, or pass --train "
                            "and --eval (files or a GLUE data folder)")
    if not folder.is_dir():
        raise DataError(f"--train {folder}: --task glue/{name} wants a GLUE data folder or "
                        "--train/--eval files")
    found = _find(folder, name, spec) or _find_below(folder, name, spec)
    if found is None and name == "mrpc" and all((folder / n).is_file() for n in MRPC_RAW):
        found = _find(split_mrpc(folder, work / "mrpc"), name, spec)
    if found is None:
        wanted = ", ".join(f"{spec.folder}/{split}.tsv" for split in ("train", *spec.dev))
        raise DataError(f"{folder}: no {spec.folder} files in it (looked for {wanted}, or the Hub's "
                        f"{name}/train-00000-of-00001.parquet)")
    return found


def columns(spec: GlueTask, source: str) -> Cols:
    return spec.tsv if source == "tsv" else spec.hub


def translator(spec: GlueTask, source: str):
    """The Hub's ClassLabel ids -> GLUE's label names; TSV labels are the names already."""
    if source != "hub" or spec.kind != "classification":
        return None
    names = {str(i): n for i, n in enumerate(spec.labels)}
    return lambda value: names.get(value, value)


def metric_values(spec: GlueTask, predicted, gold, suffix: str = "") -> dict[str, float]:
    """The task's official scores (train/scores.py), `predicted` being label ids or regression values."""
    from bertvault.train import scores

    functions = {
        "accuracy": lambda: scores.accuracy(predicted, gold),
        "f1": lambda: scores.f1(predicted, gold, len(spec.labels)),
        "mcc": lambda: scores.matthews(predicted, gold, len(spec.labels)),
        "pearson": lambda: scores.pearson(predicted, gold),
        "spearman": lambda: scores.spearman(predicted, gold),
    }
    return {f"{metric}{suffix}": functions[metric]() for metric in spec.metrics}


def prepare(settings, source, lowercase: bool):
    """`--task glue/<name>`: the task's files (given or registered), columns, labels and scores."""
    from bertvault.train.tasks import glue_task

    return glue_task.prepare(settings, source, lowercase)
