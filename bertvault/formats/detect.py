"""Which checkpoint a path holds, its format, and its tensors, read once.

The file names say which container holds the weights: a TF tensor bundle (PREFIX.index +
PREFIX.data-*), a .safetensors file, a pickle (.bin/.pt/.pth), or an index.json of shards; a folder
is searched for one (one level down too). The container is opened once, and the formats stored in
it recognise their own (each format module's `sniff`, asked in `formats.SNIFF_ORDER`: TF2 vs TF1 by
their key sets, NVIDIA vs AzureML vs plain PyTorch pickles); the tensors already opened go on to
the converter. A registered artifact's format comes from its manifest and --from-format overrides
detection: then that format's reader opens the weights directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bertvault import formats
from bertvault.errors import ConversionError
from bertvault.formats.base import TensorSource

_TF_PART = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_CHECKPOINT_STATE = re.compile(rb'^model_checkpoint_path:\s*"([^"\n]+)"', re.MULTILINE)


@dataclass
class Opened:
    format: str  # a key of formats.FORMATS
    weights: Path  # what was read: a TF prefix, a weights file, an index.json, or an HF model folder
    folder: Path  # where config and vocab are looked for
    tensors: TensorSource  # names, shapes and dtypes; values read on demand

    def close(self) -> None:
        self.tensors.close()


def tf_prefix(path: Path) -> Path | None:
    """The checkpoint prefix named by a prefix, an .index, .meta or .data-* path."""
    if _TF_PART.search(path.name):
        return path.with_name(_TF_PART.sub("", path.name))
    if Path(f"{path}.index").is_file():
        return path
    return None


def _container(path: Path) -> str | None:
    name = path.name
    if name.endswith((".safetensors", ".safetensors.index.json")):
        return "safetensors"
    if name.endswith(".bin.index.json") or path.suffix in _PICKLE_SUFFIXES:
        return "pickle"
    return "tf-bundle" if tf_prefix(path) is not None else None


_PICKLE_SUFFIXES = tuple(s for f in formats.in_container("pickle") for s in f.file_suffixes)


def _sniffed(container: str, probe: object, path: Path) -> formats.Format:
    return next(f for f in formats.in_container(container) if f.code.sniff(probe, path))


def _open_file(path: Path) -> Opened:
    """Detect the format of one weights file (or TF prefix) and open it once."""
    container = _container(path)
    if container is None:
        raise ConversionError(
            f"cannot tell the format of {path} from its name: expected a TF checkpoint (.index/.data-*), "
            ".safetensors, .bin/.pt/.pth or an .index.json; pass --from-format"
        )
    if container == "tf-bundle":
        prefix = tf_prefix(path)
        assert prefix is not None
        tensors = formats.get("tf1").reader()(prefix)
        return Opened(_sniffed(container, tensors, prefix).name, prefix, prefix.parent, tensors)
    if container == "safetensors":
        return Opened("safetensors", path, path.parent, formats.get("safetensors").reader()(path))
    if path.name.endswith(".index.json"):  # shards of a plain state dict: only `pt` writes those
        return Opened("pt", path, path.parent, formats.get("pt").reader()(path))
    from bertvault.formats.pt import load_pickle

    obj = load_pickle(path)
    spec = _sniffed(container, obj, path)
    return Opened(spec.name, path, path.parent, spec.code.from_object(obj, path))


def _tf_prefixes(folder: Path) -> list[Path]:
    prefixes = sorted(folder / p.name[: -len(".index")] for p in folder.glob("*.index"))
    state = folder / "checkpoint"
    if len(prefixes) > 1 and state.is_file():
        try:
            found = _CHECKPOINT_STATE.search(state.read_bytes()[:65536])
        except OSError:
            found = None
        named = folder / found.group(1).decode("utf-8", "replace") if found else None
        if named in prefixes:
            return [named]
    return prefixes


def _weights_in(folder: Path) -> tuple[Path, bool] | None:
    """The weights a folder holds, and whether it is an HF model folder (config.json beside them)."""
    from bertvault.formats.hf import weights_in

    prefixes = _tf_prefixes(folder)
    if len(prefixes) > 1:
        raise ConversionError(f"{folder} holds several TF checkpoints "
                              f"({', '.join(p.name for p in prefixes)}); "
                              "name one (its prefix or .index file)")
    if prefixes:
        return prefixes[0], False
    weights = weights_in(folder)
    if weights is not None:
        return weights, (folder / "config.json").is_file()
    files = sorted(p for p in folder.iterdir() if p.suffix in formats.WEIGHT_SUFFIXES and p.is_file())
    if len(files) > 1:
        raise ConversionError(
            f"{folder} holds several weight files ({', '.join(p.name for p in files)}); name one"
        )
    return (files[0], False) if files else None


def _recognised(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") if names else "nothing"


def _find(folder: Path) -> tuple[Path, Path, bool]:
    """(weights, the folder holding them, HF model folder?) in `folder` or one level down."""
    found = _weights_in(folder)
    if found is not None:
        return found[0], folder, found[1]
    subfolders = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    hits = [(hit, sub) for sub in subfolders if (hit := _weights_in(sub)) is not None]
    if len(hits) > 1:
        raise ConversionError(f"{folder} holds checkpoints in several folders "
                              f"({', '.join(sub.name for _, sub in hits)}); name one")
    if not hits:
        raise ConversionError(
            f"no checkpoint recognised in {folder} (found: {_recognised(folder)}); expected a TF checkpoint "
            "(*.index + *.data-*), model.safetensors, pytorch_model.bin or a .pt file; pass --from-format"
        )
    (weights, is_hf), sub = hits[0]
    return weights, sub, is_hf


def detect(path: Path) -> Opened:
    """The checkpoint at `path` (a file, a TF prefix, or a folder), its format detected, opened once."""
    if not path.is_dir():
        return _open_file(path)
    weights, folder, is_hf = _find(path)
    opened = _open_file(weights)
    if is_hf and formats.get(opened.format).keymap == "hf":
        opened.format, opened.weights = "hf", folder
    opened.folder = folder
    return opened


def _weights_for(path: Path, spec: formats.Format) -> tuple[Path, Path]:
    """(what `spec`'s reader takes, the folder of config and vocab) in `path`, for a format given."""
    if spec.container == "tf-bundle":
        prefix = tf_prefix(path) if not path.is_dir() else None
        if prefix is None:
            folders = [path] + ([p for p in sorted(path.iterdir()) if p.is_dir()] if path.is_dir() else [])
            candidates = [p for folder in folders for p in _tf_prefixes(folder)]
            if len(candidates) != 1:
                what = ", ".join(str(c) for c in candidates) or "none"
                raise ConversionError(f"expected one TF checkpoint (*.index) in {path}, found {what}")
            prefix = candidates[0]
        return prefix, prefix.parent
    if not path.is_dir():
        return path, path.parent
    weights, folder, _ = _find(path)
    return (folder if spec.name == "hf" else weights), folder


def locate(path: Path, fmt: str | None) -> Opened:
    """Detect, or when the format is given (--from-format or a manifest), open its weights in `path`."""
    if fmt is None:
        return detect(path)
    spec = formats.get(fmt)
    weights, folder = _weights_for(path, spec)
    return Opened(fmt, weights, folder, spec.reader()(weights))
