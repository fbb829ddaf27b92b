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
from bertvault.convert.keymap import KeyMap, Rule
from bertvault.convert.schema import HEADS, Schema, load_schema, resolve_shape, shape_symbols
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
    reading = _Reading(keymap, loader, schema, config["num_hidden_layers"], shape_symbols(config))
    _refuse_marked(schema, entries)
    for raw in sorted(entries):
        reading.take(raw, entries[raw])
    reading.tell_unknown()
    reading.resolve_ties()
    present_groups = reading.check_groups()
    raise_if(reading.problems, ConversionError)

    report = reading.report
    report.mapped = len(entries) - sum(len(v) for v in report.dropped.values())
    report.groups = present_groups
    report.num_labels = reading.free.get("num_labels")
    ordered = {k: reading.out[k] for k in schema.ordered(set(reading.out), reading.layers)}
    return ordered, report


def _refuse_marked(schema: Schema, entries: Mapping[str, Entry]) -> None:
    refused = [(name, reason) for name in entries if (reason := schema.refusal(name))]
    if refused:
        names = _listing([n for n, _ in refused])
        raise ConversionError(f"refusing to convert: {names} marks {refused[0][1]}")


@dataclass
class _Reading:
    """What plan_read gathers while it walks the source keys in order; every problem is kept, to be
    raised once at the end."""

    keymap: KeyMap
    loader: Callable[[str], np.ndarray]
    schema: Schema
    layers: int
    symbols: dict[str, int]
    free: dict[str, int] = field(default_factory=dict)  # sizes the config leaves open (num_labels)
    report: ReadReport = field(init=False)
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    out: dict[str, LazyTensor] = field(default_factory=dict)
    aliases: dict[str, LazyTensor] = field(default_factory=dict)
    # targets whose problem is already told, not to be called missing too
    reported: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.report = ReadReport(self.keymap.name)

    def take(self, raw: str, entry: Entry) -> None:
        """One source key: dropped, unknown, refused with a problem, or placed under its canonical name."""
        normalized = self.keymap.normalize(raw)
        reason = self.keymap.drop_reason(raw, normalized, self.layers)
        if reason is not None:
            self.report.dropped[reason].append(raw)
            return
        found = self._target(raw, normalized)
        if found is None:
            return
        rule, target = found
        tensor = self._as_canonical(raw, entry, rule, target)
        if tensor is not None:
            self._place(raw, target, tensor)

    def _target(self, raw: str, normalized: str) -> tuple[Rule, str] | None:
        found = self.keymap.read_rule(normalized, self.layers)
        if found is None:
            self.unknown.append(raw)
            return None
        rule, bindings = found
        layers = self.layers
        if "i" in bindings and not 0 <= bindings["i"] < layers:
            self.problems.append(
                f"{raw} is layer {bindings['i']}, but the config has {layers} layers (0-{layers - 1})"
            )
            return None
        return rule, rule.target.render(bindings, "target", self.keymap.choices, layers)

    def _as_canonical(self, raw: str, entry: Entry, rule: Rule, target: str) -> LazyTensor | None:
        """The source tensor, its shape checked, with the rule's ops applied (lazily)."""
        if not is_float(entry.dtype):
            self.problems.append(f"{raw} holds {entry.dtype}, expected floating-point weights")
            return None
        loader = self.loader
        tensor = LazyTensor(tuple(entry.shape), entry.dtype, raw, lambda: loader(raw), entry.region)
        if rule.source_shape is not None:
            expected = resolve_shape(rule.source_shape, self.symbols, self.free)
            if expected != tensor.shape:
                self.problems.append(
                    f"{raw} has shape {list(tensor.shape)}, "
                    f"the config needs {list(expected or rule.source_shape)}"
                )
                self.reported.add(target)
                return None
        try:
            for op in rule.ops:
                tensor = tensor_ops.forward(op, tensor, self.symbols)
        except tensor_ops.OpError as exc:
            self.problems.append(f"{raw}: {exc}")
            self.reported.add(target)
            return None
        return tensor

    def _place(self, raw: str, target: str, tensor: LazyTensor) -> None:
        if target in self.out or target in self.aliases:
            other = (self.out.get(target) or self.aliases[target]).origin
            self.problems.append(f"{other} and {raw} both map to {target}; keep one")
            return
        if target in self.schema.ties:
            self.aliases[target] = tensor
            return
        looked_up = self.schema.lookup(target)
        if looked_up is None:
            self.problems.append(f"{raw} maps to {target}, which is not a BERT weight")
            return
        spec, _ = looked_up
        expected = resolve_shape(spec.shape, self.symbols, self.free, tensor.shape)
        if expected != tensor.shape:
            self.problems.append(
                f"{raw} has shape {list(tensor.shape)} as {target}; "
                f"the config needs {list(expected or spec.shape)}"
            )
            self.reported.add(target)
            return
        self.out[target] = tensor

    def tell_unknown(self) -> None:
        if self.unknown:
            self.problems.append(
                f"{len(self.unknown)} key(s) that {self.keymap.path.name} does not map: "
                f"{_listing(self.unknown)}; "
                f"if this is not a {self.keymap.name} checkpoint, pass --from-format"
            )

    def resolve_ties(self) -> None:
        """A tied copy in the source is checked against its owner, or stands in for an owner not saved."""
        for alias, tensor in self.aliases.items():
            owner = self.schema.ties[alias]
            self.report.tied_in_source.append(tensor.origin)
            if owner in self.out:
                self._check_tie(owner, alias, tensor)
            else:  # only the decoder copy was saved: it is the owner's value
                self._stand_in(owner, tensor)

    def _check_tie(self, owner: str, alias: str, tensor: LazyTensor) -> None:
        held = self.out[owner]
        if held.shape != tensor.shape:
            self.problems.append(
                f"{tensor.origin} has shape {list(tensor.shape)} but its tied {owner} has {list(held.shape)}"
            )
        else:
            self.out[owner] = _tie_checked(held, tensor, owner, alias)

    def _stand_in(self, owner: str, tensor: LazyTensor) -> None:
        spec, _ = self.schema.lookup(owner)  # type: ignore[misc]
        expected = resolve_shape(spec.shape, self.symbols, self.free, tensor.shape)
        if expected != tensor.shape:
            self.problems.append(
                f"{tensor.origin} has shape {list(tensor.shape)}; "
                f"the config needs {list(expected or spec.shape)}"
            )
        else:
            self.out[owner] = tensor

    def check_groups(self) -> list[str]:
        """The groups present; a required or partly present group must be complete."""
        present_groups = []
        for name, group in self.schema.groups.items():
            expected_keys = self.schema.keys(name, self.layers)
            missing = [k for k in expected_keys if k not in self.out and k not in self.reported]
            if any(k in self.out for k in expected_keys):
                present_groups.append(name)
            if missing and (group.required or len(missing) < len(expected_keys)):
                what = "required" if group.required else "partly present"
                self.problems.append(f"the {what} {name} group lacks {_listing(missing)}")
        return present_groups


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
            unwritable[_group_of(schema, canonical)].append(canonical)
            continue
        rule, bindings = found
        name = rule.source.render(bindings, "source", keymap.choices, layers)
        if name in written:
            problems.append(f"{written[name]} and {canonical} would both be written as {name}")
            continue
        written[name] = canonical
        try:
            out.append((name, _as_stored(rule, tensor, symbols)))
        except tensor_ops.OpError as exc:
            problems.append(f"{canonical} -> {name}: {exc}")

    heads = [g for g in unwritable if g in HEADS]
    problems += _unwritable_problems(keymap.name, unwritable, heads, drop_heads)
    left_out = heads if drop_heads else []
    raise_if(problems, ConversionError)
    return out, left_out


