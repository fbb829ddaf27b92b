"""Changing the user's own manifest: `bertvault add`, `bertvault pin` and `bertvault manifest validate`."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import tomli_w

from bertvault import paths
from bertvault.errors import ManifestError
from bertvault.registry.loader import manifest_files, read_manifest, read_manifest_file
from bertvault.registry.registry import Registry, load_builtin_entries
from bertvault.registry.schema import Artifact


def validate_files(files: list[Path]) -> dict[Path, int]:
    """Validate each file alone and together with the built-ins; return artifacts (and pins) per file."""
    problems: list[str] = []
    counts: dict[Path, int] = {}
    entries, pins = [], []
    for file in files:
        if not file.is_file():
            problems.append(f"{file}: no such manifest file")
            continue
        try:
            found = read_manifest_file(file)
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        counts[file] = len(found.entries) + len(found.pins)
        entries.extend(found.entries)
        pins.extend(found.pins)
    if not problems:
        try:
            Registry(load_builtin_entries(), entries, pins)
        except ManifestError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    return counts


def files_from_urls(urls: list[str], hashes: list[str]) -> list[dict]:
    """One file per distinct basename; URLs sharing a basename are mirrors of the same file."""
    files: dict[str, dict] = {}
    for url in urls:
        name = PurePosixPath(urlsplit(url).path).name
        if not name:
            raise ManifestError(f"URL {url!r} names no file; give the URL of a file, not a folder")
        files.setdefault(name, {"path": name, "urls": []})["urls"].append(url)
    if hashes and len(hashes) != len(files):
        raise ManifestError(f"{len(hashes)} --sha256 values for {len(files)} files; "
                            "give one per file, in order")
    for spec, digest in zip(files.values(), hashes):
        spec["sha256"] = digest
    return list(files.values())


def _load(manifest: Path) -> dict:
    if not manifest.exists():
        return {}
    try:
        return tomllib.loads(manifest.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{manifest}: invalid TOML: {exc}; fix it before writing to it") from None


def write_artifact(manifest: Path, table: dict, *, replace: bool = False) -> Artifact:
    """Append `table` to `manifest` (or replace the entry of that name), atomically: the file is
    written beside the old one, the registry is checked as it will be, then it takes the old name."""
    data = _load(manifest)
    tables = data.setdefault("artifact", [])
    if not replace and any(t.get("name") == table["name"] for t in tables):
        raise ManifestError(f"{manifest} already declares {table['name']!r}; edit that entry instead")
    data["artifact"] = [*(t for t in tables if t.get("name") != table["name"]),
                        {k: v for k, v in table.items() if v not in (None, [], "")}]
    _write_checked(manifest, data)
    entries = read_manifest(manifest)
    return next(e.artifact for e in entries if e.artifact.name == table["name"])


def write_pin(manifest: Path, name: str, files: list[dict], note: str = "") -> None:
    """Add what was learned about `name`'s files to `manifest` as a `[[pin]]` table, merged with a
    pin of the same artifact already there (a file pinned again takes the new values)."""
    data = _load(manifest)
    pins = data.setdefault("pin", [])
    old = next((p for p in pins if p.get("name") == name), {})
    merged = {f.get("path"): f for f in old.get("files", [])}
    merged.update({f["path"]: f for f in files})
    table = {"name": name, **({"note": note} if note else {}), "files": list(merged.values())}
    data["pin"] = [*(p for p in pins if p.get("name") != name), table]
    _write_checked(manifest, data)


def _write_checked(manifest: Path, data: dict) -> None:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{manifest.stem}-", suffix=".toml.tmp", dir=manifest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            tomli_w.dump(data, out)
        # A manifest the registry loads is checked with the other user manifests, as it will be
        # read; a file written elsewhere (to publish) only with the built-ins.
        target = manifest.resolve()
        sources = [src.resolve() for src in paths.user_manifest_sources()]
        loaded = any(target == src or target.is_relative_to(src) for src in sources)
        others = [f for f in manifest_files(sources) if f.resolve() != target] if loaded else []
        try:
            validate_files([*others, Path(tmp)])
        except ManifestError as exc:  # said of the user's manifest, not of the file it was drafted in
            raise ManifestError([problem.replace(tmp, str(manifest)) for problem in exc.problems]
                                + [f"{manifest} is unchanged"]) from None
        os.replace(tmp, manifest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_artifact(manifest: Path, table: dict) -> Artifact:
    """`bertvault add`: a new entry; a name the manifest already declares is refused."""
    return write_artifact(manifest, table)


def parse_arch(spec: str) -> dict:
    """'12-768-12[-30522][-cased|-uncased]' → an architecture table (intermediate = 4 × hidden)."""
    parts = spec.lower().split("-")
    cased = parts[-1] == "cased"
    if parts[-1] in ("cased", "uncased"):
        parts = parts[:-1]
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts):
        raise ManifestError(f"--arch {spec!r}: expected LAYERS-HIDDEN-HEADS[-VOCAB][-cased], "
                            "e.g. 12-768-12-30522")
    layers, hidden, heads, *vocab = (int(p) for p in parts)
    return {"layers": layers, "hidden": hidden, "heads": heads, "intermediate": 4 * hidden,
            "vocab_size": vocab[0] if vocab else 30522, "cased": cased}


def build_table(name: str, urls: list[str], *, kind: str, fmt: str, sha256: list[str], aliases: list[str],
                arch: str | None, vocab_from: str | None, description: str) -> dict:
    """The TOML table `bertvault add` writes; the schema validates it when it is added."""
    return {
        "name": name, "aliases": aliases, "kind": kind, "format": fmt, "description": description,
        "vocab_from": vocab_from, "architecture": parse_arch(arch) if arch else None,
        "files": files_from_urls(urls, sha256),
    }
