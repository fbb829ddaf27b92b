"""Applying a key map: format names <-> canonical names, as pure functions over lazy state dicts.

Reading checks that every source key is mapped or explicitly dropped, that every canonical key of a
present group is produced, and that every shape agrees with the config. Writing checks that the
target format can hold every canonical key. Both collect every problem and raise once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from bertvault.convert import ops as tensor_ops
from bertvault.convert.keymap import KeyMap
from bertvault.convert.schema import HEADS, load_schema, resolve_shape, shape_symbols
from bertvault.errors import ConversionError, raise_if
from bertvault.formats.tensors import Entry, LazyTensor, is_float

log = logging.getLogger(__name__)

MAX_LISTED = 6


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


@dataclass
class ReadReport:
    format: str
    mapped: int = 0
    dropped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # reason -> keys
    groups: list[str] = field(default_factory=list)
    tied_in_source: list[str] = field(default_factory=list)
    num_labels: int | None = None

    @property
    def heads(self) -> list[str]:
        return [g for g in self.groups if g in HEADS]


def _tie_checked(owner: LazyTensor, alias: LazyTensor, owner_name: str, alias_name: str) -> LazyTensor:
    def load(array: np.ndarray) -> np.ndarray:
        if not np.array_equal(array, alias.load().astype(array.dtype)):
            raise ConversionError(
                f"{alias.origin} differs from {owner.origin}: BERT ties {alias_name} to {owner_name} and the "
                "canonical form keeps one copy; an untied decoder would be lost, so it is not converted"
            )
        return array

    return owner.then(load, owner.shape)


def plan_read(keymap: KeyMap, entries: Mapping[str, Entry], loader: Callable[[str], np.ndarray],
              config: dict) -> tuple[dict[str, LazyTensor], ReadReport]:
    """Source tensors (by their own names) -> canonical tensors, nothing read yet."""
    schema = load_schema()
    layers = config["num_hidden_layers"]
    symbols = shape_symbols(config)
    free: dict[str, int] = {}
    report = ReadReport(keymap.name)

    refused = [(name, reason) for name in entries if (reason := schema.refusal(name))]
    if refused:
        names = _listing([n for n, _ in refused])
        raise ConversionError(f"refusing to convert: {names} marks {refused[0][1]}")

    problems: list[str] = []
    unknown: list[str] = []
    out: dict[str, LazyTensor] = {}
    aliases: dict[str, LazyTensor] = {}
    reported: set[str] = set()  # targets whose problem is already told, not to be called missing too
    for raw in sorted(entries):
        entry = entries[raw]
        normalized = keymap.normalize(raw)
        reason = keymap.drop_reason(raw, normalized, layers)
        if reason is not None:
            report.dropped[reason].append(raw)
            continue
        found = keymap.read_rule(normalized, layers)
        if found is None:
            unknown.append(raw)
            continue
        rule, bindings = found
        if "i" in bindings and not 0 <= bindings["i"] < layers:
            problems.append(f"{raw} is layer {bindings['i']}, but the config has {layers} layers (0-{layers - 1})")
            continue
        target = rule.target.render(bindings, "target", keymap.choices, layers)
        if not is_float(entry.dtype):
            problems.append(f"{raw} holds {entry.dtype}, expected floating-point weights")
            continue
        tensor = LazyTensor(tuple(entry.shape), entry.dtype, raw, lambda raw=raw: loader(raw), entry.region)
        if rule.source_shape is not None:
            expected = resolve_shape(rule.source_shape, symbols, free)
            if expected != tensor.shape:
                problems.append(f"{raw} has shape {list(tensor.shape)}, the config needs {list(expected or rule.source_shape)}")
                reported.add(target)
                continue
        try:
            for op in rule.ops:
                tensor = tensor_ops.forward(op, tensor, symbols)
        except tensor_ops.OpError as exc:
            problems.append(f"{raw}: {exc}")
            reported.add(target)
            continue
        if target in out or target in aliases:
            other = (out.get(target) or aliases[target]).origin
            problems.append(f"{other} and {raw} both map to {target}; keep one")
            continue
        if target in schema.ties:
            aliases[target] = tensor
            continue
        looked_up = schema.lookup(target)
        if looked_up is None:
            problems.append(f"{raw} maps to {target}, which is not a BERT weight")
            continue
        spec, _ = looked_up
        expected = resolve_shape(spec.shape, symbols, free, tensor.shape)
        if expected != tensor.shape:
            problems.append(
                f"{raw} has shape {list(tensor.shape)} as {target}; the config needs {list(expected or spec.shape)}"
            )
            reported.add(target)
            continue
        out[target] = tensor

    if unknown:
        problems.append(
            f"{len(unknown)} key(s) that {keymap.path.name} does not map: {_listing(unknown)}; "
            f"if this is not a {keymap.name} checkpoint, pass --from-format"
        )

    for alias, tensor in aliases.items():
        owner = schema.ties[alias]
        report.tied_in_source.append(tensor.origin)
        if owner in out:
            if out[owner].shape != tensor.shape:
                problems.append(f"{tensor.origin} has shape {list(tensor.shape)} but its tied {owner} has {list(out[owner].shape)}")
            else:
                out[owner] = _tie_checked(out[owner], tensor, owner, alias)
        else:  # only the decoder copy was saved: it is the owner's value
            spec, _ = schema.lookup(owner)  # type: ignore[misc]
            expected = resolve_shape(spec.shape, symbols, free, tensor.shape)
            if expected != tensor.shape:
                problems.append(f"{tensor.origin} has shape {list(tensor.shape)}; the config needs {list(expected or spec.shape)}")
            else:
                out[owner] = tensor

    present_groups = []
    for name, group in schema.groups.items():
        expected_keys = schema.keys(name, layers)
        missing = [k for k in expected_keys if k not in out and k not in reported]
        if any(k in out for k in expected_keys):
            present_groups.append(name)
        if missing and (group.required or len(missing) < len(expected_keys)):
            what = "required" if group.required else "partly present"
            problems.append(f"the {what} {name} group lacks {_listing(missing)}")
    raise_if(problems, ConversionError)

    report.mapped = len(entries) - sum(len(v) for v in report.dropped.values())
    report.groups = present_groups
    report.num_labels = free.get("num_labels")
    ordered = {k: out[k] for k in schema.ordered(set(out), layers)}
    return ordered, report


def plan_write(keymap: KeyMap, tensors: Mapping[str, LazyTensor], config: dict, *,
               drop_heads: bool = False) -> tuple[list[tuple[str, LazyTensor]], list[str]]:
    """Canonical tensors -> (name in the target format, tensor) pairs, and the heads left out."""
    schema = load_schema()
    layers = config["num_hidden_layers"]
    symbols = shape_symbols(config)
    problems: list[str] = []
    unwritable: dict[str, list[str]] = defaultdict(list)
    written: dict[str, str] = {}
    out: list[tuple[str, LazyTensor]] = []
    for canonical, tensor in tensors.items():
        found = keymap.write_rule(canonical, layers)
        if found is None:
            looked_up = schema.lookup(canonical)
            unwritable[looked_up[0].group if looked_up else "unknown"].append(canonical)
            continue
        rule, bindings = found
        name = rule.source.render(bindings, "source", keymap.choices, layers)
        if name in written:
            problems.append(f"{written[name]} and {canonical} would both be written as {name}")
            continue
        written[name] = canonical
        try:
            if rule.source_shape is not None:
                free = {"num_labels": tensor.shape[0]}
                start = resolve_shape(rule.source_shape, symbols, free)
                if start is None:
                    raise tensor_ops.OpError(f"source_shape {list(rule.source_shape)} uses unknown symbols")
            else:
                start = tensor.shape
                for op in reversed(rule.ops):
                    if op == "transpose":
                        start = (start[1], start[0])
            chain = tensor_ops.shape_chain(rule.ops, start, symbols)
            if chain[-1] != tensor.shape:
                raise tensor_ops.OpError(f"ops give {list(chain[-1])}, the tensor is {list(tensor.shape)}")
            for k in reversed(range(len(rule.ops))):
                tensor = tensor_ops.backward(rule.ops[k], tensor, chain[k])
        except tensor_ops.OpError as exc:
            problems.append(f"{canonical} -> {name}: {exc}")
            continue
        out.append((name, tensor))

    heads = [g for g in unwritable if g in HEADS]
    if heads and drop_heads:
        log.info("not written (%s has no place for them): %s", keymap.name,
                 _listing([n for g in heads for n in unwritable[g]]))
    elif heads:
        problems.append(
            f"the {keymap.name} layout holds no {', '.join(heads)} weights "
            f"({_listing([n for g in heads for n in unwritable[g]])}); pass --drop-heads to write the rest without them"
        )
    for group, names in unwritable.items():
        if group not in HEADS:
            problems.append(f"the {keymap.name} layout cannot hold {_listing(names)}")
    left_out = heads if drop_heads else []
    raise_if(problems, ConversionError)
    return out, left_out
