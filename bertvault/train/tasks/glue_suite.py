"""`bertvault evaluate glue`: the GLUE suite with the recipe of BERT's paper, and the table papers print.

For every task, one finetune per learning rate of the sweep (5e-5, 3e-5, 2e-5; batch 32, 3 epochs,
the best epoch of each), and the task's score is its best run on dev by the task's metric, as the
paper chose. Each run is a `finetune --task glue/<name>` in OUT/<name>/lr-<lr>/:

- a run whose eval_results.json exists is finished and is not run again;
- a run stopped half-way (Ctrl-C, a crash) resumes from its checkpoint;
- OUT/glue.json is rewritten after every task: the scores, the chosen learning rates, the table.

The table is the paper's (Table 1): MNLI-m/mm, QQP (F1), QNLI, SST-2, CoLA (Matthews), STS-B
(Spearman), MRPC (F1), RTE, each ×100, and their average; WNLI is shown but, as in the paper, left
out of the average. Only the best run's model is kept (OUT/<name>/lr-<lr>/model) unless keep="all".
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from bertvault.errors import UsageError
from bertvault.train.tasks import glue
from bertvault.train.tasks.loop import CHECKPOINTS, write_text

log = logging.getLogger(__name__)

SWEEP = (5e-5, 3e-5, 2e-5)
ORDER = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
# (column, task, score) of the paper's table; WNLI is printed after them, outside the average.
PAPER = (("MNLI-m", "mnli", "accuracy"), ("MNLI-mm", "mnli", "accuracy_mm"), ("QQP", "qqp", "f1"),
         ("QNLI", "qnli", "accuracy"), ("SST-2", "sst2", "accuracy"), ("CoLA", "cola", "mcc"),
         ("STS-B", "stsb", "spearman"), ("MRPC", "mrpc", "f1"), ("RTE", "rte", "accuracy"))
OUTSIDE_AVERAGE = (("WNLI", "wnli", "accuracy"),)
KEEP = ("best", "all")


def check(tasks: list[str] | None, lrs: tuple[float, ...], keep: str) -> list[str]:
    """The tasks to run, in GLUE's order; every bad argument reported at once."""
    chosen = list(dict.fromkeys(t.removeprefix("glue/").lower() for t in tasks)) if tasks else list(ORDER)
    problems = [f"--tasks: no GLUE task {t!r}; choose from {', '.join(ORDER)}" for t in chosen
                if t not in ORDER]
    problems += [f"--lrs: a learning rate must be positive, got {lr}" for lr in lrs if lr <= 0]
    if not lrs:
        problems.append("--lrs: give at least one learning rate")
    if keep not in KEEP:
        problems.append(f"--keep must be one of {', '.join(KEEP)}, got {keep!r}")
    if problems:
        raise UsageError(problems)
    return [t for t in ORDER if t in chosen]


def run_folder(out: Path, name: str, lr: float) -> Path:
    return out / name / f"lr-{lr:g}"


def run_one(name: str, lr: float, folder: Path, values: dict, display=None) -> dict:
    """One finetune of the sweep (skipped when finished, resumed when stopped); its eval_results.json.
    `display`: the run's progress display, a context manager."""
    from bertvault.train import finetune

    results = folder / "eval_results.json"
    if results.is_file():
        log.info("glue/%s lr %g: finished before, not run again", name, lr)
        return json.loads(results.read_text(encoding="utf-8"))
    resume = (folder / CHECKPOINTS).is_dir() and any((folder / CHECKPOINTS).glob("step-*"))
    cli = {**values, "task": f"glue/{name}", "lr": lr, "out": str(folder)}
    settings = finetune.resolve_settings({}, cli, resume=resume)
    with display if display is not None else contextlib.nullcontext() as shown:
        finetune.run(settings, resume=resume, display=shown)
    return json.loads(results.read_text(encoding="utf-8"))


def choose(name: str, runs: dict[float, dict]) -> dict:
    """The task's best run by its metric (on dev, as the paper chose), and every run's scores."""
    metric = glue.TASKS[name].metrics[0]
    lr, best = max(runs.items(), key=lambda item: item[1]["scores"][metric])
    return {"metric": metric, "lr": lr, "best_epoch": best["best_epoch"], "scores": best["scores"],
            "runs": {f"{k:g}": v["scores"] for k, v in runs.items()}}


def table(tasks: dict[str, dict]) -> dict:
    """The paper's columns (×100) for the tasks run, and the average of those in the paper's average."""
    columns = {column: 100 * tasks[name]["scores"][score] for column, name, score in PAPER + OUTSIDE_AVERAGE
               if score in tasks.get(name, {}).get("scores", {})}
    averaged = [column for column, _, _ in PAPER if column in columns]
    average = sum(columns[c] for c in averaged) / len(averaged) if averaged else None
    return {"columns": columns, "average": average, "average_over": averaged}


def format_table(summary: dict) -> str:
    """Plain text, as papers print it: a header row of tasks, a row of scores, the average last."""
    columns = summary["table"]["columns"]
    names = [c for c, _, _ in PAPER + OUTSIDE_AVERAGE]
    cells = [f"{columns[c]:.1f}" if c in columns else "-" for c in names]
    average = summary["table"]["average"]
    cells.append(f"{average:.1f}" if average is not None else "-")
    names.append("Average")
    widths = [max(len(n), len(v)) for n, v in zip(names, cells, strict=True)]
    header = "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))
    row = "  ".join(v.rjust(w) for v, w in zip(cells, widths, strict=True))
    note = "" if len(summary["table"]["average_over"]) == len(PAPER) else \
        f"\n(average over {', '.join(summary['table']['average_over'])} only)"
    return f"{header}\n{row}{note}\n"


def drop_other_models(out: Path, name: str, lrs: tuple[float, ...], best: float) -> None:
    for lr in lrs:
        if lr != best:
            shutil.rmtree(run_folder(out, name, lr) / "model", ignore_errors=True)


def run_suite(from_: str, out: str | Path, tasks: list[str] | None = None, lrs: tuple[float, ...] = SWEEP,
              data: str | None = None, values: dict | None = None, keep: str = "best",
              display_for: Callable[[str, float], object] | None = None) -> dict:
    """Every task's sweep (`values`: other finetune settings, e.g. batch_size, epochs, device);
    `data`: a GLUE data folder (glue_data/ or the Hub's files), else the registered data in the cache."""
    names = check(tasks, lrs, keep)
    out = Path(out).expanduser().resolve()
    base = {**(values or {}), "from_": from_}
    if data:
        base["train"] = str(Path(data).expanduser().resolve())
    path = out / "glue.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    summary.update({"from": from_, "recipe": {"lrs": list(lrs), **(values or {})}})
    done = summary.setdefault("tasks", {})
    for name in names:
        runs = {lr: run_one(name, lr, run_folder(out, name, lr), base,
                            display_for(name, lr) if display_for else None) for lr in lrs}
        done[name] = choose(name, runs)
        if keep == "best":
            drop_other_models(out, name, lrs, done[name]["lr"])
        summary["table"] = table(done)
        write_text(path, json.dumps(summary, indent=2))
        best = done[name]
        log.info("glue/%s: %s %.4f with lr %g", name, best["metric"], best["scores"][best["metric"]],
                 best["lr"])
    return summary
