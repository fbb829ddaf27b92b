"""Numerical proof of a conversion: the source and the result, each loaded as transformers'
BertForPreTraining on the CPU, run one fixed batch; hidden states, MLM and NSP logits must agree.

The result is loaded the way its users load it: an HF folder through `from_pretrained` (so a key
transformers would leave newly initialised fails the check), anything else through its reader.
When TF1 is on either side, a second witness (oracle.py) runs the TF1 checkpoint by google's names
in float64 against the PyTorch model of the other side.
"""

from __future__ import annotations

import logging
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
        bad = [f"{k} differs by {v:.3g} (bound {self.bound[k]:.3g})" for k, v in self.diffs.items() if v > self.bound[k]]
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

    with torch.no_grad():
        result = model(**batch, output_hidden_states=True)
        out = {"hidden": torch.stack(result.hidden_states)}
        if "mlm" in groups:
            out["mlm"] = result.prediction_logits
        if "pooler" in groups:
            out["pooled"] = model.bert(**batch).pooler_output
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
    """TensorFlow's own reader when it is installed (independent of bertvault's), else bertvault's."""
    try:
        from bertvault.formats._tf import tensorflow

        reader = tensorflow().train.load_checkpoint(str(prefix))
        names = set(reader.get_variable_to_shape_map())
        get = reader.get_tensor
    except ConversionError:
        from bertvault.formats.tfbundle import BundleReader

        bundle = BundleReader(prefix)
        names, get = set(bundle.entries), bundle.read
    scope = "module/" if "module/bert/embeddings/word_embeddings" in names else ""
    return lambda name: get(scope + name)


def _oracle(prefix: Path, model, config: dict, batch: dict, groups: list[str], kind: str) -> tuple[dict, dict]:
    import torch

    from bertvault.convert.oracle import tf1_forward

    witness = tf1_forward(_tf_getter(prefix), config, batch, groups)
    model = model.double()
    try:
        mine = outputs(model, batch, groups)
    finally:
        model.float()
    atol, rtol = BOUNDS[kind] if kind != "exact" else (ORACLE_ATOL, 0.0)
    bound = {k: atol + rtol * float(v.abs().max()) for k, v in witness.items()}
    return {k: float((witness[k] - mine[k].to(torch.float64)).abs().max()) for k in witness}, bound


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


def check_conversion(source: Canonical, result_path: Path, to: str, dtype: str, *, single_file: bool) -> CheckResult:
    batch = fixed_batch(source.config)
    groups = list(source.groups)
    kind = _narrowest(source, dtype)
    model = source.to_model(init_missing=False)
    reference = outputs(model, batch, groups)
    oracle: dict[str, float] = {}
    oracle_bound: dict[str, float] = {}
    if to == "tf1":
        oracle, oracle_bound = _oracle(result_path / "bert_model.ckpt", model, source.config, batch, groups, kind)
    del model

    result = load_canonical(result_path, from_format=to, config=source.config if single_file else None)
    try:
        lost = [g for g in groups if g not in result.groups]
        model = _load_hf(result_path, source) if to == "hf" else result.to_model(init_missing=False)
        groups = [g for g in groups if g not in lost]
        mine = outputs(model, batch, groups)
        if source.format in ("tf1",) and source.source is not None:
            oracle, oracle_bound = _oracle(source.source, model, source.config, batch, groups, kind)
        del model
        reference = {k: v for k, v in reference.items() if k in mine}
        diffs = _diffs(reference, mine)
        bound = _bounds(reference, kind)
        extras = _extras(source, result)
        diffs.update(extras)
        bound.update({k: BOUNDS[kind][0] + BOUNDS[kind][1] for k in extras})
    finally:
        result.close()
    outcome = CheckResult(diffs, bound, oracle, oracle_bound)
    log.info("check: %s", outcome.line())
    if outcome.failures:
        raise ConversionError(f"numerical check failed: {'; '.join(outcome.failures)}; nothing was written")
    return outcome
