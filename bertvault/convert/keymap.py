"""Key maps: the TOML files in converters/ that say how a format's names become canonical names.

A pattern is a name with placeholders:

    {i}, {i+4}      the layer index (digits); the offset is what the format adds to it
    {layers+4}      a constant: the config's number of layers plus 4
    {proj}          a placeholder declared in [placeholders]: a list (same token on both sides)
                    or a table (source token -> canonical token)
    {*rest}         any text, carried over unchanged

Reading matches a source name against rule sources (first match wins, in file order) and renders
the rule's target; writing does the reverse with the rules not marked read_only.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertvault import paths
from bertvault.errors import ConversionError

_SLOT = re.compile(r"\{([^{}]+)\}")
_INDEX = re.compile(r"^i(?:\+(\d+))?$")
_CONST = re.compile(r"^layers\+(\d+)$")


@dataclass(frozen=True)
class Slot:
    kind: str  # index | const | choice | wild
    name: str
    offset: int = 0


# (pattern, side, layers, id(choices)) -> (choices, compiled): a conversion matches every key
# against every rule, and building the regex each time was a tenth of a BERT-large conversion.
# Callers pass long-lived choices objects (a KeyMap's, schema's constant), so this stays small.
_COMPILED: dict[tuple, tuple[dict, re.Pattern[str]]] = {}


@dataclass(frozen=True)
class Pattern:
    """One side of a rule: literal text and slots."""

    text: str
    parts: tuple[str | Slot, ...]

    def regex(self, side: str, choices: dict[str, dict[str, str]], layers: int) -> re.Pattern[str]:
        key = (self, side, layers, id(choices))
        cached = _COMPILED.get(key)
        if cached is None:  # the choices dict is kept with its regex, so its id cannot be reused
            cached = _COMPILED[key] = (choices, self._compile(side, choices, layers))
        return cached[1]

    def _compile(self, side: str, choices: dict[str, dict[str, str]], layers: int) -> re.Pattern[str]:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(re.escape(part))
            elif part.kind == "index":
                out.append(r"(?P<i>\d+)")
            elif part.kind == "const":
                out.append(re.escape(str(layers + part.offset)))
            elif part.kind == "choice":
                table = choices[part.name]
                tokens = table.keys() if side == "source" else table.values()
                longest_first = sorted(tokens, key=len, reverse=True)
                out.append(f"(?P<{part.name}>{'|'.join(re.escape(t) for t in longest_first)})")
            else:
                out.append(f"(?P<{part.name}>.*)")
        return re.compile("".join(out))

    def match(self, name: str, side: str, choices: dict[str, dict[str, str]], layers: int) -> dict | None:
        """Bindings in canonical terms (layer index without offset, choice as its canonical token)."""
        found = self.regex(side, choices, layers).fullmatch(name)
        if found is None:
            return None
        bindings: dict[str, Any] = {}
        for part in self.parts:
            if isinstance(part, str) or part.kind == "const":
                continue
            value = found.group(part.name)
            if part.kind == "index":
                bindings["i"] = int(value) - part.offset
            elif part.kind == "choice" and side == "source":
                bindings[part.name] = choices[part.name][value]
            else:
                bindings[part.name] = value
        return bindings

    def render(self, bindings: dict, side: str, choices: dict[str, dict[str, str]], layers: int) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.kind == "index":
                out.append(str(bindings["i"] + part.offset))
            elif part.kind == "const":
                out.append(str(layers + part.offset))
            elif part.kind == "choice" and side == "source":
                inverse = {v: k for k, v in choices[part.name].items()}
                out.append(inverse[bindings[part.name]])
            else:
                out.append(bindings[part.name])
        return "".join(out)

    @property
    def slot_names(self) -> set[str]:
        return {p.name for p in self.parts if isinstance(p, Slot) and p.kind != "const"}


def parse_pattern(text: str, declared: set[str]) -> Pattern:
    parts: list[str | Slot] = []
    position = 0
    for found in _SLOT.finditer(text):
        if found.start() > position:
            parts.append(text[position:found.start()])
        body = found.group(1)
        if (index := _INDEX.match(body)) is not None:
            parts.append(Slot("index", "i", int(index.group(1) or 0)))
        elif (const := _CONST.match(body)) is not None:
            parts.append(Slot("const", "layers", int(const.group(1))))
        elif body.startswith("*") and body[1:].isidentifier():
            parts.append(Slot("wild", body[1:]))
        elif body in declared:
            parts.append(Slot("choice", body))
        else:
            raise ValueError(f"pattern {text!r}: unknown placeholder {{{body}}}")
        position = found.end()
    if position < len(text):
        parts.append(text[position:])
    names = [p.name for p in parts if isinstance(p, Slot) and p.kind != "const"]
    if len(names) != len(set(names)):
        raise ValueError(f"pattern {text!r} uses a placeholder twice")
    return Pattern(text, tuple(parts))


@dataclass(frozen=True)
class Rule:
    source: Pattern
    target: Pattern
    ops: tuple[Any, ...] = ()
    source_shape: tuple[Any, ...] | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Drop:
    source: Pattern
    reason: str


@dataclass(frozen=True)
class KeyMap:
    name: str
    description: str
    path: Path
    choices: dict[str, dict[str, str]]
    rules: tuple[Rule, ...]
    drops: tuple[Drop, ...] = ()
    strip_prefixes: tuple[str, ...] = ()
    strip_suffixes: tuple[str, ...] = ()
    add_prefixes: dict[str, str] = field(default_factory=dict)

    def normalize(self, name: str) -> str:
        """Remove wrappers (a TF-Hub `module/`, DDP's `module.`, TF2's attribute suffix), add scopes."""
        for prefix in self.strip_prefixes:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        for suffix in self.strip_suffixes:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        for prefix, scope in self.add_prefixes.items():
            if name.startswith(prefix):
                name = scope + name
                break
        return name

    def drop_reason(self, raw: str, normalized: str, layers: int) -> str | None:
        for drop in self.drops:
            for name in (raw, normalized):
                if drop.source.match(name, "source", self.choices, layers) is not None:
                    return drop.reason
        return None

    def read_rule(self, name: str, layers: int) -> tuple[Rule, dict] | None:
        for rule in self.rules:
            bindings = rule.source.match(name, "source", self.choices, layers)
            if bindings is not None:
                return rule, bindings
        return None

    def write_rule(self, canonical: str, layers: int) -> tuple[Rule, dict] | None:
        for rule in self.rules:
            if rule.read_only:
                continue
            bindings = rule.target.match(canonical, "target", self.choices, layers)
            if bindings is not None:
                return rule, bindings
        return None


_OPS = {"transpose", "vocab_rows"}


def _parse_ops(raw: list, where: str) -> tuple[Any, ...]:
    ops: list[Any] = []
    for op in raw:
        if isinstance(op, str) and op in _OPS:
            ops.append(op)
        elif isinstance(op, dict) and set(op) == {"reshape"} and isinstance(op["reshape"], list):
            ops.append(("reshape", tuple(op["reshape"])))
        else:
            raise ValueError(
                f"{where}: unknown op {op!r}; expected one of {sorted(_OPS)} or {{reshape = [...]}}"
            )
    return tuple(ops)


def parse_keymap(data: dict, path: Path) -> KeyMap:
    choices: dict[str, dict[str, str]] = {}
    for name, value in data.get("placeholders", {}).items():
        table = {v: v for v in value} if isinstance(value, list) else dict(value)
        if len(set(table.values())) != len(table):
            raise ValueError(f"placeholder {name!r} maps two source tokens to one target token")
        choices[name] = table
    declared = set(choices)
    rules = []
    for number, raw in enumerate(data.get("rule", []), 1):
        where = f"rule {number} ({raw.get('source')!r})"
        source, target = parse_pattern(raw["source"], declared), parse_pattern(raw["target"], declared)
        if source.slot_names != target.slot_names:
            raise ValueError(f"{where}: source and target must use the same placeholders")
        ops = _parse_ops(raw.get("ops", []), where)
        shape = tuple(raw["source_shape"]) if "source_shape" in raw else None
        if any(isinstance(op, tuple) for op in ops) and shape is None:
            raise ValueError(f"{where}: a reshape needs source_shape, so that writing can undo it")
        rules.append(Rule(source, target, ops, shape, bool(raw.get("read_only", False))))
    drops = [Drop(parse_pattern(d["source"], declared), d["reason"]) for d in data.get("drop", [])]
    return KeyMap(
        name=data["format"],
        description=data.get("description", ""),
        path=path,
        choices=choices,
        rules=tuple(rules),
        drops=tuple(drops),
        strip_prefixes=tuple(data.get("strip_prefixes", ())),
        strip_suffixes=tuple(data.get("strip_suffixes", ())),
        add_prefixes=dict(data.get("add_prefixes", {})),
    )


@functools.cache
def load_keymap(name: str) -> KeyMap:
    """converters/<name>.toml, parsed and checked."""
    path = paths.converters_dir() / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return parse_keymap(data, path)
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
        raise ConversionError(f"key map {path} is unusable: {exc}") from None
