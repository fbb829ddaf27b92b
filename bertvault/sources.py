"""Turning what a user typed (a registered name or a path) into local files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bertvault.cache import layout
from bertvault.errors import ManifestError
from bertvault.registry.schema import Artifact


@dataclass(frozen=True)
class Source:
    path: Path
    artifact: Artifact | None = None  # set when the source is a registered name


def resolve(source: str) -> Source:
    """A path that exists wins; a URL (gs://bucket/prefix, hf://, https://) is pulled into the cache;
    else a registered name whose files are in the cache."""
    if "://" in source:
        from bertvault.fetch.urls import pull_url

        return Source(pull_url(source))
    path = Path(source).expanduser()
    if path.exists():
        return Source(path)
    from bertvault.registry import load_registry

    registry = load_registry()
    if source not in registry:
        raise ManifestError(f"{source!r} is neither an existing path nor a registered artifact; see `bertvault list`")
    artifact = registry.get(source)
    if not layout.is_cached(artifact.name):
        raise ManifestError(f"{artifact.name!r} is not in the cache; run `bertvault pull {artifact.name}` first")
    return Source(layout.artifact_dir(artifact.name), artifact)
