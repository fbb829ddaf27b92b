"""What the registry lists and what the cache holds of it, as plain data for `list` and `info` (the CLI
renders it, scripts read its JSON)."""

from __future__ import annotations

from bertvault.cache.layout import artifact_dir, is_cached
from bertvault.registry.registry import Registry
from bertvault.registry.schema import Artifact, FileSpec


def summary(registry: Registry, artifact: Artifact) -> dict:
    """One row of `list`: `size` is what a plain pull fetches, exact when `size_is_exact`, else about
    (None when some file's size is published nowhere)."""
    size, exact = artifact.shown_size
    return {
        "name": artifact.name,
        "aliases": artifact.aliases,
        "kind": artifact.kind,
        "format": artifact.format,
        "architecture": artifact.architecture.short() if artifact.architecture else None,
        "files": len(artifact.files),
        "size": size,
        "size_is_exact": exact,
        "pinned": artifact.pinned,
        "cached": is_cached(artifact.name),
        "user_override": artifact.name in registry.overridden,
        "builtin": registry.entry(artifact.name).builtin,
    }


def _file_row(f: FileSpec) -> dict:
    size, exact = f.shown_size
    return {
        **f.model_dump(exclude_none=True, exclude={"members"}),
        "pinned": f.pinned,
        "shown_size": size,
        "size_is_exact": exact,
        "members": {path: m.model_dump(exclude_none=True) for path, m in f.members.items()},
        "member_hashes": len(f.members),
    }


def details(registry: Registry, name: str) -> dict:
    entry = registry.entry(name)
    artifact = entry.artifact
    return {
        **summary(registry, artifact),
        **artifact.model_dump(include={"description", "publisher", "homepage", "license", "vocab_from"}),
        "architecture": artifact.architecture.model_dump() if artifact.architecture else None,
        "same_weights_as": registry.same_weights(artifact.name),
        "manifest": str(entry.origin),
        "cache_dir": str(artifact_dir(artifact.name)),
        "pins": [str(p) for p in registry.pinned_by.get(artifact.name, [])],
        "files": [_file_row(f) for f in artifact.files],
    }


def select(registry: Registry, kind: str | None = None, fmt: str | None = None) -> list[dict]:
    return [
        summary(registry, a)
        for a in registry
        if (kind is None or a.kind == kind) and (fmt is None or a.format == fmt)
    ]
