"""Which format a path holds, and which file in it the reader takes.

From file names first (a TF prefix, .safetensors, a .bin index, ...), then from the key set where
names alone cannot tell (TF1 vs TF2 bundles; HF vs NVIDIA pickles). A registered artifact's format
comes from its manifest; --from-format overrides both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bertvault import formats
from bertvault.errors import ConversionError

_TF_PART = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


@dataclass(frozen=True)
class Located:
    format: str
    weights: Path  # what the format's reader takes: a TF prefix, a file, an index.json or a folder
    folder: Path  # where config and vocab files are looked for


def tf_prefix(path: Path) -> Path | None:
    """The checkpoint prefix named by a prefix, an .index, .meta or .data-* path."""
    if _TF_PART.search(path.name):
        return path.with_name(_TF_PART.sub("", path.name))
    if Path(f"{path}.index").is_file():
        return path
    return None


def _tf_format(prefix: Path) -> str:
    from bertvault.formats.tf1 import read

    source = read(prefix)
    source.close()
    object_based = any(k == "_CHECKPOINTABLE_OBJECT_GRAPH" or k.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
                       for k in source.entries)
    return "tf2" if object_based else "tf1"


def _pickle_format(path: Path) -> str:
    from collections.abc import Mapping

    from bertvault.formats.pt import load_pickle

    obj = load_pickle(path)
    if isinstance(obj, Mapping) and "model" in obj:
        return "nvidia-pt"
    keys = list(obj) if isinstance(obj, Mapping) else []
    if any(str(k).startswith("module.") or ".dense_act." in str(k) for k in keys):
        return "nvidia-pt"
    return "azureml-pt" if path.name.startswith("bert_encoder") else "pt"


def _tf_prefixes(folder: Path) -> list[Path]:
    prefixes = sorted(folder / p.name[: -len(".index")] for p in folder.glob("*.index"))
    if len(prefixes) > 1 and (folder / "checkpoint").is_file():
        found = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', (folder / "checkpoint").read_text(), re.MULTILINE)
        if found and (folder / found.group(1)) in prefixes:
            return [folder / found.group(1)]
    return prefixes


def _in_folder(folder: Path) -> Located | None:
    from bertvault.formats.hf import weights_in

    prefixes = _tf_prefixes(folder)
    if len(prefixes) > 1:
        raise ConversionError(f"{folder} holds several TF checkpoints ({', '.join(p.name for p in prefixes)}); "
                              "name one (its prefix or .index file)")
    if prefixes:
        return Located(_tf_format(prefixes[0]), prefixes[0], folder)
    weights = weights_in(folder)
    if weights is not None:
        if (folder / "config.json").is_file():
            return Located("hf", folder, folder)
        return located_file(weights)
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", *PICKLE_SUFFIXES) and p.is_file())
    if len(files) == 1:
        return located_file(files[0])
    if len(files) > 1:
        raise ConversionError(f"{folder} holds several weight files ({', '.join(p.name for p in files)}); name one")
    return None


def located_file(path: Path) -> Located:
    name = path.name
    if name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
        return Located("safetensors", path, path.parent)
    if name.endswith(".bin.index.json"):
        return Located("pt", path, path.parent)
    if path.suffix in PICKLE_SUFFIXES:
        return Located(_pickle_format(path), path, path.parent)
    prefix = tf_prefix(path)
    if prefix is not None:
        return Located(_tf_format(prefix), prefix, prefix.parent)
    raise ConversionError(
        f"cannot tell the format of {path} from its name: expected a TF checkpoint (.index/.data-*), "
        ".safetensors, .bin/.pt/.pth or an .index.json; pass --from-format"
    )


def _recognised(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") if names else "nothing"


def detect(path: Path) -> Located:
    """The format at `path`: a file, a TF prefix, or a folder (searched one level down too)."""
    if not path.is_dir():
        return located_file(path)
    found = _in_folder(path)
    if found is None:
        subfolders = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        hits = [hit for sub in subfolders if (hit := _in_folder(sub)) is not None]
        if len(hits) > 1:
            raise ConversionError(f"{path} holds checkpoints in several folders "
                                  f"({', '.join(str(h.folder.name) for h in hits)}); name one")
        found = hits[0] if hits else None
    if found is None:
        raise ConversionError(
            f"no checkpoint recognised in {path} (found: {_recognised(path)}); expected a TF checkpoint "
            "(*.index + *.data-*), model.safetensors, pytorch_model.bin or a .pt file; pass --from-format"
        )
    return found


def locate(path: Path, fmt: str | None) -> Located:
    """Detect, or when the format is given (--from-format or a manifest), find its weights in `path`."""
    if fmt is None:
        return detect(path)
    spec = formats.get(fmt)
    if fmt in ("tf1", "tf2"):
        prefix = tf_prefix(path) if not path.is_dir() else None
        if prefix is None:
            folders = [path] + ([p for p in sorted(path.iterdir()) if p.is_dir()] if path.is_dir() else [])
            candidates = [p for folder in folders for p in _tf_prefixes(folder)]
            if len(candidates) != 1:
                what = ", ".join(str(c) for c in candidates) or "none"
                raise ConversionError(f"expected one TF checkpoint (*.index) in {path}, found {what}")
            prefix = candidates[0]
        return Located(fmt, prefix, prefix.parent)
    if not path.is_dir():
        return Located(fmt, path, path.parent)
    found = detect(path)
    weights = found.weights
    if found.format == "hf" and fmt != "hf":  # the file inside the model folder
        from bertvault.formats.hf import weights_in

        weights = weights_in(found.folder) or weights
    elif fmt == "hf" and spec.keymap == formats.get(found.format).keymap:
        weights = found.folder
    return Located(fmt, weights, found.folder)