def _group_of(schema: Schema, canonical: str) -> str:
    looked_up = schema.lookup(canonical)
    return looked_up[0].group if looked_up else "unknown"


def _as_stored(rule: Rule, tensor: LazyTensor, symbols: dict[str, int]) -> LazyTensor:
    """The canonical tensor as the format stores it: the rule's ops undone, last first."""
    start = _stored_shape(rule, tensor, symbols)
    chain = tensor_ops.shape_chain(rule.ops, start, symbols)
    if chain[-1] != tensor.shape:
        raise tensor_ops.OpError(f"ops give {list(chain[-1])}, the tensor is {list(tensor.shape)}")
    for k in reversed(range(len(rule.ops))):
        tensor = tensor_ops.backward(rule.ops[k], tensor, chain[k])
    return tensor


def _stored_shape(rule: Rule, tensor: LazyTensor, symbols: dict[str, int]) -> tuple[int, ...]:
    if rule.source_shape is not None:
        start = resolve_shape(rule.source_shape, symbols, {"num_labels": tensor.shape[0]})
        if start is None:
            raise tensor_ops.OpError(f"source_shape {list(rule.source_shape)} uses unknown symbols")
        return start
    start = tensor.shape
    for op in reversed(rule.ops):
        if op == "transpose":
            start = (start[1], start[0])
    return start


def _unwritable_problems(layout: str, unwritable: dict[str, list[str]], heads: list[str],
                         drop_heads: bool) -> list[str]:
    """Heads the layout cannot hold are a problem unless --drop-heads; any other group always is."""
    problems = []
    if heads and drop_heads:
        log.info("not written (%s has no place for them): %s", layout,
                 _listing([n for g in heads for n in unwritable[g]]))
    elif heads:
        problems.append(
            f"the {layout} layout holds no {', '.join(heads)} weights "
            f"({_listing([n for g in heads for n in unwritable[g]])}); "
            "pass --drop-heads to write the rest without them"
        )
    for group, names in unwritable.items():
        if group not in HEADS:
            problems.append(f"the {layout} layout cannot hold {_listing(names)}")
    return problems
