"""`bertvault pretrain`: continue pretraining a BERT checkpoint (or start from scratch) on your text.

Read top to bottom, a run is:
  1. settings, device, output folder (a new run, or `--resume` from its newest checkpoint);
  2. the model: any checkpoint as canonical weights -> BertForPreTraining (SDPA), heads tied or fresh;
  3. the data stream for this rank;
  4. optimizer (AdamW without decay on LayerNorm/bias, or LAMB), warmup-then-decay schedule;
  5. the loop: accumulate micro-batches (no gradient all-reduce until the last), clip, step, log,
     checkpoint every --save-every steps and on Ctrl-C / SIGTERM;
  6. the final model as an HF folder (and a TF1 checkpoint with --export tf1).

Losses are normalised by counts over the whole global batch (all micro-batches, all ranks), so
N ranks with B/N examples each train exactly like one process with B.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from bertvault import provenance, sources
from bertvault.errors import TrainingError, UsageError, raise_if
from bertvault.formats.vocab import vocab_tokens
from bertvault.io import atomic
from bertvault.train import checkpoint_io, checkpoints, config, devices, finite, launch, optim, pretrain_data
from bertvault.train.metrics import MetricsLog, Throughput, flops_per_token, mfu
from bertvault.train.model import PretrainingModel

log = logging.getLogger(__name__)


@dataclass
class Result:
    out: Path
    step: int
    model_dir: Path | None
    tf1_dir: Path | None


class Interrupted(TrainingError):
    """Ctrl-C or SIGTERM: a checkpoint was saved; `--resume` continues from it."""

    exit_code = 130


# --- 1. settings and the output folder ------------------------------------------------------------

def check_output(settings: config.PretrainSettings, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None for a new run; refuses to mix two runs in one folder."""
    root = Path(settings.out) / "checkpoints"
    newest = checkpoints.latest(root)
    if resume and newest is None:
        raise TrainingError(f"--resume: {root} holds no checkpoint to resume from; "
                            "start the run without --resume")
    if not resume and newest is not None:
        raise TrainingError(
            f"{settings.out} already holds a run (newest checkpoint {newest.name}); "
            "pass --resume to continue it, or choose another --out"
        )
    return newest


def resolve_settings(file_values: dict, cli_values: dict, resume: bool) -> config.PretrainSettings:
    """Defaults < settings file < command line; on --resume the run's saved settings come first."""
    out = cli_values.get("out") or file_values.get("out")
    if not out:
        raise UsageError("--out is required: the folder for checkpoints, metrics and the final model")
    if resume:
        out = str(Path(out).expanduser().resolve())
        newest = check_output(config.resolve(config.PretrainSettings, {}, {"out": out}), resume=True)
        saved = config.load_saved(config.PretrainSettings, newest / "settings.toml")
        return config.merge_for_resume(saved, {**file_values, **cli_values, "out": out})
    settings = config.absolute_paths(config.resolve(config.PretrainSettings, file_values, cli_values))
    problems = []
    if not settings.from_:
        problems.append("--from is required: a registered name, a checkpoint path, or `scratch`")
    if not settings.data:
        problems.append("--data is required: a text file, prepared shards, TFRecords or a registered dataset")
    if settings.from_ == "scratch" and not settings.config:
        problems.append("--from scratch needs --config base, large or LAYERS-HIDDEN-HEADS")
    if settings.from_ == "scratch" and not settings.vocab:
        problems.append("--from scratch needs --vocab PATH (the vocab.txt to train with)")
    raise_if(problems, UsageError)
    return settings


def finalize(settings: config.PretrainSettings) -> config.PretrainSettings:
    """Fills the defaults that depend on other settings (lr, warmup)."""
    lr = settings.lr or (config.LR_SCRATCH if settings.from_ == "scratch" else config.LR_CONTINUE)
    warmup = settings.warmup if settings.warmup is not None else optim.default_warmup(settings.steps)
    return dataclasses.replace(settings, lr=lr, warmup=warmup)


# --- 2. the model ---------------------------------------------------------------------------------

