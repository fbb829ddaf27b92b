"""The finetuning loop every task shares: google-research/bert's recipe, the best epoch kept, resumable.

A task (sequence.py, squad.py, tokens.py) hands the loop rows it can batch and a way to score
them; the loop does the rest:

- AdamW (no decay on LayerNorm and biases, eps 1e-6), linear warmup over `--warmup` of the steps
  then linear decay to 0, gradient clipping at 1.0, as run_classifier.py and run_squad.py do;
- each epoch a fresh shuffle from (seed, epoch), each rank taking every world_size-th row (the
  same number of steps on every rank);
- a task whose rows differ much in length (SQuAD's windows) may give their lengths: each batch is
  then padded only to its longest row, so rows of similar length are batched together (`grouped`);
- after each epoch the eval rows are scored; the epoch with the best `task.metric` is kept (its
  weights in memory, its files such as predictions.json written into OUT at once);
- a checkpoint (weights, best weights, optimizer, schedule, RNG, position in the epoch) at the end
  of every epoch, every `--save-every` steps, and on Ctrl-C / SIGTERM, so `--resume` continues
  exactly where the run stopped: the same batches, the same dropout, the same scores.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from bertvault.errors import TrainingError
from bertvault.train import checkpoints, config, devices, finite, optim
from bertvault.train.metrics import MetricsLog
from bertvault.train.pretrain import Interrupted, stop_agreed, stop_requests

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
CURRENT = "model.safetensors"
BEST = "best.safetensors"


@dataclass
class Evaluation:
    """Scores of the eval rows (higher is better for the task's metric), and files to keep if best."""

    scores: dict[str, float]
    files: dict[str, str] = field(default_factory=dict)


class Task(Protocol):
    """What a finetuning task gives the loop."""

    metric: str  # the score that picks the best epoch

    def size(self, split: str) -> int:
        """Rows of a split: "train", "eval" or "test"."""

    def batch(self, split: str, rows: np.ndarray, fixed_length: int | None) -> dict[str, torch.Tensor]:
        """Padded tensors for the rows; with the labels the model's loss needs for "train"."""

    def outputs(self, output, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per-row numpy results (logits trimmed to the row's length) from the model's output."""

    def evaluate(self, outputs: list[np.ndarray]) -> Evaluation:
        """Scores of the eval split from its outputs, in row order."""

    # Optional: `lengths(split) -> np.ndarray`, the tokens of each row (see `grouped`).


@dataclass
class Outcome:
    best_epoch: int
    best_scores: dict[str, float]
    history: list[dict]
    steps: int


# --- the output folder ------------------------------------------------------------------------------

def check_output(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None for a new run; refuses to mix two runs in one folder."""
    root = out / CHECKPOINTS
    newest = checkpoints.latest(root)
    if resume and newest is None:
        finished = (out / "eval_results.json").is_file()
        raise TrainingError(f"--resume: {root} holds no checkpoint to resume from"
                            + ("; the run in it has finished (eval_results.json)" if finished else
                               "; start the run without --resume"))
    if not resume and newest is not None:
        raise TrainingError(f"{out} already holds an unfinished run (checkpoint {newest.name}); pass "
                            "--resume to continue it, or choose another --out")
    return newest


def saved_settings(out: Path, cls: type = config.FinetuneSettings):
    """The settings of the run to resume (saved in its newest checkpoint)."""
    newest = check_output(out, resume=True)
    return config.load_saved(cls, newest / "settings.toml")


def write_text(path: Path, text: str) -> None:
    """Atomically: a reader sees the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- batches of similar length ----------------------------------------------------------------------

POOL_BATCHES = 50  # batches per pool sorted by length: fewer pad tokens, still a shuffle of the whole set


def lengths_of(task: Task, split: str, fixed_length: int | None) -> np.ndarray | None:
    """The rows' lengths where the task gives them and batches are padded to their longest row."""
    lengths = getattr(task, "lengths", None)
    return None if lengths is None or fixed_length else np.asarray(lengths(split))


def grouped(order: np.ndarray, lengths: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """The shuffled rows regrouped so that each batch holds rows of similar length.

    A batch is padded to its longest row, so a batch of random rows pays for its longest one: on
    SQuAD-like data (windows of 60 to 384 tokens) that is about 1.6x the tokens of its rows. The
    shuffled order is cut into pools of POOL_BATCHES batches, each pool sorted by length and cut
    into batches, and the full batches are shuffled (the partial one stays last, where the loop
    expects it) with the batch of the longest row first: a run that runs out of memory does so at
    its first step. The same (order, lengths, rng) give the same batches, so --resume is exact.
    """
    pool = batch * POOL_BATCHES
    by_length = np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(pool, len(order), pool))])
    full = len(order) // batch
    batches = by_length[: full * batch].reshape(full, batch)
    shuffled = rng.permutation(full)
    if full:
        longest = int(np.flatnonzero(shuffled == int(np.argmax(lengths[batches[:, 0]])))[0])
        shuffled[[0, longest]] = shuffled[[longest, 0]]
    return np.concatenate([batches[shuffled].reshape(-1), by_length[full * batch :]])


# --- prediction ---------------------------------------------------------------------------------------

@torch.no_grad()
def predict(module, task: Task, split: str, device: devices.Device, precision: str, batch_size: int,
            fixed_length: int | None) -> list[np.ndarray]:
    """Outputs for every row of a split, in row order (each rank does its share, then all gather)."""
    module.eval()
    mine = np.arange(device.rank, task.size(split), device.world_size)
    lengths = lengths_of(task, split, fixed_length)
    if lengths is not None:  # longest first; the outputs go back into row order below
        mine = mine[np.argsort(-lengths[mine], kind="stable")]
    results: list[tuple[int, np.ndarray]] = []
    for start in range(0, len(mine), batch_size):
        rows = mine[start : start + batch_size]
        batch = task.batch(split, rows, fixed_length)
        with device.autocast(precision):
            output = module(**{k: v.to(device.device) for k, v in batch.items()})
        device.mark_step()
        results += zip(rows.tolist(), task.outputs(output, batch), strict=True)
    module.train()
    gathered = sorted((item for part in device.all_gather_object(results) for item in part),
                      key=lambda item: item[0])
    return [value for _, value in gathered]


# --- training -----------------------------------------------------------------------------------------

def _cpu_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def check_finite(epoch: int, train_loss: float, model, device: devices.Device) -> None:
    """A non-finite loss or weight ends the run (exit 8) before that epoch is scored, kept or saved."""
    bad = torch.tensor([float(not math.isfinite(train_loss) or not finite.parameters_finite(model))],
                       device=device.device)
    if float(device.all_reduce_sum(bad)[0]):
        raise TrainingError(f"epoch {epoch}: the training loss or the weights are no longer finite numbers "
                            f"(loss {train_loss}), so this epoch was neither scored nor saved; "
                            f"{finite.ADVICE} (finetuning usually takes 1e-5 to 5e-5)")


class Trainer:
    """One run of the loop; `state` is what a checkpoint restores."""

    def __init__(self, task: Task, model, settings, device: devices.Device, precision: str, out: Path,
                 display=None):
        self.task, self.model, self.settings, self.device = task, model, settings, device
        self.precision, self.out = precision, out
        self.module = model.to(device.device)
        if settings.compile:
            self.module = torch.compile(self.module)
        self.wrapped = device.wrap(self.module)
        self.fixed_length = settings.max_seq_len if device.kind == "xla" else None  # static shapes for XLA
        self.per_rank = task.size("train") // device.world_size
        if self.per_rank < 1:
            raise TrainingError(f"{settings.train}: {task.size('train')} training rows, fewer than the "
                                f"{device.world_size} processes")
        self.steps_per_epoch = max(1, -(-self.per_rank // settings.batch_size))
        self.lengths = lengths_of(task, "train", self.fixed_length)
        total = self.steps_per_epoch * settings.epochs
        self.optimizer = optim.build_optimizer(model, "adamw", settings.lr, settings.weight_decay,
                                               (0.9, 0.999), 1e-6, fused=device.fused_optimizer)
        self.scheduler = optim.build_schedule(self.optimizer, "linear", int(settings.warmup * total), total)
        self.scaler = device.grad_scaler(precision)
        self.display = display
        # Where the run stands: the next batch to train, the loss so far this epoch, the best epoch.
        self.epoch, self.batch, self.loss_count = 1, 0, 0
        self.loss_sum = torch.zeros((), device=device.device)  # summed on the device: no sync per step
        self.best_value, self.best_epoch, self.best_scores = -math.inf, 0, {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict] = []

    # --- checkpoints -------------------------------------------------------------------------------
    def restore(self, folder: Path) -> None:
        from safetensors.torch import load_file

        saved = checkpoints.load(folder, per_rank=("python_rng",))
        state = saved.trainer_state
        if state.get("world_size") != self.device.world_size:
            raise TrainingError(f"{folder} was saved by {state.get('world_size')} processes; resume it with "
                                "as many")
        try:
            self.model.load_state_dict(load_file(folder / CURRENT))
            self.best_state = load_file(folder / BEST) if (folder / BEST).is_file() else None
        except Exception as exc:  # noqa: BLE001 - a damaged file shows up as many kinds of error
            raise TrainingError(f"checkpoint {folder} cannot be read ({exc}); start the run again") from None
        self.optimizer.load_state_dict(saved.torch_state["optimizer"])
        self.scheduler.load_state_dict(saved.torch_state["scheduler"])
        if self.scaler is not None and saved.torch_state.get("scaler"):
            self.scaler.load_state_dict(saved.torch_state["scaler"])
        self.device.set_rng_state(saved.torch_state["rng"][self.device.rank])
        checkpoints.set_python_rng_state(state["python_rng"][self.device.rank])
        self.epoch, self.batch = state["epoch"], state["batch"]
        self.loss_sum = torch.tensor(state["loss_sum"], device=self.device.device)
        self.loss_count = state["loss_count"]
        best = state["best"]
        self.best_value = best["value"] if best["value"] is not None else -math.inf
        self.best_epoch, self.best_scores, self.history = best["epoch"], best["scores"], state["history"]
        log.info("resuming from %s (epoch %d, batch %d)", folder, self.epoch, self.batch)

    def save(self) -> Path | None:
        from safetensors.torch import save_file

        device = self.device
        rng = device.all_gather_object({k: v.cpu() for k, v in device.rng_state().items()})
        python_rng = device.all_gather_object(checkpoints.python_rng_state())
        loss_sum = float(device.all_reduce_sum(self.loss_sum.detach().clone().reshape(1))[0])
        folder = None
        if device.is_main:
            def write_model(tmp: Path) -> None:
                save_file(_cpu_state(self.model), tmp / CURRENT)
                if self.best_state is not None:
                    save_file(self.best_state, tmp / BEST)
                config.save(self.settings, tmp / "settings.toml")

            best = {"value": self.best_value if math.isfinite(self.best_value) else None,
                    "epoch": self.best_epoch, "scores": self.best_scores}
            torch_state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                           "scaler": self.scaler.state_dict() if self.scaler is not None else {}, "rng": rng}
            trainer_state = {"epoch": self.epoch, "batch": self.batch, "loss_count": self.loss_count,
                             "loss_sum": loss_sum / device.world_size, "best": best, "history": self.history,
                             "python_rng": python_rng, "world_size": device.world_size}
            folder = checkpoints.save(self.out / CHECKPOINTS, self._global_step(), write_model, torch_state,
                                      trainer_state, keep=1)
        device.barrier()
        return folder

    def _global_step(self) -> int:
        return (self.epoch - 1) * self.steps_per_epoch + self.batch

    # --- the epochs --------------------------------------------------------------------------------
    def _order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.settings.seed, epoch])
        order = rng.permutation(self.task.size("train"))
        if self.lengths is not None:  # a global batch is batch_size rows of each rank, in turn
            order = grouped(order, self.lengths, self.settings.batch_size * self.device.world_size, rng)
        return order[self.device.rank :: self.device.world_size][: self.per_rank]

    def _step(self, rows: np.ndarray) -> None:
        device, settings = self.device, self.settings
        batch = self.task.batch("train", rows, self.fixed_length)
        with device.autocast(self.precision):
            loss = self.wrapped(**{k: v.to(device.device) for k, v in batch.items()}).loss
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        optim.clip_gradients(self.model, settings.clip)
        device.optimizer_step(self.optimizer, self.scaler)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        device.mark_step()
        self.loss_sum += loss.detach().float()
        self.loss_count += 1

    def _stop_now(self, stop: list[str]) -> bool:
        """Ranks agree through an all-reduce, so only every 20 steps when there are several."""
        if self.device.distributed and self.batch % 20 and self.batch != self.steps_per_epoch:
            return False
        return stop_agreed(stop, self.device)

    def _train_epoch(self, stop: list[str]) -> bool:
        """Trains the rest of the current epoch; False if stopped (a checkpoint was saved)."""
        order, size = self._order(self.epoch), self.settings.batch_size
        save_every = self.settings.save_every
        while self.batch < self.steps_per_epoch:
            self._step(order[self.batch * size : (self.batch + 1) * size])
            self.batch += 1
            if self._stop_now(stop):
                self.save()
                return False
            if save_every and self._global_step() % save_every == 0 and self.batch < self.steps_per_epoch:
                self.save()
        return True

    def _finish_epoch(self, metrics: MetricsLog) -> None:
        device = self.device
        total = device.all_reduce_sum(torch.stack([self.loss_sum, torch.tensor(float(self.loss_count),
                                                                            device=device.device)]))
        train_loss = float(total[0] / total[1].clamp(min=1))
        check_finite(self.epoch, train_loss, self.model, device)
        outputs = predict(self.module, self.task, "eval", device, self.precision, self.settings.batch_size,
                          self.fixed_length)
        evaluation = self.task.evaluate(outputs)
        record = {"step": self.epoch, "epoch": self.epoch, "train_loss": train_loss,
                  **{f"eval_{k}": v for k, v in evaluation.scores.items()}}
        self.history.append(record)
        metrics.log(record)
        value = evaluation.scores[self.task.metric]
        if value > self.best_value:
            self.best_value, self.best_epoch, self.best_scores = value, self.epoch, evaluation.scores
            self.best_state = _cpu_state(self.model)
            if device.is_main:
                for name, text in evaluation.files.items():
                    write_text(self.out / name, text)
        self.epoch, self.batch, self.loss_count = self.epoch + 1, 0, 0
        self.loss_sum = torch.zeros((), device=device.device)

    def run(self) -> Outcome:
        settings = self.settings
        resumed = self.epoch > 1 or self.batch > 0
        metrics = MetricsLog(self.out, self.device.is_main, resume_step=self.epoch - 1 if resumed else None,
                             display=self.display)
        if not resumed:
            self.device.seed(settings.seed + self.device.rank)  # dropout differs per rank, as per example
        what = f"a batch of {settings.batch_size} × {settings.max_seq_len} tokens"
        with stop_requests() as stop, devices.out_of_memory_hint(what), contextlib.closing(metrics):
            while self.epoch <= settings.epochs:
                if not self._train_epoch(stop):
                    metrics.message(f"stopped in epoch {self.epoch}; continue with --resume")
                    signal_name = stop[0] if stop else "a signal"
                    raise Interrupted(f"stopped by {signal_name} in epoch {self.epoch}; a checkpoint was "
                                      f"saved, continue with `--out {self.out} --resume`")
                self._finish_epoch(metrics)
                self.save()  # after the last epoch too: a crash while exporting resumes at the export
            if self.best_state is None:
                raise TrainingError("no epoch was scored; raise --epochs")
            metrics.message(f"best epoch {self.best_epoch}: {self.task.metric} {self.best_value:.4f}")
        self.model.load_state_dict(self.best_state)
        return Outcome(self.best_epoch, self.best_scores, self.history, self._global_step())
