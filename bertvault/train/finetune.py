"""`bertvault finetune`: sentence(-pair) classification or regression from any BERT checkpoint.

A run: read and check the files (columns found as GLUE names them, labels of eval all seen in
train), tokenize with the checkpoint's vocab, build `BertForSequenceClassification` from the
canonical encoder weights, train with AdamW + warmup/linear decay + clipping for --epochs, score
every epoch on --eval, keep the best epoch, write it as an HF folder with its tokenizer, and
predict --test. The defaults are the BERT paper's GLUE recipe (lr 2e-5, batch 32, 3 epochs, seq 128).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bertvault import provenance, sources
from bertvault.errors import DataError, TrainingError, UsageError, raise_if
from bertvault.formats.tokenizer import build_tokenizer, write_files
from bertvault.io.atomic import atomic_output
from bertvault.train import checkpoint_io, config, devices, finite, launch, optim, scores, tables
from bertvault.train.metrics import MetricsLog

log = logging.getLogger(__name__)


@dataclass
class Split:
    """One file, tokenized: ids per row, labels (ids or floats) when the file has them."""

    name: str
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: np.ndarray | None
    index: list[str]


@dataclass
class Result:
    out: Path
    best_epoch: int
    best_scores: dict[str, float]
    model_dir: Path | None
    predictions: Path | None
    history: list[dict] = field(default_factory=list)


# --- data ----------------------------------------------------------------------------------------

def label_names(values: list[str]) -> list[str]:
    """Sorted label names; numerically when they all are numbers (so '0' < '1' < '10')."""
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def read_split(path: str, name: str, columns: tables.Columns, tokenizer, task: str,
               names: list[str] | None, need_label: bool) -> tuple[Split, list[str]]:
    """Returns the split and its raw label strings (for the label-set checks)."""
    table = tables.read_table(path)
    missing = [c for c in (columns.text, columns.pair, columns.label if need_label else None)
               if c is not None and c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))} (it has {', '.join(table.columns)}); "
                        "name the columns with --text-column / --text-pair-column / --label-column")
    rows = table.rows
    texts = [r[columns.text] for r in rows]
    encoded = (tokenizer.encode_batch(list(zip(texts, [r[columns.pair] for r in rows], strict=True)))
               if columns.pair else tokenizer.encode_batch(texts))
    raw = [r.get(columns.label, "").strip() for r in rows] if columns.label and columns.label in table.columns else []
    labels = None
    if raw and need_label:
        if task == "regression":
            labels = regression_labels(path, raw)
        elif names is not None:
            lookup = {n: i for i, n in enumerate(names)}
            unknown = sorted({v for v in raw if v not in lookup})
            if unknown:
                raise DataError(f"{path} has labels the training file never had: {', '.join(unknown[:10])}; "
                                f"training labels are {', '.join(names)}")
            labels = np.array([lookup[v] for v in raw], dtype=np.int64)
    index_name = tables.index_column(table)
    index = [r[index_name] for r in rows] if index_name else [str(i) for i in range(len(rows))]
    split = Split(name, [e.ids for e in encoded], [e.type_ids for e in encoded], labels, index)
    return split, raw


def regression_labels(path: str, raw: list[str]) -> np.ndarray:
    """Finite numbers, or a DataError naming the first rows that are not (`nan` parses as a float, and
    one NaN label turns every loss and weight into NaN)."""
    values, bad = [], []
    for row, text in enumerate(raw, start=1):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or abs(value) > np.finfo(np.float32).max:
            bad.append(f"row {row} ({text!r})")
        values.append(value)
    if bad:
        raise DataError(f"{path}: regression labels must be finite numbers; not so in {', '.join(bad[:5])}"
                        + (f" and {len(bad) - 5} more rows" if len(bad) > 5 else ""))
    return np.array(values, dtype=np.float32)


def read_splits(settings: config.FinetuneSettings, columns: tables.Columns, tokenizer,
                names: list[str]) -> tuple[Split, Split, Split | None]:
    """--train and --eval with their labels, --test (when given) without."""
    train, _ = read_split(settings.train, "train", columns, tokenizer, settings.task, names, True)
    evaluation, _ = read_split(settings.eval, "eval", columns, tokenizer, settings.task, names, True)
    test = None
    if settings.test:
        test_columns = tables.Columns(columns.text, columns.pair, None)
        test, _ = read_split(settings.test, "test", test_columns, tokenizer, settings.task, names, False)
    return train, evaluation, test


def batches(split: Split, order: np.ndarray, batch_size: int, pad_id: int,
            fixed_length: int | None = None):
    """Padded tensors per batch; padding to the batch's longest row (or a fixed length for XLA)."""
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        length = fixed_length or max(len(split.input_ids[i]) for i in rows)
        ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        types = torch.zeros((len(rows), length), dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for j, i in enumerate(rows):
            n = len(split.input_ids[i])
            ids[j, :n] = torch.tensor(split.input_ids[i])
            types[j, :n] = torch.tensor(split.token_type_ids[i])
            mask[j, :n] = 1
        batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        if split.labels is not None:
            batch["labels"] = torch.from_numpy(split.labels[rows])
        yield rows, batch


# --- the model -------------------------------------------------------------------------------------

def build_classifier(source: checkpoint_io.ModelSource, task: str, names: list[str], dropout: float | None):
    from transformers import BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    values = {k: v for k, v in source.config.items() if not k.startswith("_")}
    if dropout is not None:
        values["hidden_dropout_prob"] = values["attention_probs_dropout_prob"] = dropout
    values.update(architectures=["BertForSequenceClassification"])
    if task == "regression":
        values.update(num_labels=1, problem_type="regression")
    else:
        values.update(num_labels=len(names), problem_type="single_label_classification",
                      id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = BertForSequenceClassification._from_config(BertConfig(**values), attn_implementation="sdpa")
    encoder = {k: v for k, v in source.state_dict.items() if k.startswith("bert.")}
    missing, _ = model.load_state_dict(encoder, strict=False)
    lost = [k for k in missing if k.startswith(("bert.encoder", "bert.embeddings.word"))]
    if lost:
        raise TrainingError(f"{source.name}: the checkpoint lacks encoder weights ({', '.join(lost[:4])})")
    return model


# --- evaluation ------------------------------------------------------------------------------------

@torch.no_grad()
def predict(module, split: Split, device: devices.Device, precision: str, batch_size: int, pad_id: int,
            fixed_length: int | None) -> np.ndarray:
    """Logits for every row (each rank does its share, then all gather)."""
    module.eval()
    mine = np.arange(device.rank, len(split.input_ids), device.world_size)
    outputs: list[tuple[int, list[float]]] = []
    for rows, batch in batches(split, mine, batch_size, pad_id, fixed_length):
        batch.pop("labels", None)
        with device.autocast(precision):
            logits = module(**{k: v.to(device.device) for k, v in batch.items()}).logits
        device.mark_step()
        outputs += list(zip(rows.tolist(), logits.float().cpu().tolist(), strict=True))
    module.train()
    gathered = sorted(item for part in device.all_gather_object(outputs) for item in part)
    return np.array([logits for _, logits in gathered], dtype=np.float32)


def score(logits: np.ndarray, split: Split, task: str, num_labels: int) -> dict[str, float]:
    if task == "regression":
        return scores.regression(logits[:, 0], split.labels)
    return scores.classification(logits.argmax(-1), split.labels, num_labels)


# --- the run -----------------------------------------------------------------------------------------

def resolve_settings(file_values: dict, cli_values: dict) -> config.FinetuneSettings:
    settings = config.absolute_paths(config.resolve(config.FinetuneSettings, file_values, cli_values))
    problems = [f"--{name} is required" for name in ("from_", "train", "eval", "out")
                if not getattr(settings, name)]
    raise_if([p.replace("from_", "from") for p in problems], UsageError)
    if settings.metric in ("pearson", "spearman") and settings.task != "regression":
        raise UsageError(f"--metric {settings.metric} is for --task regression; use accuracy, f1 or mcc")
    if settings.metric in ("accuracy", "f1", "mcc") and settings.task == "regression":
        raise UsageError(f"--metric {settings.metric} is for classification; use pearson or spearman")
    return settings


def run(settings: config.FinetuneSettings, display=None) -> Result:
    device = devices.pick(settings.device)
    device.init_process_group()
    try:
        with launch.peers_may_fail(device.distributed):
            return _run(settings, display, device)
    finally:
        device.shutdown()


def _run(settings: config.FinetuneSettings, display, device: devices.Device) -> Result:
    out = Path(settings.out)
    precision = device.resolve_precision(settings.precision)
    torch.manual_seed(settings.seed)

    # The checkpoint and its tokenizer.
    origin = sources.resolve(settings.from_, "checkpoint", lowercase=settings.lowercase)
    source = checkpoint_io.load_model_source(origin)
    positions = source.config.get("max_position_embeddings", 512)
    if settings.max_seq_len > positions:
        raise TrainingError(f"--max-seq-len {settings.max_seq_len} is beyond the model's {positions} positions; "
                            f"use {positions} or less")
    checkpoint_io.check_vocab(source.config, source.vocab_path, source.state_dict)
    lowercase = bool(source.lowercase)
    tokenizer = build_tokenizer(source.vocab_path, lowercase)
    tokenizer.enable_truncation(settings.max_seq_len)
    pad_id = tokenizer.token_to_id("[PAD]")

    # The files: columns from the training file, the label set from its labels.
    train_table = tables.read_table(settings.train)
    columns = tables.detect_columns(train_table, settings.text_column, settings.text_pair_column,
                                    settings.label_column)
    log.info("columns: text %r, pair %r, label %r", columns.text, columns.pair, columns.label)
    train_raw = [r.get(columns.label, "").strip() for r in train_table.rows]
    names = label_names(train_raw) if settings.task == "classification" else []
    if settings.task == "classification" and len(names) < 2:
        raise DataError(f"{settings.train}: every row has the label {names[0]!r}; a classifier needs two or more")
    train, evaluation, test = read_splits(settings, columns, tokenizer, names)
    num_labels = 1 if settings.task == "regression" else len(names)
    metric = settings.metric or ("pearson" if settings.task == "regression" else "accuracy")
    fixed_length = settings.max_seq_len if device.kind == "xla" else None  # static shapes for XLA

    # Model, optimizer, schedule.
    model = build_classifier(source, settings.task, names, settings.dropout)
    module = model.to(device.device)
    if settings.compile:
        module = torch.compile(module)
    wrapped = device.wrap(module)
    per_rank = len(train.input_ids) // device.world_size
    if per_rank < 1:
        raise DataError(f"{settings.train} has {len(train.input_ids)} rows, fewer than the "
                        f"{device.world_size} processes")
    steps_per_epoch = max(1, -(-per_rank // settings.batch_size))
    total = steps_per_epoch * settings.epochs
    optimizer = optim.build_optimizer(model, "adamw", settings.lr, settings.weight_decay, (0.9, 0.999), 1e-6,
                                      fused=device.fused_optimizer)
    scheduler = optim.build_schedule(optimizer, "linear", int(settings.warmup * total), total)
    scaler = device.grad_scaler(precision)
    metrics = MetricsLog(out, device.is_main, display=display)

    best_value, best_epoch, best_scores, best_state = -np.inf, 0, {}, None
    history = []
    device.seed(settings.seed + device.rank)
    step = functools.partial(train_step, wrapped, model, optimizer, scheduler, scaler, device, precision,
                             settings.clip)
    with devices.out_of_memory_hint(f"a batch of {settings.batch_size} × {settings.max_seq_len} tokens"), \
            contextlib.closing(metrics):
        for epoch in range(1, settings.epochs + 1):
            order = np.random.default_rng([settings.seed, epoch]).permutation(len(train.input_ids))
            mine = order[device.rank :: device.world_size][:per_rank]  # the same step count on every rank
            losses = [step(batch) for _, batch in
                      batches(train, mine, settings.batch_size, pad_id, fixed_length)]
            train_loss = float(device.all_reduce_sum(torch.stack(losses).mean().reshape(1))[0]) / device.world_size
            check_finite(epoch, train_loss, model, device)  # before it is scored, logged or kept
            epoch_scores = score(predict(module, evaluation, device, precision, settings.batch_size, pad_id,
                                         fixed_length), evaluation, settings.task, num_labels)
            record = {"step": epoch, "epoch": epoch, "train_loss": train_loss,
                      **{f"eval_{k}": v for k, v in epoch_scores.items()}}
            history.append(record)
            metrics.log(record)
            value = epoch_scores[metric] if math.isfinite(epoch_scores[metric]) else -np.inf
            if best_state is None or value > best_value:
                best_value, best_epoch, best_scores = value, epoch, epoch_scores
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    metrics.message(f"best epoch {best_epoch}: {metric} {best_value:.4f}")

    predictions = None
    if test is not None:
        logits = predict(module, test, device, precision, settings.batch_size, pad_id, fixed_length)
        if device.is_main:
            predictions = write_predictions(out / "predictions.tsv", test, logits, settings.task, names)
    model_dir = None
    if device.is_main:
        model_dir = export(model, source, lowercase, settings, out / "model")
        summary = {"best_epoch": best_epoch, "metric": metric, "scores": best_scores, "labels": names}
        _write_json(out / "eval_results.json", summary)
        provenance.write_record(
            model_dir, "finetune",
            sources=[provenance.describe(origin),
                     *(provenance.describe(sources.resolve(f)) for f in (settings.train, settings.eval))],
            best_epoch=best_epoch, scores=best_scores, settings=dataclasses.asdict(settings))
    device.barrier()
    return Result(out, best_epoch, best_scores, model_dir, predictions, history)


def train_step(wrapped, model, optimizer, scheduler, scaler, device: devices.Device, precision: str,
               clip: float, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One optimizer step on one batch; the loss, left on the device."""
    with device.autocast(precision):
        loss = wrapped(**{k: v.to(device.device) for k, v in batch.items()}).loss
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)
    optim.clip_gradients(model, clip)
    device.optimizer_step(optimizer, scaler)
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    device.mark_step()
    return loss.detach()


def check_finite(epoch: int, train_loss: float, model, device: devices.Device) -> None:
    """A non-finite loss or weight ends the run (exit 8) before that epoch is scored or kept."""
    bad = torch.tensor([float(not math.isfinite(train_loss) or not finite.parameters_finite(model))],
                       device=device.device)
    if float(device.all_reduce_sum(bad)[0]):
        raise TrainingError(f"epoch {epoch}: the training loss or the weights are no longer finite numbers "
                            f"(loss {train_loss}), so nothing of this run was saved; {finite.ADVICE} "
                            "(finetuning usually takes 1e-5 to 5e-5)")


def export(model, source: checkpoint_io.ModelSource, lowercase: bool, settings, target: Path) -> Path:
    """An HF folder for AutoModelForSequenceClassification + AutoTokenizer, written atomically."""
    model = copy.deepcopy(model).cpu()
    with atomic_output(target) as tmp:
        model.save_pretrained(tmp)
        write_files(tmp, source.vocab_path, lowercase, settings.max_seq_len)
        config.save(settings, tmp / "finetune_settings.toml")
    return target


def write_predictions(path: Path, split: Split, logits: np.ndarray, task: str, names: list[str]) -> Path:
    """GLUE's submission layout: `index<TAB>prediction`, label names for classification."""
    if task == "regression":
        values = [f"{v:.6g}" for v in logits[:, 0]]
    else:
        values = [names[i] for i in logits.argmax(-1)]
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("index\tprediction\n" + "".join(f"{i}\t{v}\n" for i, v in zip(split.index, values, strict=True)),
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
