"""TF2 Model Garden object-based checkpoints: read-only; the bundle is the same as TF1's."""

from __future__ import annotations

from pathlib import Path

from bertvault.formats.base import TensorSource
from bertvault.formats.tf1 import read

__all__ = ["read", "sniff"]


def sniff(source: TensorSource, path: Path) -> bool:
    """Object-based checkpoints carry their object graph, and every variable under .ATTRIBUTES."""
    return any(k == "_CHECKPOINTABLE_OBJECT_GRAPH" or k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
               for k in source.entries)
