"""Manifest schema, loading and lookup of published BERT artifacts."""

from bertvault.registry.registry import Registry, load_registry
from bertvault.registry.schema import FORMATS, Architecture, Artifact, FileSpec

__all__ = ["FORMATS", "Architecture", "Artifact", "FileSpec", "Registry", "load_registry"]
