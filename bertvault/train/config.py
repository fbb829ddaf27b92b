"""Run settings: defaults, a TOML or YAML settings file, command-line overrides; model shapes.

Precedence: built-in defaults < settings file < options given on the command line. The resolved
settings are written beside every checkpoint (`settings.toml`), and `--resume` reads them back.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bertvault.errors import ManifestError, TrainingError, raise_if
from bertvault.train.tasks.glue import TASKS as GLUE_TASKS

# google-research/bert: lr 1e-4 from scratch; "2e-5 when continuing from a checkpoint" (README).
LR_SCRATCH = 1e-4
LR_CONTINUE = 2e-5


@dataclass
class PretrainSettings:
    from_: str | None = None  # a registered name, a path, or "scratch"
    config: str | None = None  # scratch shape: base | large | L-H-A
    vocab: str | None = None  # scratch: the vocab.txt to use
    lowercase: bool | None = None  # raw text: lower-case it (default: what the checkpoint was trained with)
    data: str | None = None
    out: str | None = None
    steps: int = 1000
    batch_size: int = 32  # per device, per micro-batch
    grad_accum: int = 1
    lr: float | None = None  # None: LR_CONTINUE from a checkpoint, LR_SCRATCH from scratch
    warmup: int | None = None  # steps; None: 10% of --steps (at most 10,000)
    schedule: str = "linear"  # linear | poly
    poly_power: float = 0.5
    weight_decay: float = 0.01
    optimizer: str = "adamw"  # adamw | lamb
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-6
    clip: float = 1.0  # global gradient norm; 0 = no clipping
    seq_len: int = 128
    max_predictions: int = 20
    mask_prob: float = 0.15
    dropout: float | None = None  # None: the checkpoint's own
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | tpu
    compile: bool = False
    save_every: int = 1000
    keep: int = 3
    eval_every: int = 0
    eval_data: str | None = None
    eval_batches: int = 20
    log_every: int = 10
    seed: int = 12345
    workers: int = 1
    export: list[str] = field(default_factory=list)  # "tf1"
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None


@dataclass
class FinetuneSettings:
    from_: str | None = None
    task: str = "classification"  # classification | regression | squad | token-classification | glue/<name>
    train: str | None = None
    eval: str | None = None
    test: str | None = None
    out: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    lowercase: bool | None = None
    max_seq_len: int = 128
    epochs: int = 3
    lr: float = 2e-5
    batch_size: int = 32
    warmup: float = 0.1  # fraction of the training steps
    weight_decay: float = 0.01
    clip: float = 1.0
    dropout: float | None = None
    metric: str | None = None  # the one that picks the best epoch; default accuracy / pearson
    precision: str = "auto"
    device: str = "auto"
    compile: bool = False
    seed: int = 42
    export: list[str] = field(default_factory=list)  # "tf1": also a google-research/bert checkpoint
    save_every: int = 0  # steps between resume checkpoints (0: at the end of each epoch only)
    # --task squad: google-research/bert run_squad.py's settings
    version_2_with_negative: bool = False  # SQuAD v2.0: questions may have no answer
    max_query_len: int = 64  # question tokens kept
    doc_stride: int = 128  # tokens between the starts of two windows over a long context
    n_best: int = 20  # start and end candidates per window, answers kept per question
    max_answer_len: int = 30  # tokens in an answer at most
    null_score_diff_threshold: float | None = None  # v2.0; None: the eval set's best-F1 threshold
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None


FINETUNE_TASKS = ("classification", "regression", "squad", "token-classification",
                  *(f"glue/{name}" for name in GLUE_TASKS))

CHOICES: dict[str, tuple[str, ...]] = {
    "schedule": ("linear", "poly"),
    "optimizer": ("adamw", "lamb"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "device": ("auto", "cpu", "cuda", "tpu"),
    "task": FINETUNE_TASKS,
    "metric": ("accuracy", "f1", "mcc", "pearson", "spearman", "exact"),
}
POSITIVE = ("steps", "batch_size", "grad_accum", "seq_len", "max_predictions", "keep", "log_every",
            "epochs", "max_seq_len", "eval_batches", "nproc_per_node", "nnodes", "max_query_len",
            "doc_stride", "n_best", "max_answer_len")
NON_NEGATIVE = ("save_every", "eval_every", "weight_decay", "clip", "workers", "node_rank")

# A resumed run must see the same data in the same order: these may change on --resume, nothing else.
RESUMABLE = {"steps", "save_every", "keep", "eval_every", "eval_data", "eval_batches", "log_every", "export",
             "compile", "device", "workers", "nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "out"}


def _key(name: str) -> str:
    name = name.replace("-", "_")
    return "from_" if name == "from" else name


def _public(name: str) -> str:
    return "from" if name == "from_" else name


def read_settings_file(path: Path, section: str) -> dict[str, Any]:
    """A TOML or YAML file: top-level keys, or the same keys under a [pretrain] / [finetune] table."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read settings file {path}: {exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001 - both parsers have their own error classes
        kind = path.suffix.lstrip(".") or "TOML"
        raise ManifestError(f"settings file {path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"settings file {path} must hold a table of settings, got {type(data).__name__}")
    if isinstance(data.get(section), dict):
        data = data[section]
    return {_key(k): v for k, v in data.items()}


def resolve(cls: type, file_values: dict[str, Any], cli_values: dict[str, Any]):
    """Defaults < file < command line; every unknown key or bad value reported at once."""
    names = {f.name: f for f in fields(cls)}
    merged = {**file_values, **{k: v for k, v in cli_values.items() if v is not None}}
    problems = [f"unknown setting {_public(k)!r}" for k in merged if k not in names]
    values: dict[str, Any] = {}
    for key, value in merged.items():
        if key not in names:
            continue
        try:
            values[key] = _coerce(value, names[key])
        except (TypeError, ValueError) as exc:
            problems.append(f"setting {_public(key)!r}: {exc}")
    settings = cls(**values)
    raise_if(problems + problems_of(settings))
    return settings


def _coerce(value: Any, f: dataclasses.Field) -> Any:
    kind = str(f.type)
    if value is None:
        return None
    if kind.startswith("list"):
        return [str(v) for v in (value if isinstance(value, list | tuple) else [value])]
    if kind.startswith("bool"):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        return bool(value)
    if kind.startswith("int"):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    if kind.startswith("float"):
        return float(value)
    return str(value)


def validate(settings) -> None:
    raise_if(problems_of(settings))


# Range checks by setting: (settings, the test a value must pass, what the message says).
RANGES = (
    (POSITIVE, lambda v: v > 0, "must be at least 1"),
    (NON_NEGATIVE, lambda v: v >= 0, "must not be negative"),
    (("mask_prob", "dropout"), lambda v: 0 <= v < 1, "must be in [0, 1)"),
)


def problems_of(settings) -> list[str]:
    problems = []
    for name, allowed in CHOICES.items():
        value = getattr(settings, name, None)
        if value is not None and value not in allowed:
            problems.append(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, got {value!r}")
    for names, ok, rule in RANGES:
        values = {name: getattr(settings, name, None) for name in names}
        problems += [f"--{name.replace('_', '-')} {rule}, got {value}" for name, value in values.items()
                     if value is not None and not ok(value)]
    if getattr(settings, "lr", None) is not None and settings.lr <= 0:
        problems.append(f"--lr must be positive, got {settings.lr}")
    for item in getattr(settings, "export", []):
        if item != "tf1":
            problems.append(f"--export must be tf1, got {item!r}")
    return problems


PATH_SETTINGS = ("from_", "data", "vocab", "eval_data", "out", "train", "eval", "test")


def absolute_paths(settings):
    """Paths that exist (and --out) made absolute, so a saved run resumes from any working folder."""
    updates = {}
    for name in PATH_SETTINGS:
        value = getattr(settings, name, None)
        if value and (name == "out" or Path(value).expanduser().exists()):
            updates[name] = str(Path(value).expanduser().resolve())
    return dataclasses.replace(settings, **updates)


def to_dict(settings) -> dict[str, Any]:
    """The settings as a TOML-ready table (None values left out, `from_` written as `from`)."""
    return {_public(k): v for k, v in dataclasses.asdict(settings).items() if v is not None}


def save(settings, path: Path) -> None:
    import tomli_w

    path.write_text(tomli_w.dumps(to_dict(settings)), encoding="utf-8")


def load_saved(cls: type, path: Path):
    data = read_settings_file(path, "")
    return resolve(cls, data, {})


def merge_for_resume(saved, cli_values: dict[str, Any]):
    """The saved settings with the few command-line changes a resumed run may make."""
    conflicts = []
    updates = {}
    for key, value in cli_values.items():
        if value is None or key not in {f.name for f in fields(saved)}:
            continue
        current = getattr(saved, key)
        if key in PATH_SETTINGS and Path(str(value)).expanduser().exists():
            value = str(Path(str(value)).expanduser().resolve())
        if key in RESUMABLE:
            updates[key] = value
        elif _coerce(value, next(f for f in fields(saved) if f.name == key)) != current:
            option = _public(key).replace("_", "-")
            conflicts.append(f"--{option} {value} (the run was started with {current})")
    if conflicts:
        raise TrainingError(
            "--resume continues the run with its saved settings; these differ: " + ", ".join(conflicts)
            + ". Drop them, or start a new run in another --out folder"
        )
    merged = dataclasses.replace(saved, **{k: _coerce(v, next(f for f in fields(saved) if f.name == k))
                                           for k, v in updates.items()})
    validate(merged)
    return merged


# --- model shapes ---------------------------------------------------------------------------------

SHAPES = {"base": (12, 768, 12), "large": (24, 1024, 16), "medium": (8, 512, 8), "small": (4, 512, 8),
          "mini": (4, 256, 4), "tiny": (2, 128, 2)}


def parse_shape(text: str) -> tuple[int, int, int]:
    """`base`, `large` (and the Google small-BERT names) or `L-H-A` such as `4-256-4`."""
    if text in SHAPES:
        return SHAPES[text]
    match = re.fullmatch(r"L?(\d+)-H?(\d+)-A?(\d+)", text.strip())
    if not match:
        raise ManifestError(
            f"--config must be {', '.join(SHAPES)} or LAYERS-HIDDEN-HEADS such as 4-256-4, got {text!r}"
        )
    layers, hidden, heads = (int(x) for x in match.groups())
    if hidden % heads:
        raise ManifestError(f"--config {text}: hidden {hidden} is not a multiple of heads {heads}")
    return layers, hidden, heads


def scratch_config(shape: str, vocab_size: int, max_positions: int = 512) -> dict[str, Any]:
    """An HF BertConfig dict with Google's hyper-parameters (intermediate = 4 × hidden)."""
    layers, hidden, heads = parse_shape(shape)
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_positions,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