def load_source(settings: config.PretrainSettings, resume_from: Path | None,
                weights: bool = True) -> checkpoint_io.ModelSource:
    if resume_from is not None:  # the run's own checkpoint: its vocab and case are saved in it
        return checkpoint_io.load_model_source(sources.resolve(str(resume_from), "checkpoint"), weights)
    if settings.from_ == "scratch":
        vocab = Path(settings.vocab)
        if not vocab.is_file():
            raise TrainingError(f"--vocab {vocab}: no such file")
        size = len(vocab_tokens(vocab))
        shape = config.scratch_config(settings.config, size, max(512, settings.seq_len))
        lowercase, _ = sources.decide_case((), vocab.parent, vocab, settings.lowercase)
        return checkpoint_io.ModelSource("scratch", {}, shape, vocab, lowercase)
    source = checkpoint_io.load_model_source(
        sources.resolve(settings.from_, "checkpoint", lowercase=settings.lowercase), weights)
    if settings.vocab:  # checked against the embeddings by check_fit, with a training error of its own
        source.vocab_path = Path(settings.vocab)
    return source


def described(text: str | None) -> dict:
    """The provenance entry of --from (`scratch` has nothing to hash)."""
    return provenance.describe(sources.resolve(text) if text and text != "scratch" else text)


def check_fit(source: checkpoint_io.ModelSource, settings: config.PretrainSettings) -> None:
    """Sequence length within the model's positions; a vocab that indexes its embeddings."""
    positions = source.config.get("max_position_embeddings", 512)
    problems = []
    if settings.seq_len > positions:
        problems.append(f"--seq-len {settings.seq_len} is beyond the model's {positions} positions; "
                        f"use --seq-len {positions} or less")
    if settings.max_predictions > settings.seq_len:
        problems.append(f"--max-predictions {settings.max_predictions} exceeds --seq-len {settings.seq_len}")
    raise_if(problems, TrainingError)
    checkpoint_io.check_vocab(source.config, source.vocab_path, source.state_dict)


def preflight(settings: config.PretrainSettings, resume: bool) -> None:
    """The checks that need no weights, run once before launching many processes (which would
    each report the same problem)."""
    if resume:
        return  # the run's own checkpoint, checked when it was saved
    if settings.from_ != "scratch":
        check_fit(load_source(settings, None, weights=False), settings)
    elif not Path(settings.vocab).is_file():
        raise TrainingError(f"--vocab {settings.vocab}: no such file")
    pretrain_data.check_exists(settings.data)


def build(source: checkpoint_io.ModelSource, settings: config.PretrainSettings):
    check_fit(source, settings)
    model, fresh = checkpoint_io.build_model(source.config, source.state_dict or None, settings.dropout)
    if source.state_dict and any(k.startswith("cls.") for k in fresh):
        log.warning("%s has no pretraining heads: the MLM decoder is tied to the word embeddings, "
                    "its transform and the NSP classifier start fresh (%s)",
                    source.name, ", ".join(sorted(fresh)[:4]) + " ...")
    return model, fresh


# --- 5. one optimizer step --------------------------------------------------------------------------

