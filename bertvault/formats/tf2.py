"""TF2 Model Garden object-based checkpoints: read-only; the bundle is the same as TF1's."""

from __future__ import annotations

from bertvault.formats.tf1 import read

__all__ = ["read"]
