"""The canonical schema (converters/canonical.toml): which keys a BERT has and what shape each takes."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass

from bertvault import paths
from bertvault.convert.keymap import Pattern, parse_pattern
from bertvault.errors import ConversionError

HEADS = ("pooler", "mlm", "nsp", "classifier", "qa")


@dataclass(frozen=True)
class KeySpec:
    name: str  # may hold {i}
    group: str
    shape: tuple[str | int, ...]


@dataclass(frozen=True)
class Group:
    name: str
    required: bool
    per_layer: bool
    keys: tuple[KeySpec, ...]


@dataclass(frozen=True)
class Schema:
    groups: dict[str, Group]
    ties: dict[str, str]  # alias -> owner
    refuse: tuple[tuple[Pattern, str], ...]

    @functools.cached_property
    def _lookup(self) -> list[tuple[re.Pattern[str], KeySpec]]:
        out = []
        for group in self.groups.values():
            for spec in group.keys:
                regex = re.escape(spec.name).replace(r"\{i\}", r"(?P<i>\d+)")
                out.append((re.compile(regex), spec))
        return out

    def lookup(self, name: str) -> tuple[KeySpec, int | None] | None:
        """The spec of a canonical key and its layer index (None outside the encoder)."""
        for regex, spec in self._lookup:
            found = regex.fullmatch(name)
            if found:
                return spec, int(found.group("i")) if "i" in regex.groupindex else None
        return None

    def keys(self, group: str, layers: int) -> list[str]:
        specs = self.groups[group]
        if not specs.per_layer:
            return [s.name for s in specs.keys]
        return [s.name.replace("{i}", str(i)) for i in range(layers) for s in specs.keys]

    def ordered(self, names: set[str], layers: int) -> list[str]:
        """Names in the schema's order (embeddings, layers in order, pooler, heads), unknown ones last."""
        order = [k for group in self.groups for k in self.keys(group, layers)]
        position = {k: n for n, k in enumerate(order)}
        return sorted(names, key=lambda k: (position.get(k, len(order)), k))

    def refusal(self, name: str) -> str | None:
        for pattern, reason in self.refuse:
            if pattern.match(name, "source", _NO_CHOICES, 0) is not None:
                return reason
        return None


_NO_CHOICES: dict[str, dict[str, str]] = {}  # one object: Pattern caches its regex per choices object


def shape_symbols(config: dict) -> dict[str, int]:
    symbols = {k: v for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool)}
    heads = config.get("num_attention_heads")
    if heads:
        symbols["head_size"] = config["hidden_size"] // heads
    return symbols


def resolve_shape(shape: tuple[str | int, ...], symbols: dict[str, int], free: dict[str, int],
                  actual: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
    """Symbols to numbers. A symbol the config lacks (num_labels) is bound by `actual`, once."""
    out = []
    for n, sym in enumerate(shape):
        if isinstance(sym, int):
            out.append(sym)
        elif sym in symbols:
            out.append(symbols[sym])
        elif sym in free:
            out.append(free[sym])
        elif actual is not None and len(actual) == len(shape):
            free[sym] = actual[n]
            out.append(actual[n])
        else:
            return None
    return tuple(out)


@functools.cache
def load_schema() -> Schema:
    path = paths.converters_dir() / "canonical.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        groups = {}
        for name, raw in data["groups"].items():
            keys = tuple(KeySpec(k["name"], name, tuple(k["shape"])) for k in raw["keys"])
            groups[name] = Group(name, bool(raw.get("required")), bool(raw.get("per_layer")), keys)
        ties = {t["alias"]: t["owner"] for t in data.get("tie", [])}
        refuse = tuple((parse_pattern(r["pattern"], set()), r["reason"]) for r in data.get("refuse", []))
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
        raise ConversionError(f"canonical schema {path} is unusable: {exc}") from None
    return Schema(groups, ties, refuse)
