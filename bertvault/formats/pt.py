"""PyTorch pickles (.bin/.pt/.pth): HF state dicts, single or sharded with pytorch_model.bin.index.json.

A pickle can run code when loaded. A plain zip-format state dict is read by torchzip's restricted
unpickler, which knows only the names such a file uses, without importing torch; every other file
is opened with `torch.load(weights_only=True)`, whose unpickler admits tensors and plain containers
only; anything else (an `os.system` reduce, a pickled DataLoader) is refused as UnsafeInput before
it is built. Zip-format files are memory-mapped, so reading one holds only the tensor being
converted. Writing goes through torchzip too: the same file torch.save writes, without torch.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import pickle
import pickletools
import re
import sys
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bertvault.errors import ConversionError, UnsafeInput
from bertvault.formats import sidecars, torchzip
from bertvault.formats.base import TensorSource, WriteJob, read_json
from bertvault.formats.tensors import Entry, numpy_dtype_of_torch, torch_to_numpy

log = logging.getLogger(__name__)

WEIGHTS = "pytorch_model.bin"
INDEX = "pytorch_model.bin.index.json"


# What a plain state dict's pickle references; anything else in a refused pickle is an object
# (code) the file wanted built.
_TENSOR_GLOBALS = re.compile(
    r"torch\._utils\._rebuild_\w+|torch\._tensor\._rebuild_from_type_v2|torch\.\w*Storage|torch\.(Size|device)"
    r"|torch\.(u?int\d*|float\d*|bfloat16|half|double|long|bool|complex\d*)|collections\.OrderedDict|_codecs\.encode"
)


def _pickle_globals(raw: bytes) -> list[str]:
    """The globals a pickle stream names, found by reading its opcodes (pickletools runs nothing).
    Legacy torch files are several pickles in a row; raises ValueError if the bytes are no pickle."""
    found: list[str] = []
    position, streams = 0, 0
    while position < len(raw) and streams < 5:
        strings: list[str] = []
        end = None
        for op, arg, pos in pickletools.genops(io.BytesIO(raw[position:])):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
            end = pos
        streams += 1
        if end is None:
            break
        position += end + 1
        if streams == 1 and not found and position < len(raw) and raw[position] != 0x80:
            break  # not another pickle: the raw storage bytes of a legacy file follow
    return found


def _refusal(path: Path, message: str) -> Exception:
    """Why torch's weights-only unpickler refused: code in the file (UnsafeInput) or damage."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                raw = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        else:
            raw = path.read_bytes()
        with warnings.catch_warnings():  # pickletools decodes junk STRING args with escape warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            named = _pickle_globals(raw)
    except Exception:  # noqa: BLE001 - unreadable as a pickle at all: damaged, not malicious
        named = None
    foreign = sorted({g for g in named or [] if not _TENSOR_GLOBALS.fullmatch(g)})
    if foreign:
        return UnsafeInput(
            f"{path} references {', '.join(foreign[:4])}: loading it would run code from the file, "
            "so it was refused unopened (only tensors and plain containers are accepted; "
            "if you trust the file, re-save its state dict alone)"
        )
    if "WeightsUnpickler" in message:
        detail = message.split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
    else:
        detail = message.splitlines()[0]
    return ConversionError(f"{path} is truncated or not a PyTorch checkpoint ({detail})")


