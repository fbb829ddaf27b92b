"""`bertvault finetune`: any BERT checkpoint finetuned for a task, the best epoch kept and exported.

A run: resolve the settings (task defaults < settings file < command line; on --resume the run's
saved settings), load the checkpoint as canonical weights, let the task read and tokenize its
files (tasks/sequence.py, squad.py, tokens.py, glue.py), build the task's head on the encoder
(tasks/heads.py), train with the shared loop (tasks/loop.py), then write the best epoch as an HF
folder (OUT/model; with --export tf1 also OUT/tf1), OUT/eval_results.json, the eval predictions
the task keeps (SQuAD's predictions.json, ...) and, with --test, the test predictions.

Tasks and their defaults (google-research/bert's recipes):

    classification, regression, glue/<name>   lr 2e-5, batch 32, 3 epochs, --max-seq-len 128
    squad                                     lr 3e-5, batch 12, 2 epochs, --max-seq-len 384
    token-classification                      lr 5e-5, batch 32, 3 epochs, --max-seq-len 128
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bertvault import provenance, sources
from bertvault.errors import TrainingError, UsageError, raise_if
from bertvault.train import checkpoint_io, checkpoints, config, devices
from bertvault.train.tasks import glue, heads, loop, sequence, squad, tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEntry:
    prepare: Callable  # (settings, source, lowercase) -> the task the loop trains
    metrics: tuple[str, ...]  # the scores that may pick the best epoch; the first is the default
    head: str = "sequence"  # tasks/heads.py
    defaults: dict = field(default_factory=dict)  # settings that differ from FinetuneSettings' defaults
    checks: Callable | None = None  # settings -> problems


TASKS = {
    "classification": TaskEntry(sequence.prepare, sequence.METRICS["classification"]),
    "regression": TaskEntry(sequence.prepare, sequence.METRICS["regression"]),
    "squad": TaskEntry(squad.prepare, squad.METRICS, "span", squad.DEFAULTS, squad.setting_problems),
    "token-classification": TaskEntry(tokens.prepare, tokens.METRICS, "token", tokens.DEFAULTS),
    **{f"glue/{name}": TaskEntry(glue.prepare, spec.metrics) for name, spec in glue.TASKS.items()},
}


@dataclass
class Result:
    out: Path
    best_epoch: int
    best_scores: dict[str, float]
    model_dir: Path | None
    predictions: Path | None
    history: list[dict] = field(default_factory=list)
    tf1_dir: Path | None = None


# --- settings ----------------------------------------------------------------------------------------

def task_defaults(file_values: dict, cli_values: dict) -> dict:
    task = cli_values.get("task") or file_values.get("task") or config.FinetuneSettings.task
    return dict(TASKS[task].defaults) if task in TASKS else {}


def resolve_settings(file_values: dict, cli_values: dict, resume: bool = False) -> config.FinetuneSettings:
    """Task defaults < settings file < command line; on --resume the run's saved settings come first."""
    if resume:
        out = cli_values.get("out") or file_values.get("out")
        if not out:
            raise UsageError("--resume needs --out, the folder of the run to continue")
        out = str(Path(out).expanduser().resolve())
        saved = loop.saved_settings(Path(out))
        return config.merge_for_resume(saved, {**file_values, **cli_values, "out": out})
    settings = config.absolute_paths(config.resolve(config.FinetuneSettings,
                                                    {**task_defaults(file_values, cli_values), **file_values},
                                                    cli_values))
    raise_if(problems_of(settings), UsageError)
    return settings


