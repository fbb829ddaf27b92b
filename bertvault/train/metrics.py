"""Training metrics: OUT/metrics.jsonl, TensorBoard when installed, and a display for people.

Each logging step writes one JSON line (`step`, `loss`, `mlm_loss`, `nsp_loss`, `mlm_accuracy`,
`lr`, `tokens_per_s`, ... and `mfu` where the device's peak is known). The losses are means over
the steps since the previous record; tokens_per_s counts every position of the padded sequences
(batch × seq_len), evaluation and checkpoint time left out. A resumed run first drops lines past
the step it resumes from, so the file reads as one uninterrupted run. A value that is not a finite
number (a correlation of constant predictions) is written as null: JSON has no NaN.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def flops_per_token(layers: int, hidden: int, seq_len: int, vocab: int, predicted_fraction: float) -> float:
    """Training FLOPs per token: 72·L·h² + 12·L·s·h + 6·(h² + h·V)·f (performance reference).

    f is the share of positions the MLM head runs on (≈0.15 when it runs on masked positions only).
    """
    return (72 * layers * hidden**2 + 12 * layers * seq_len * hidden
            + 6 * (hidden**2 + hidden * vocab) * predicted_fraction)


def mfu(tokens_per_s: float, flops_token: float, peak_flops: float | None, devices: int) -> float | None:
    if not peak_flops:
        return None
    return tokens_per_s * flops_token / (peak_flops * devices)


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or Infinity (a bare `NaN` breaks every strict reader): such a value is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends records to metrics.jsonl (rank 0 only) and forwards them to TensorBoard and a display."""

    def __init__(self, out: Path, enabled: bool, resume_step: int | None = None, display=None):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.display = display
        self.writer = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self._truncate(resume_step)
        elif self.path.exists():
            self.path.unlink()
        self.handle = self.path.open("a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:  # tensorboard is optional
            self.writer = None

    def _truncate(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except ValueError:
                continue  # a line cut short by a kill
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: finite_or_none(v) for k, v in record.items()}
        self.handle.write(json.dumps(record, allow_nan=False) + "\n")
        self.handle.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.writer.add_scalar(key, value, record["step"])
        if self.display is not None:
            self.display.update(record)

    def message(self, text: str) -> None:
        if self.enabled and self.display is not None:
            self.display.message(text)

    def close(self) -> None:
        if not self.enabled:
            return
        self.handle.close()
        if self.writer is not None:
            self.writer.close()


class Throughput:
    """Tokens per second between two logging steps (the device is synchronised before reading)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.tokens = 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leaves out time spent on other things (evaluation, checkpoints)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.start += time.perf_counter() - began

    def rate(self) -> float:
        now = time.perf_counter()
        rate = self.tokens / max(now - self.start, 1e-9)
        self.start, self.tokens = now, 0
        return rate


# --- displays (chosen by the CLI) ---------------------------------------------------------------------

FIELDS = (("loss", "{:.4f}"), ("mlm_accuracy", "{:.3f}"), ("lr", "{:.2e}"), ("tokens_per_s", "{:,.0f}"),
          ("mfu", "{:.1%}"), ("eval_loss", "{:.4f}"), ("eval_mlm_accuracy", "{:.3f}"),
          ("train_loss", "{:.4f}"), ("eval_accuracy", "{:.4f}"), ("eval_accuracy_mm", "{:.4f}"),
          ("eval_exact", "{:.2f}"), ("eval_f1", "{:.4f}"), ("eval_mcc", "{:.4f}"), ("eval_pearson", "{:.4f}"),
          ("eval_spearman", "{:.4f}"))


def describe(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}" if "epoch" in record else f"step {record['step']}"]
    parts += [f"{key} {fmt.format(record[key])}" for key, fmt in FIELDS if record.get(key) is not None]
    return "  ".join(parts)


class PlainDisplay:
    """One line per logging step, for logs and pipes; `label` starts each line where several runs
    share the output (the GLUE suite)."""

    def __init__(self, echo, total: int, label: str | None = None):
        self.echo = echo
        self.total = total
        self.label = f"{label}  " if label else ""

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, record: dict[str, Any]) -> None:
        self.echo(f"{self.label}{describe(record)}  ({record['step']}/{self.total})")

    def message(self, text: str) -> None:
        self.echo(f"{self.label}{text}")


class LiveDisplay:
    """A rich progress bar with the latest metrics, for a terminal."""

    def __init__(self, console, total: int, start: int = 0, label: str = "pretrain"):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.progress = Progress(
            TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"), console=console, transient=False,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, metrics="")

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, record: dict[str, Any]) -> None:
        text = describe(record).split("  ", 1)[-1]
        self.progress.update(self.task, completed=record["step"], metrics=text)

    def message(self, text: str) -> None:
        self.progress.console.print(text)
