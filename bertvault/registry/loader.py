"""Reading manifest files into validated artifacts, with errors that name file, artifact and field."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from bertvault.errors import ManifestError
from bertvault.registry.schema import Artifact, Pin


@dataclass(frozen=True)
class Entry:
    """An artifact and the manifest file that declared it."""

    artifact: Artifact
    origin: Path
    builtin: bool


@dataclass(frozen=True)
class PinEntry:
    """A `[[pin]]` table and the manifest file that holds it."""

    pin: Pin
    origin: Path


@dataclass(frozen=True)
class ManifestFile:
    entries: list[Entry]
    pins: list[PinEntry]


def manifest_files(sources: list[Path]) -> list[Path]:
    """Every *.toml named by `sources` (files as given, folders searched recursively), sorted."""
    found: list[Path] = []
    for source in sources:
        if source.is_dir():
            found.extend(sorted(source.rglob("*.toml")))
        elif source.is_file():
            found.append(source)
    return found


def _short(value: object, limit: int = 60) -> str:
    """repr(value), cut in the middle when long: a 10,000-character path must not flood the line."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit - 16]}...{shown[-12:]}"


def _field_problem(origin: Path, label: str, error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(artifact)"
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if error["type"] == "missing":
        return f"{origin}: {label}: {where}: required field missing"
    if error["type"] == "extra_forbidden":
        return f"{origin}: {label}: unknown field {where!r}"
    shown = _short(got) if isinstance(got, (str, int, float, bool)) else type(got).__name__
    return f"{origin}: {label}: {where}: {message} (got {shown})"


def _resolve_relative_file_urls(table: dict, base: Path) -> None:
    """`file:NAME` (no slashes after the colon) is relative to the manifest's own folder, so a
    manifest can travel with its files (a local mirror, an air-gapped share, the built-in demo)."""
    for group in ("files", "shards"):
        for spec in table.get(group) or []:
            if isinstance(spec, dict) and isinstance(spec.get("urls"), list):
                spec["urls"] = [
                    (base / url[5:]).resolve().as_uri()
                    if isinstance(url, str) and url.startswith("file:") and not url.startswith("file:/")
                    else url
                    for url in spec["urls"]
                ]


def read_manifest(path: Path, *, builtin: bool = False) -> list[Entry]:
    """The artifacts one manifest file declares (see read_manifest_file)."""
    return read_manifest_file(path, builtin=builtin).entries


def _tables(data: dict, key: str, path: Path, problems: list[str]) -> list:
    tables = data.get(key, [])
    if not isinstance(tables, list):
        problems.append(f"{path}: {key!r} must be an array of tables ([[{key}]])")
        return []
    return tables


def _read_pins(tables: list, path: Path, problems: list[str]) -> list[PinEntry]:
    pins: list[PinEntry] = []
    for index, table in enumerate(tables):
        name = table.get("name", f"#{index + 1}") if isinstance(table, dict) else f"#{index + 1}"
        try:
            pins.append(PinEntry(Pin.model_validate(table), path))
        except ValidationError as exc:
            problems.extend(_field_problem(path, f"pin {_short(name)}", err) for err in exc.errors())
    return pins


def read_manifest_file(path: Path, *, builtin: bool = False) -> ManifestFile:
    """Parse and validate one manifest file (its artifacts and pins); raise one ManifestError listing
    every problem in it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from None

    unknown = sorted(set(data) - {"artifact", "pin"})
    problems = [f"{path}: unknown top-level table {key!r} (expected [[artifact]] or [[pin]] tables)"
                for key in unknown]
    tables = _tables(data, "artifact", path, problems)
    pins = _read_pins(_tables(data, "pin", path, problems), path, problems)

    entries: list[Entry] = []
    for index, table in enumerate(tables):
        name = table.get("name", f"#{index + 1}") if isinstance(table, dict) else f"#{index + 1}"
        label = f"artifact {_short(name)}"
        if isinstance(table, dict):
            _resolve_relative_file_urls(table, path.parent)
        try:
            entries.append(Entry(Artifact.model_validate(table), path, builtin))
        except ValidationError as exc:
            problems.extend(_field_problem(path, label, err) for err in exc.errors())
    if problems:
        raise ManifestError(problems)
    return ManifestFile(entries, pins)