def torch_load(path: str | Path, mmap: bool = False) -> object:
    """torch.load(weights_only=True), its refusals as one line each: UnsafeInput when the pickle names
    code, ConversionError when the bytes are damaged. Every reader of a torch pickle goes through here
    (convert, `--from`, `--resume`), so the same file gets the same answer everywhere."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them anyway
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise _refusal(Path(path), str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - weights_only unpickling of damaged bytes raises anything (IndexError, KeyError...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConversionError(f"{path} is truncated or not a PyTorch checkpoint ({first})") from None


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime: int, size: int) -> object:
    return torch_load(path, mmap=zipfile.is_zipfile(path))


@functools.lru_cache(maxsize=4)
def _load_fast(path: str, mtime: int, size: int) -> object:
    return torchzip.load(Path(path))


def load_pickle(path: Path) -> object:
    """The file's object: a plain zip-format state dict is read by torchzip (tensors as StoredTensor,
    no torch import); anything else by torch.load(weights_only=True)."""
    stat = path.stat()
    try:
        return _load_fast(str(path), stat.st_mtime_ns, stat.st_size)
    except torchzip.Unhandled as why:
        log.debug("%s: %s; loading it with torch.load(weights_only=True)", path, why)
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


def is_tensor(value: object) -> bool:
    if isinstance(value, torchzip.StoredTensor):
        return True
    torch = sys.modules.get("torch")  # a torch tensor exists only if torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(is_tensor(v) for v in obj.values())


def _entry(value) -> Entry:
    if isinstance(value, torchzip.StoredTensor):
        return Entry(value.shape, value.dtype, value.region)
    return Entry(tuple(value.shape), numpy_dtype_of_torch(value.dtype))


def _array(value) -> np.ndarray:
    return value.load() if isinstance(value, torchzip.StoredTensor) else torch_to_numpy(value)


def source_from_state_dict(state: Mapping, files: list[Path]) -> TensorSource:
    """Torch tensors (in memory or from torch.load) or StoredTensors, read when asked."""
    problems = [f"{k} is a {type(v).__name__}, not a tensor" for k, v in state.items() if not is_tensor(v)]
    if problems:
        raise ConversionError(problems)
    entries = {k: _entry(v) for k, v in state.items()}
    return TensorSource(entries, lambda name: _array(state[name]), files)


def state_dict_of(path: Path, obj: object | None = None) -> Mapping:
    """The state dict a pickle holds: the file's object itself, or its `state_dict` entry."""
    obj = load_pickle(path) if obj is None else obj
    if is_tensor_dict(obj):
        return obj  # type: ignore[return-value]
    if isinstance(obj, Mapping) and is_tensor_dict(obj.get("state_dict")):
        return obj["state_dict"]
    kinds = sorted(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise ConversionError(f"{path} is not a state dict of tensors (found {kinds})")


def sniff(obj: object, path: Path) -> bool:
    """Any pickle the more specific formats (NVIDIA, AzureML) did not claim."""
    return True


def from_object(obj: object, path: Path) -> TensorSource:
    """The tensors of a pickle already loaded (by detection) from `path`."""
    return source_from_state_dict(state_dict_of(path, obj), [path])


def read(path: Path) -> TensorSource:
    """`path`: a .bin/.pt/.pth state dict or a pytorch_model.bin.index.json."""
    if path.name.endswith(".index.json"):
        return _read_sharded(path)
    return from_object(load_pickle(path), path)


def _read_sharded(index: Path) -> TensorSource:
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConversionError(f"{index} has no weight_map")
    missing = [f for f in sorted(set(weight_map.values())) if not (index.parent / f).is_file()]
    if missing:
        raise ConversionError([f"{index.name} lists {f}, which is missing beside it" for f in missing])
    merged: dict = {}
    for file in sorted(set(weight_map.values())):
        merged.update(state_dict_of(index.parent / file))
    unlisted = sorted(set(merged) - set(weight_map))
    absent = sorted(set(weight_map) - set(merged))
    if unlisted or absent:
        raise ConversionError([f"{index.name} does not list {n}" for n in unlisted]
                              + [f"{index.name} lists {n}, which no shard holds" for n in absent])
    shards = sorted(set(weight_map.values()))
    return source_from_state_dict(merged, [index, *(index.parent / f for f in shards)])


def save_state_dict(path: Path, tensors) -> None:
    """What torch.save({name: tensor}) writes, streamed without torch; read back before it counts."""
    tensors = list(tensors)
    torchzip.save(path, tensors)
    try:
        written = torchzip.load(path)
    except torchzip.Unhandled as why:
        raise ConversionError(f"{path} does not read back as written ({why})") from None
    expected = {name: (t.shape, t.dtype) for name, t in tensors}
    if not isinstance(written, dict) or {k: (v.shape, v.dtype) for k, v in written.items()} != expected:
        raise ConversionError(f"{path} does not read back as written")


def write_weights(folder: Path, job: WriteJob, file: str = WEIGHTS) -> None:
    from bertvault.formats.safetensors import _shards

    groups = _shards(job.tensors, job.max_shard_size)
    if len(groups) == 1:
        save_state_dict(folder / file, job.tensors)
        return
    stem = file.rsplit(".", 1)[0]
    weight_map = {}
    for k, group in enumerate(groups, 1):
        shard = f"{stem}-{k:05d}-of-{len(groups):05d}.bin"
        save_state_dict(folder / shard, group)
        weight_map.update({name: shard for name, _ in group})
    total = sum(t.nbytes for _, t in job.tensors)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / f"{file}.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def write(dest: Path, job: WriteJob) -> None:
    if job.single_file:
        save_state_dict(dest, job.tensors)
        return
    dest.mkdir(parents=True, exist_ok=True)
    write_weights(dest, job)
    sidecars.write_hf_config(dest, job.config)
    sidecars.copy_vocab(dest, job.vocab_path, required=False, fmt="pt")