def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(wrapped, module, micro_batches, device: devices.Device, precision: str, optimizer, scheduler,
               scaler, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over the micro-batches; returns [mlm, nsp, mlm ok, nsp ok, predictions,
    sequences] and the gradient norm before clipping."""
    counts = torch.tensor([sum(float(b["masked_lm_weights"].sum()) for b in micro_batches),
                           sum(float(b["input_ids"].shape[0]) for b in micro_batches)], device=device.device)
    counts = device.all_reduce_sum(counts)  # global predictions and sequences of this step
    sums = torch.zeros(4, device=device.device)
    last = len(micro_batches) - 1
    for i, batch in enumerate(micro_batches):
        sync = contextlib.nullcontext() if i == last else device.no_sync(wrapped)
        with sync:
            with device.autocast(precision):
                out = wrapped(**to_device(batch, device.device))
            # DDP averages gradients over ranks; scaling by the world size makes that a global sum / count.
            loss = (out.mlm_loss / counts[0].clamp(min=1) + out.nsp_loss / counts[1]) * device.world_size
            (scaler.scale(loss) if scaler is not None else loss).backward()
        sums += torch.stack([out.mlm_loss, out.nsp_loss, out.mlm_correct, out.nsp_correct]).detach().float()
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = optim.clip_gradients(module, clip)
    device.optimizer_step(optimizer, scaler)
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    device.mark_step()
    return torch.cat([sums, counts]), grad_norm


def summarize(window: torch.Tensor, device: devices.Device) -> dict[str, float]:
    """Window sums (this rank) -> global means: loss = mlm per prediction + nsp per sequence."""
    totals = device.all_reduce_sum(window[:4].clone())
    mlm, nsp, mlm_ok, nsp_ok = totals.tolist()
    predictions, sequences = window[4:].tolist()  # already global
    mlm_loss, nsp_loss = mlm / max(predictions, 1), nsp / max(sequences, 1)
    return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "mlm_accuracy": mlm_ok / max(predictions, 1), "nsp_accuracy": nsp_ok / max(sequences, 1)}


def progress(step: int, window: torch.Tensor, lr: float, throughput: Throughput, device: devices.Device,
             precision: str, settings: config.PretrainSettings, shape) -> dict:
    """The metrics.jsonl record of a logging step (window sums -> means, throughput, MFU)."""
    record = {"step": step, **summarize(window, device), "lr": lr}
    device.synchronize()
    rate = throughput.rate()
    predicted = float(window[4]) / max(1.0, float(window[5]) * settings.seq_len)
    flops = flops_per_token(shape.num_hidden_layers, shape.hidden_size, settings.seq_len,
                            shape.vocab_size, predicted)
    record["tokens_per_s"] = rate
    utilisation = mfu(rate, flops, device.peak_flops(precision), device.world_size)
    if utilisation is not None:
        record["mfu"] = utilisation
    return record


@torch.no_grad()
def evaluate(module, batches, device: devices.Device, precision: str) -> dict[str, float]:
    """Loss and accuracy on fixed batches (fixed masking), with dropout off."""
    module.eval()
    window = torch.zeros(6, device=device.device)
    for batch in batches:
        with device.autocast(precision):
            out = module(**to_device(batch, device.device))
        examples = torch.tensor(float(batch["input_ids"].shape[0]), device=device.device)
        window += torch.stack([out.mlm_loss, out.nsp_loss, out.mlm_correct, out.nsp_correct,
                               batch["masked_lm_weights"].sum().to(device.device), examples]).float()
        device.mark_step()
    module.train()
    counts = device.all_reduce_sum(window[4:].clone())
    result = summarize(torch.cat([window[:4], counts]), device)
    return {f"eval_{k}": v for k, v in result.items()}


# --- signals ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def stop_requests() -> Iterator[list[str]]:
    """Ctrl-C and SIGTERM set a flag that the loop checks after each step (then it saves and stops)."""
    requested: list[str] = []
    previous = {}

    def handler(signum, frame):
        requested.append(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_agreed(stop: list[str], device: devices.Device) -> bool:
    """Every rank stops at the same step if any of them was asked to."""
    if not device.distributed:
        return bool(stop)
    flag = device.all_reduce_sum(torch.tensor([1.0 if stop else 0.0], device=device.device))
    return bool(flag.item() > 0)


# --- resuming and the loop ----------------------------------------------------------------------------

def restore(saved: checkpoints.Saved, settings, device: devices.Device, optimizer, scheduler, scaler,
            data: pretrain_data.Stream) -> int:
    """Optimizer, schedule, scaler, RNGs and data position from a checkpoint; its step."""
    rank_rng = saved.torch_state["rng"]
    if len(rank_rng) != device.world_size:
        raise TrainingError(f"{saved.folder} was saved by {len(rank_rng)} processes; resume it with as many")
    try:
        optimizer.load_state_dict(saved.torch_state["optimizer"])
        scheduler.load_state_dict(saved.torch_state["scheduler"])
        scheduler.lr_lambdas[0].total = settings.steps  # a resumed run may be given more (or fewer) steps
        if scaler is not None and saved.torch_state.get("scaler"):
            scaler.load_state_dict(saved.torch_state["scaler"])
        device.set_rng_state(rank_rng[device.rank])
        checkpoints.set_python_rng_state(saved.trainer_state["python_rng"][device.rank])
        data.restore(saved.trainer_state["data"][device.rank])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingError(f"checkpoint {saved.folder} does not fit this run ({first}); resume from an "
                            "earlier checkpoint (move this one away)") from None
    return saved.step


@dataclass
class Loop:
    """Steps until --steps: log, evaluate and save on schedule; stop cleanly on Ctrl-C / SIGTERM, and
    with TrainingError before logging or saving anything non-finite."""

    settings: config.PretrainSettings
    device: devices.Device
    precision: str
    wrapped: torch.nn.Module
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    metrics: MetricsLog
    eval_batches: list
    save: object
    shape: object  # the model's config, for the FLOPs of a token

    def run(self, stream: Iterator, step: int, last_saved: int | None,
            stop: list[str]) -> tuple[int, str | None]:
        """Returns the last step and, when a signal stopped the run (`stop` names it), its name."""
        s, device = self.settings, self.device
        tokens_per_step = s.batch_size * s.grad_accum * s.seq_len * device.world_size
        throughput = Throughput()
        window = torch.zeros(6, device=device.device)
        watch = finite.Watch(device, last_saved)
        with devices.out_of_memory_hint(f"a micro-batch of {s.batch_size} × {s.seq_len} tokens"):
            while step < s.steps:
                micro_batches = [next(stream) for _ in range(s.grad_accum)]
                lr = self.scheduler.get_last_lr()[0]  # the rate this step uses
                stats, grad_norm = train_step(self.wrapped, self.module, micro_batches, device,
                                              self.precision, self.optimizer, self.scheduler, self.scaler,
                                              s.clip)
                window += stats
                step += 1
                # With a grad scaler, an inf gradient only skips the step (the scaler's own remedy).
                watch.update(step, stats[:2], grad_norm if self.scaler is None else None)
                throughput.add(tokens_per_step)
                if step % s.log_every == 0 or step == s.steps:
                    watch.check(step)
                    self.metrics.log(progress(step, window, lr, throughput, device, self.precision, s,
                                              self.shape))
                    window.zero_()
                with throughput.paused():
                    stop_now = self._between_steps(step, stop, watch)
                if stop_now:
                    return step, stop[0] if stop else "SIGTERM"
        return step, None

    def _between_steps(self, step: int, stop: list[str], watch: finite.Watch) -> bool:
        """Evaluation and checkpoints; True when the run must stop (a checkpoint was just saved)."""
        s, device = self.settings, self.device
        if self.eval_batches and (step % s.eval_every == 0 or step == s.steps):
            scores = evaluate(self.module, self.eval_batches, device, self.precision)
            self.metrics.log({"step": step, **scores})
        # Ranks agree by an all-reduce, a device sync: only on logging steps (which sync anyway).
        stop_now = stop_agreed(stop, device) if step % s.log_every == 0 or not device.distributed else False
        if (s.save_every and step % s.save_every == 0) or step == s.steps or stop_now:
            watch.check(step, self.module)  # nothing non-finite is ever saved
            self.save(step)
            watch.saved(step)
        return stop_now


# --- the run ------------------------------------------------------------------------------------------

def run(settings: config.PretrainSettings, resume: bool = False, display=None) -> Result:
    """One process's share of a run (the launcher has already started the others)."""
    device = devices.pick(settings.device)
    device.init_process_group()
    try:
        with launch.peers_may_fail(device.distributed):
            return _run(settings, resume, display, device)
    finally:
        device.shutdown()


def _run(settings: config.PretrainSettings, resume: bool, display, device: devices.Device) -> Result:
    settings = finalize(settings)
    out = Path(settings.out)
    resume_from = check_output(settings, resume)
    if device.is_main:
        checkpoints.clean_partial(out / "checkpoints")
        atomic.recover(out)  # an export (model/, tf1/) a kill interrupted
    precision = device.resolve_precision(settings.precision)

    # 2. The model. Every rank builds it from the same seed; fresh heads are identical across ranks.
    torch.manual_seed(settings.seed)
    source = load_source(settings, resume_from)
    model, _ = build(source, settings)
    if device.is_main:  # saves and exports read the vocab; --keep may prune the checkpoint it came from
        source.vocab_path = checkpoints.keep_vocab(source.vocab_path, out)
    module = PretrainingModel(model).to(device.device)
    model.tie_weights()  # moving to an XLA device makes a new parameter per module, which unties the decoder
    if settings.compile:
        module = torch.compile(module)
    wrapped = device.wrap(module)
    lowercase = bool(source.lowercase)

    # 3. Data for this rank.
    data = pretrain_data.open_stream(settings, source.vocab_path, lowercase, out, device)

    # 4. Optimizer and schedule.
    optimizer = optim.build_optimizer(module, settings.optimizer, settings.lr, settings.weight_decay,
                                      (settings.beta1, settings.beta2), settings.eps,
                                      fused=device.fused_optimizer and settings.optimizer == "adamw")
    scheduler = optim.build_schedule(optimizer, settings.schedule, settings.warmup, settings.steps,
                                     settings.poly_power)
    scaler = device.grad_scaler(precision)

    step = 0
    if resume_from is not None:
        step = restore(checkpoints.load(resume_from), settings, device, optimizer, scheduler, scaler, data)
        log.info("resuming from %s (step %d)", resume_from, step)
    else:
        device.seed(settings.seed + device.rank)  # dropout differs per rank, as it would per example

    eval_batches = (pretrain_data.eval_batches(settings, source.vocab_path, lowercase, out, device)
                    if settings.eval_every else [])

    save = saver(settings, device, model, source.vocab_path, lowercase, optimizer, scheduler, scaler, data)

    metrics = MetricsLog(out, device.is_main, resume_step=step if resume_from else None, display=display)
    if device.is_main:
        log.info("pretraining %s on %s (%s, %d process(es)), steps %d..%d", source.name, device.name(),
                 precision, device.world_size, step + 1, settings.steps)
    if eval_batches and step == 0:
        metrics.log({"step": 0, **evaluate(module, eval_batches, device, precision)})

    loop = Loop(settings, device, precision, wrapped, module, optimizer, scheduler, scaler, metrics,
                eval_batches, save, model.config)
    stream = iter(data)
    # Ctrl-C and SIGTERM only set a flag until the run is on its way out: a second one while the
    # checkpoint is written (or the workers are stopped) changes nothing.
    with stop_requests() as stop:
        data.stopping = lambda: bool(stop)  # a wait for streamed shards gives up on Ctrl-C / SIGTERM
        try:
            step, interrupted = loop.run(stream, step, step if resume_from else None, stop)
        finally:
            stream.close()  # stops the data-loader workers whatever ended the loop
            metrics.close()
        if interrupted:
            metrics.message(f"{interrupted}: saved step {step}; continue with --resume")
            raise Interrupted(f"stopped by {interrupted} at step {step}; a checkpoint was saved, "
                              f"continue with `bertvault pretrain --out {out} --resume`")
    data.finish()

    # 6. The final model.
    model_dir, tf1_dir = export(settings, device, model, source.vocab_path, lowercase, step)
    return Result(out, step, model_dir, tf1_dir)


def saver(settings, device: devices.Device, model, vocab_path: Path, lowercase: bool, optimizer, scheduler,
          scaler, data: pretrain_data.Stream):
    """save(step): one checkpoint of the whole run (rank 0 writes; every rank takes part)."""
    ckpt_root = Path(settings.out) / "checkpoints"

    def save(at_step: int) -> Path | None:
        rng = device.all_gather_object({k: v.cpu() for k, v in device.rng_state().items()})
        python_rng = device.all_gather_object(checkpoints.python_rng_state())
        positions = device.all_gather_object(data.state())
        folder = None
        if device.is_main:
            def write_model(tmp: Path) -> None:
                checkpoint_io.save_weights(model, tmp)
                checkpoint_io.save_vocab(tmp, vocab_path, lowercase, model.config.max_position_embeddings)
                config.save(settings, tmp / "settings.toml")

            torch_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                           "scaler": scaler.state_dict() if scaler is not None else {}, "rng": rng}
            folder = checkpoints.save(ckpt_root, at_step, write_model, torch_state,
                                      {"data": positions, "python_rng": python_rng,
                                       "world_size": device.world_size}, settings.keep)
        device.barrier()
        return folder

    return save


def export(settings, device: devices.Device, model, vocab_path: Path, lowercase: bool,
           step: int) -> tuple[Path | None, Path | None]:
    """The final model as an HF folder (and TF1 with --export tf1), each with its provenance."""
    out = Path(settings.out)
    model_dir = tf1_dir = None
    if device.is_main:
        model_dir = checkpoint_io.export_hf(model, vocab_path, lowercase, out / "model")
        if "tf1" in settings.export:
            tf1_dir = checkpoint_io.export_tf1(model, vocab_path, lowercase, out / "tf1")
        record = {"sources": [described(settings.from_), pretrain_data.describe(settings.data)],
                  "steps": step, "settings": dataclasses.asdict(settings)}
        for folder in (model_dir, tf1_dir):
            if folder is not None:
                provenance.write_record(folder, "pretrain", **record)
    device.barrier()
    return model_dir, tf1_dir
