"""Checkpoint conversion through one canonical form (transformers' BertForPreTraining names).

    load_canonical(source)            any readable checkpoint (path or registered name) -> Canonical
    from_state_dict(sd, config, ...)  a model in memory -> Canonical
    save_canonical(c, out, to)        Canonical -> any writable format, atomically
    export_hf / export_tf1            the two exports a trainer needs
    convert(source, to, ...)          all of it, plus the numerical check (the CLI's `convert`)
"""

from __future__ import annotations

from bertvault.convert.canonical import Canonical, from_state_dict, load_canonical
from bertvault.convert.pipeline import (
    ConvertResult,
    convert,
    default_output,
    export_hf,
    export_tf1,
    save_canonical,
)

__all__ = [
    "Canonical", "ConvertResult", "convert", "default_output", "export_hf", "export_tf1", "from_state_dict",
    "load_canonical", "save_canonical",
]
