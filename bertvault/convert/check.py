"""Numerical proof of a conversion: the source and the result, each loaded as transformers'
BertForPreTraining on the CPU, run one fixed batch; hidden states, MLM and NSP logits must agree.

The result is loaded the way its users load it: an HF folder through `from_pretrained` (so a key
transformers would leave newly initialised fails the check), anything else through its reader.
When TF1 is on either side, a second witness (oracle.py) runs the TF1 checkpoint by google's names
in float64 against the source's PyTorch model: a written TF1 checkpoint against the model it was
written from, a read one against the model read from it (to which the result is then held).
One model is in memory at a time; models take their weights from the reader's arrays, mapped from
the files where no op changes them, instead of copying them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bertvault.convert.canonical import Canonical, load_canonical
from bertvault.errors import ConversionError

log = logging.getLogger(__name__)

# (absolute, relative to the largest reference value) per the narrowest dtype written.
BOUNDS = {"exact": (1e-5, 0.0), "float16": (1e-3, 1e-2), "bfloat16": (1e-2, 5e-2)}
ORACLE_ATOL = 1e-5


@dataclass
class CheckResult:
    diffs: dict[str, float]
    bound: dict[str, float]
    oracle: dict[str, float] = field(default_factory=dict)
    oracle_bound: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        bad = [f"{k} differs by {v:.3g} (bound {self.bound[k]:.3g})"
               for k, v in self.diffs.items() if v > self.bound[k]]
        bad += [f"TF1 graph {k} differs by {v:.3g} (bound {self.oracle_bound[k]:.3g})"
                for k, v in self.oracle.items() if v > self.oracle_bound[k]]
        return bad

    @property
    def max_diff(self) -> float:
        return max(self.diffs.values(), default=0.0)

    def line(self) -> str:
        parts = ", ".join(f"{k} {v:.3g}" for k, v in self.diffs.items())
        text = f"max |diff| {self.max_diff:.3g} ({parts}; bound {max(self.bound.values(), default=0):.3g})"
        if self.oracle:
            text += "; TF1 graph float64: " + ", ".join(f"{k} {v:.3g}" for k, v in self.oracle.items())
        return text


def fixed_batch(config: dict) -> dict:
    """Two sequences of 16 tokens (fewer if the model allows fewer), segment B in the second half, the
    second sequence padded at the end."""
    import torch

    generator = torch.Generator().manual_seed(1234)
    length = min(16, config["max_position_embeddings"])
    vocab = config["vocab_size"]
    low = min(5, vocab - 1)
    ids = torch.randint(low, vocab, (2, length), generator=generator)
    types = torch.zeros_like(ids)
    if config["type_vocab_size"] > 1:
        types[:, length // 2:] = 1
    mask = torch.ones_like(ids)
    mask[1, length - max(1, length // 4):] = 0
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def outputs(model, batch: dict, groups: list[str]) -> dict:
    import torch

    pooled: list = []  # the pooler's output in this same pass (BertForPreTraining does not return it)
    hook = model.bert.pooler.register_forward_hook(lambda module, args, output: pooled.append(output)) \
        if model.bert.pooler is not None else None
    try:
        with torch.no_grad():
            result = model(**batch, output_hidden_states=True)
    finally:
        if hook is not None:
            hook.remove()
    out = {"hidden": torch.stack(result.hidden_states)}
    if "mlm" in groups:
        out["mlm"] = result.prediction_logits
    if "pooler" in groups:
        out["pooled"] = pooled[0]
    if "nsp" in groups and "pooler" in groups:
        out["nsp"] = result.seq_relationship_logits
    return out


def _narrowest(source: Canonical, dtype: str) -> str:
    if dtype in ("fp16", "bf16"):
        written = {"fp16": "float16", "bf16": "bfloat16"}[dtype]
        sources = {t.dtype.name for t in source.tensors.values()}
        return "exact" if sources == {written} else written
    return "exact"


def _bounds(reference: dict, kind: str) -> dict[str, float]:
    atol, rtol = BOUNDS[kind]
    return {k: atol + rtol * float(v.abs().max()) for k, v in reference.items()}


def _diffs(a: dict, b: dict) -> dict[str, float]:
    return {k: float((a[k].double() - b[k].double()).abs().max()) for k in a}


def _load_hf(folder: Path, source: Canonical):
    """transformers' own loader; every weight the source had must be loaded, none left to init."""
    from transformers import BertForPreTraining
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = BertForPreTraining.from_pretrained(str(folder), output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    real = set(source.tensors) | set(source.tied)
    newly_initialised = sorted(k for k in info.get("missing_keys", []) if k in real)
    if newly_initialised:
        raise ConversionError(f"transformers loads the result with these weights newly initialised: "
                              f"{', '.join(newly_initialised[:5])}")
    return model.float().eval()


def _tf_getter(prefix: Path):
    """The checkpoint's tensors by google's names. TensorFlow's own reader where TensorFlow is
    loaded already (writing TF1 loads it); else bertvault's, which checks each tensor against the
    CRC32C TensorFlow wrote, so the bytes are TensorFlow's either way, without importing TensorFlow
    (3-6 s, more than the rest of the check) only to read them a second time."""
    if "tensorflow" in sys.modules:
        reader = sys.modules["tensorflow"].train.load_checkpoint(str(prefix))
        names = set(reader.get_variable_to_shape_map())
        get = reader.get_tensor
    else:
        from bertvault.formats.tfbundle import BundleReader

        bundle = BundleReader(prefix)
        names, get = set(bundle.entries), bundle.read
    scope = "module/" if "module/bert/embeddings/word_embeddings" in names else ""
    return lambda name: get(scope + name)


@contextlib.contextmanager
def _in_float64(model):
    """Run `model` in float64 one module at a time: each module's own weights become float64 just
    before it runs and get their float32 tensors back right after, so at most one module's weights
    (the word embeddings, at most) exist in float64 at once, never a float64 copy of the model. The
    attention mask follows the embeddings' dtype, so the whole pass computes in float64."""
    saved: dict[int, list] = {}

    def before(module, args) -> None:
        saved[id(module)] = [(p, p.data) for p in module.parameters(recurse=False)]
        for parameter, data in saved[id(module)]:
            parameter.data = data.double()  # tied weights: the one shared Parameter, converted once

    def after(module, args, output) -> None:
        for parameter, data in saved.pop(id(module)):
            parameter.data = data

    owners = [m for m in model.modules() if next(m.parameters(recurse=False), None) is not None]
    handles = [h for m in owners
               for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def _oracle(prefix: Path, model, config: dict, batch: dict, groups: list[str],
            kind: str) -> tuple[dict, dict]:
    """The TF1 graph's float64 outputs against `model`'s, also run in float64."""
    import torch

    from bertvault.convert.oracle import tf1_forward

    witness = tf1_forward(_tf_getter(prefix), config, batch, groups)
    try:
        with _in_float64(model):
            mine = outputs(model, batch, groups)
    except RuntimeError:  # a transformers that mixes dtypes across modules: the whole model in float64
        mine = None
    if mine is None or any(v.dtype != torch.float64 for v in mine.values()):
        log.debug("module-by-module float64 did not hold; running the whole model in float64")
        mine = outputs(model.double(), batch, groups)
    atol, rtol = BOUNDS[kind] if kind != "exact" else (ORACLE_ATOL, 0.0)
    bound = {k: atol + rtol * float(v.abs().max()) for k, v in witness.items()}
    return {k: float((witness[k] - mine[k]).abs().max()) for k in witness}, bound


def _extras(source: Canonical, result: Canonical) -> dict[str, float]:
    """Finetuned heads are not part of BertForPreTraining: compare their tensors directly."""
    diffs = {}
    for name, tensor in source.tensors.items():
        if name.startswith(("classifier.", "qa_outputs.")):
            if name not in result.tensors:
                raise ConversionError(f"the result lacks {name}")
            a = tensor.load().astype(np.float64)
            b = result.tensors[name].load().astype(np.float64)
            diffs[name] = float(np.abs(a - b).max()) if a.size else 0.0
    return diffs


def check_conversion(source: Canonical, result_path: Path, to: str, dtype: str, *,
                     single_file: bool) -> CheckResult:
    batch = fixed_batch(source.config)
    kind = _narrowest(source, dtype)
    # One model in memory at a time, the result's first: mapped from its file, it leaves nothing
    # behind, where the source model's transposed weights leave freed heap the process keeps.
    result = load_canonical(result_path, from_format=to, config=source.config if single_file else None)
    try:
        groups = [g for g in source.groups if g in result.groups]
        model = _load_hf(result_path, source) if to == "hf" else result.to_model(init_missing=False)
        mine = outputs(model, batch, groups)
        del model
        extras = _extras(source, result)
    finally:
        result.close()

    model = source.to_model(init_missing=False)
    reference = outputs(model, batch, groups)
    oracle: dict[str, float] = {}
    oracle_bound: dict[str, float] = {}
    # The TF1 graph witness runs against the source model. Written TF1: the witness reads the
    # result, with the written dtype's bound. Read TF1: it reads the source file, which the source
    # model holds exactly, and the result is held to the source model below.
    if to == "tf1":
        oracle, oracle_bound = _oracle(result_path / "bert_model.ckpt", model, source.config, batch, groups,
                                       kind)
    elif source.format == "tf1" and source.source is not None:
        oracle, oracle_bound = _oracle(source.source, model, source.config, batch, groups, "exact")
    del model
    diffs = _diffs(reference, mine)
    bound = _bounds(reference, kind)
    diffs.update(extras)
    bound.update({k: BOUNDS[kind][0] + BOUNDS[kind][1] for k in extras})
    outcome = CheckResult(diffs, bound, oracle, oracle_bound)
    log.info("check: %s", outcome.line())
    if outcome.failures:
        raise ConversionError(f"numerical check failed: {'; '.join(outcome.failures)}; nothing was written")
    return outcome