def problems_of(settings: config.FinetuneSettings) -> list[str]:
    problems = [f"--{name.removesuffix('_')} is required" for name in ("from_", "out")
                if not getattr(settings, name)]
    entry = TASKS[settings.task]
    allowed = entry.metrics
    if settings.metric and settings.metric not in allowed:
        problems.append(f"--metric {settings.metric} does not score --task {settings.task}; use "
                        f"{' or '.join(allowed)}")
    if not settings.task.startswith("glue/"):  # a GLUE task finds its registered files itself
        problems += [f"--{name} is required" for name in ("train", "eval") if not getattr(settings, name)]
    if "tf1" in settings.export and entry.head not in heads.TF1_HEADS:
        head = heads.HEADS[entry.head]
        problems.append(f"--export tf1: no google-research/bert script reads a {head} head")
    return problems + (entry.checks(settings) if entry.checks else [])


# --- the run -----------------------------------------------------------------------------------------

def run(settings: config.FinetuneSettings, resume: bool = False, display=None) -> Result:
    device = devices.pick(settings.device)
    device.init_process_group()
    try:
        return _run(settings, resume, display, device)
    finally:
        device.shutdown()


def load_source(settings: config.FinetuneSettings) -> tuple[checkpoint_io.ModelSource, bool]:
    """The checkpoint's weights, config and vocab, checked against the run; and whether to lower-case."""
    source = checkpoint_io.load_model_source(
        sources.resolve(settings.from_, "checkpoint", lowercase=settings.lowercase))
    positions = source.config.get("max_position_embeddings", 512)
    if settings.max_seq_len > positions:
        raise TrainingError(f"--max-seq-len {settings.max_seq_len} is beyond the model's {positions} "
                            f"positions; use {positions} or less")
    checkpoint_io.check_vocab(source.config, source.vocab_path, source.state_dict)
    return source, bool(source.lowercase)


def _run(settings: config.FinetuneSettings, resume: bool, display, device: devices.Device) -> Result:
    out = Path(settings.out)
    resume_from = loop.check_output(out, resume)
    if device.is_main:
        checkpoints.clean_partial(out / loop.CHECKPOINTS)
    precision = device.resolve_precision(settings.precision)
    torch.manual_seed(settings.seed)
    source, lowercase = load_source(settings)
    task = TASKS[settings.task].prepare(settings, source, lowercase)
    model = heads.build(source, task.head, settings.dropout, **task.head_fields())
    trainer = loop.Trainer(task, model, settings, device, precision, out, display)
    if resume_from is not None:
        trainer.restore(resume_from)
    outcome = trainer.run()

    test_files = {}
    if task.size("test"):
        outputs = loop.predict(trainer.module, task, "test", device, precision, settings.batch_size,
                               trainer.fixed_length)
        test_files = task.predictions(outputs)
    result = Result(out, outcome.best_epoch, outcome.best_scores, None, None, outcome.history)
    if device.is_main:
        finish(result, task, model, source, lowercase, settings, test_files)
    device.barrier()
    return result


def finish(result: Result, task, model, source, lowercase: bool, settings,
           test_files: dict[str, str]) -> None:
    """The best epoch's model, scores and predictions in OUT; the resume checkpoints are dropped."""
    out = result.out
    for name, text in test_files.items():
        loop.write_text(out / name, text)
        result.predictions = out / name
    result.model_dir = heads.export_hf(model, source, lowercase, settings, out / "model")
    if "tf1" in settings.export:
        result.tf1_dir = heads.export_tf1(model, task.head, source, lowercase, out / "tf1")
    summary = {"task": settings.task, "best_epoch": result.best_epoch, "metric": task.metric,
               "scores": result.best_scores, **task.summary()}
    loop.write_text(out / "eval_results.json", json.dumps(summary, indent=2))
    described = [provenance.describe(sources.resolve(text)) for text in (settings.from_, *task.sources)]
    record = {"sources": described,
              "best_epoch": result.best_epoch, "scores": result.best_scores,
              "settings": dataclasses.asdict(settings)}
    for folder in (result.model_dir, result.tf1_dir):
        if folder is not None:
            provenance.write_record(folder, "finetune", **record)
    shutil.rmtree(out / loop.CHECKPOINTS, ignore_errors=True)  # finished: nothing left to resume
