"""Run settings: defaults, a TOML or YAML settings file, command-line overrides; model shapes.

Precedence: built-in defaults < settings file < options given on the command line. The resolved
settings are written beside every checkpoint (`settings.toml`), and `--resume` reads them back.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bertvault.errors import TrainingError, UsageError, raise_if
from bertvault.sizes import parse_size
from bertvault.train.tasks.glue import TASKS as GLUE_TASKS

# google-research/bert: lr 1e-4 from scratch; "2e-5 when continuing from a checkpoint" (README).
LR_SCRATCH = 1e-4
LR_CONTINUE = 2e-5


DISTRIBUTED = "Distributed"
SQUAD = "SQuAD (--task squad)"
FINETUNE_TASKS = ("classification", "regression", "squad", "token-classification",
                  *(f"glue/{name}" for name in GLUE_TASKS))


def setting(default: Any = None, help: str = "", *, flag: str | None = None, shown: str | None = None,
            choices: tuple[str, ...] = (), check: str | None = None, cli: bool = True,
            panel: str | None = None) -> Any:
    """A setting, defined once: its default, its help, and how the command line spells it.

    flag: the option's name when it is not --<field-name>; shown: the default as the help states it
    (when it depends on other settings); choices: allowed values; check: "count" (at least 1),
    "positive", "non-negative", "fraction" (in [0, 1)), "size" (bytes, as sizes.parse_size reads
    them); cli=False: settings files only; panel: a help section."""
    metadata = {"help": help, "flag": flag, "shown": shown, "choices": choices, "check": check, "cli": cli,
                "panel": panel}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


_FROM_HELP = "Registered checkpoint name, a checkpoint path (any format convert reads)"
_PRECISION = ("auto", "fp32", "bf16", "fp16")
_DEVICES = ("auto", "cpu", "cuda", "tpu")
_NPROC = ("Processes per node; >1 re-launches under torchrun (GPUs, or CPU ranks with gloo). With "
          "--device tpu, >1 runs one process per local TPU core (torch_xla).")
_RDZV = "HOST:PORT of node 0, the same on every node."
_ON_DEVICE = "bf16 on GPU/TPU, fp32 on CPU"
_CLIP = "Global gradient norm to clip to; 0 = no clipping."


@dataclass
class PretrainSettings:
    from_: str | None = setting(None, f"{_FROM_HELP}, or `scratch`.", flag="--from")
    config: str | None = setting(None, "With --from scratch: base, large or LAYERS-HIDDEN-HEADS "
                                       "(e.g. 4-256-4).")
    vocab: str | None = setting(None, "vocab.txt (needed with --from scratch; else the checkpoint's own).")
    lowercase: bool | None = setting(None, "Lower-case raw text.", shown="as the checkpoint was trained")
    data: str | None = setting(None, "Raw text, a `bertvault prepare` folder, TFRecord files (file, folder "
                                     "or glob), or a registered dataset.")
    out: str | None = setting(None, "Run folder: checkpoints, metrics.jsonl, the final model.")
    steps: int = setting(1000, "Optimizer steps.", check="count")
    batch_size: int = setting(32, "Sequences per device per micro-batch.", check="count")
    grad_accum: int = setting(1, "Micro-batches per optimizer step.", check="count")
    lr: float | None = setting(None, "Peak learning rate.", check="positive",
                               shown=f"{LR_CONTINUE:g} from a checkpoint, {LR_SCRATCH:g} from scratch "
                                     "(google-research/bert)")
    warmup: int | None = setting(None, "Warmup steps.", check="non-negative",
                                 shown="10% of --steps, at most 10,000")
    schedule: str = setting("linear", "Decay after warmup.", choices=("linear", "poly"))
    poly_power: float = setting(0.5, "Power of the poly decay.", cli=False)
    weight_decay: float = setting(0.01, "Decoupled weight decay.", check="non-negative")
    optimizer: str = setting("adamw", "Optimizer.", choices=("adamw", "lamb"))
    beta1: float = setting(0.9, "Adam beta1.", cli=False)
    beta2: float = setting(0.999, "Adam beta2.", cli=False)
    eps: float = setting(1e-6, "Adam epsilon.", cli=False)
    clip: float = setting(1.0, _CLIP, check="non-negative", cli=False)
    seq_len: int = setting(128, "Tokens per sequence.", check="count")
    max_predictions: int = setting(20, "Masked positions per sequence.", check="count")
    mask_prob: float = setting(0.15, "Share of tokens masked.", check="fraction", cli=False)
    dropout: float | None = setting(None, "Dropout.", check="fraction", shown="the checkpoint's")
    precision: str = setting("auto", "Numeric precision.", choices=_PRECISION, shown=_ON_DEVICE)
    device: str = setting("auto", "Where to train.", choices=_DEVICES)
    compile: bool = setting(False, "torch.compile the model.")
    save_every: int = setting(1000, "Checkpoint every N steps (0: only at the end).", check="non-negative")
    keep: int = setting(3, "Checkpoints to keep.", check="count")
    eval_every: int = setting(0, "Evaluate every N steps, and at the start and the end (0: never).",
                              check="non-negative")
    eval_data: str | None = setting(None, "Held-out data for --eval-every.",
                                    shown="the first batches of --data")
    eval_batches: int = setting(20, "Batches per evaluation.", check="count")
    log_every: int = setting(10, "Metrics every N steps.", check="count")
    seed: int = setting(12345, "Random seed.")
    workers: int = setting(1, "Data-loader worker processes per rank.", check="non-negative")
    stream_cache: str = setting("10GiB", "With --data gs://... (a `bertvault prepare` folder): disk for the "
                                         "shards fetched ahead of training, on each machine (its processes "
                                         "share it).", check="size")
    export: list[str] = setting([], "Also export the final model as (repeatable; tf1: a google-research/bert "
                                    "checkpoint)", choices=("tf1",))
    nproc_per_node: int = setting(1, _NPROC, check="count", panel=DISTRIBUTED)
    nnodes: int = setting(1, "Nodes in the job.", check="count", panel=DISTRIBUTED)
    node_rank: int = setting(0, "This node's rank.", check="non-negative", panel=DISTRIBUTED)
    rdzv_endpoint: str | None = setting(None, _RDZV, panel=DISTRIBUTED)


@dataclass
class FinetuneSettings:
    from_: str | None = setting(None, f"{_FROM_HELP}.", flag="--from")
    task: str = setting("classification", "What to learn.", choices=FINETUNE_TASKS)
    train: str | None = setting(
        None, "Training file: .tsv (GLUE as published), .csv, .jsonl or .parquet; SQuAD .json (squad); CoNLL "
              "text or .jsonl tokens/tags (token-classification); for glue/<name> a GLUE data folder, or "
              "nothing to use the pulled `glue` artifact")
    eval: str | None = setting(None, "Evaluation file, scored every epoch (formats as --train).")
    test: str | None = setting(None, "Unlabelled file to predict (OUT/predictions.tsv).")
    out: str | None = setting(None, "Output folder: model/, metrics.jsonl, eval_results.json.")
    text_column: str | None = setting(None, "Text column name (or 0-based index).", shown="GLUE's")
    text_pair_column: str | None = setting(None, "Second text column, for sentence pairs.")
    label_column: str | None = setting(None, "Label column.", shown="label, score, Quality, ...")
    lowercase: bool | None = setting(None, "Lower-case the text.", shown="as the checkpoint was trained")
    max_seq_len: int = setting(128, "Tokens per example at most.", check="count", shown="128; 384 for squad")
    epochs: int = setting(3, "Passes over the training file.", check="count", shown="3; 2 for squad")
    lr: float = setting(2e-5, "Peak learning rate.", check="positive",
                        shown="2e-5; 3e-5 for squad; 5e-5 for token-classification")
    batch_size: int = setting(32, "Examples per device per step.", check="count", shown="32; 12 for squad")
    warmup: float = setting(0.1, "Warmup, as a fraction of the training steps.", check="fraction", cli=False)
    weight_decay: float = setting(0.01, "Decoupled weight decay.", check="non-negative", cli=False)
    clip: float = setting(1.0, _CLIP, check="non-negative", cli=False)
    dropout: float | None = setting(None, "Dropout.", check="fraction", shown="the checkpoint's")
    metric: str | None = setting(None, "Score that picks the best epoch.", shown="the task's own",
                                 choices=("accuracy", "f1", "mcc", "pearson", "spearman", "exact"))
    precision: str = setting("auto", "Numeric precision.", choices=_PRECISION, shown=_ON_DEVICE)
    device: str = setting("auto", "Where to train.", choices=_DEVICES)
    compile: bool = setting(False, "torch.compile the model.")
    seed: int = setting(42, "Random seed.")
    export: list[str] = setting([], "Also export the best model as (repeatable; tf1: a google-research/bert "
                                    "checkpoint, not for token-classification)", choices=("tf1",))
    save_every: int = setting(0, "Resume checkpoints every N steps (0: at the end of each epoch only).",
                              check="non-negative")
    version_2_with_negative: bool = setting(False, "SQuAD 2.0: questions may have no answer; the threshold "
                                                   "is chosen on --eval.", panel=SQUAD)
    max_query_len: int = setting(64, "Question tokens kept.", check="count", panel=SQUAD)
    doc_stride: int = setting(128, "Tokens between the starts of two windows over a long context.",
                              check="count", panel=SQUAD)
    n_best: int = setting(20, "Start and end candidates per window; answers kept per question.",
                          check="count", panel=SQUAD)
    max_answer_len: int = setting(30, "Tokens in an answer at most.", check="count", panel=SQUAD)
    null_score_diff_threshold: float | None = setting(None, "SQuAD 2.0 no-answer threshold.", panel=SQUAD,
                                                      shown="the eval set's best-F1 threshold")
    nproc_per_node: int = setting(1, _NPROC, check="count", panel=DISTRIBUTED)
    nnodes: int = setting(1, "Nodes in the job.", check="count", panel=DISTRIBUTED)
    node_rank: int = setting(0, "This node's rank.", check="non-negative", panel=DISTRIBUTED)
    rdzv_endpoint: str | None = setting(None, _RDZV, panel=DISTRIBUTED)


# A resumed run must see the same data in the same order: these may change on --resume, nothing else.
RESUMABLE = {"steps", "save_every", "keep", "eval_every", "eval_data", "eval_batches", "log_every", "export",
             "compile", "device", "workers", "stream_cache", "nproc_per_node", "nnodes", "node_rank",
             "rdzv_endpoint", "out"}


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


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
        raise UsageError(f"cannot read settings file {path}: {exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001 - both parsers have their own error classes
        kind = path.suffix.lstrip(".") or "TOML"
        raise UsageError(f"settings file {path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"settings file {path} must hold a table of settings, got {type(data).__name__}")
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
    raise_if(problems + problems_of(settings), UsageError)
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
    raise_if(problems_of(settings), UsageError)


_CHECKS = {
    "count": (lambda v: v >= 1, "must be at least 1"),
    "positive": (lambda v: v > 0, "must be positive"),
    "non-negative": (lambda v: v >= 0, "must not be negative"),
    "fraction": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
}


def problems_of(settings) -> list[str]:
    """Every value outside what its setting allows (choices and checks in the field metadata)."""
    problems = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        choices, check = f.metadata.get("choices"), f.metadata.get("check")
        for item in value if isinstance(value, list) else [value]:
            if choices and item not in choices:
                problems.append(f"{flag_of(f)} must be one of {', '.join(choices)}, got {item!r}")
        if check == "size":
            try:
                parse_size(str(value), flag_of(f))
            except UsageError as exc:
                problems.append(str(exc))
            continue
        number = isinstance(value, int | float) and math.isfinite(value)
        if check and not (number and _CHECKS[check][0](value)):
            problems.append(f"{flag_of(f)} {_CHECKS[check][1]}, got {value}")
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
        raise UsageError(
            f"--config must be {', '.join(SHAPES)} or LAYERS-HIDDEN-HEADS such as 4-256-4, got {text!r}"
        )
    layers, hidden, heads = (int(x) for x in match.groups())
    if hidden % heads:
        raise UsageError(f"--config {text}: hidden {hidden} is not a multiple of heads {heads}")
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
