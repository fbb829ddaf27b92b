"""safetensors files, single or sharded with model.safetensors.index.json.

Reading: `safe_open` validates the header (offsets in bounds and contiguous, the file long enough),
then each tensor is mapped in place from the file (rawio), bfloat16 included, with no copy and no
torch. Writing streams: the header (names, dtypes, shapes, offsets) is known before any tensor is
read, so each tensor is produced and written at its offset on a worker thread, then dropped
(rawio.write_placed). `safetensors.numpy.save_file` would need the whole model in memory at once;
this writes the same documented layout (8-byte little-endian header length, JSON header, raw
bytes), and every file is re-opened with `safe_open` before it counts as written.

The tie between the word embeddings and the MLM decoder (and between the two MLM biases) is kept as
one copy, recorded in the header metadata as `bertvault.tied`; the config goes in `bertvault.config`,
so a lone .safetensors file written here is readable without a config.json beside it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from bertvault.errors import ConversionError
from bertvault.formats import sidecars
from bertvault.formats.base import TensorSource, WriteJob, placed, read_json
from bertvault.formats.rawio import MappedFile, preallocate, pwrite_all, write_placed
from bertvault.formats.tensors import Entry, LazyTensor, bfloat16

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
          "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
_NAMES = {code: name for name, code in _CODES.items()}


def _np_dtype(code: str) -> np.dtype:
    name = _NAMES.get(code)
    if name is None:
        return np.dtype(object)
    return bfloat16() if name == "bfloat16" else np.dtype(name)


def _open(path: Path):
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(path), framework="np")
    except (SafetensorError, OSError) as exc:
        raise ConversionError(
            f"{path} is not a readable safetensors file ({exc}); it may be truncated"
        ) from None


def _data_offsets(path: Path) -> tuple[int, dict[str, int]]:
    """Where the data starts and each tensor's offset in it, from the header safe_open has validated."""
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    return 8 + length, {name: int(value["data_offsets"][0])
                        for name, value in header.items() if name != "__metadata__"}


def sniff(source: TensorSource, path: Path) -> bool:
    return True


def read(path: Path) -> TensorSource:
    """`path`: a .safetensors file or a model.safetensors.index.json. Tensors are mapped in place."""
    if path.name.endswith(".index.json"):
        return _read_sharded(path)
    handle = _open(path)  # validates the header: offsets in bounds, contiguous, the file long enough
    entries = {}
    base, offsets = _data_offsets(path)
    for name in handle.keys():
        part = handle.get_slice(name)
        entries[name] = Entry(tuple(part.get_shape()), _np_dtype(part.get_dtype()),
                              (path, base + offsets[name]))
    metadata = dict(handle.metadata() or {})
    del handle
    mapped = MappedFile(path)

    def load(name: str) -> np.ndarray:
        entry = entries[name]
        if entry.dtype == object:
            raise ConversionError(f"{path}: {name} has a dtype bertvault does not convert")
        return mapped.array(base + offsets[name], entry.dtype, entry.shape)

    return TensorSource(entries, load, [path], metadata, close=mapped.close)


def _read_sharded(index: Path) -> TensorSource:
    weight_map = _weight_map(index)
    shards = {file: read(index.parent / file) for file in sorted(set(weight_map.values()))}
    entries, owner = _merged(index, weight_map, shards)
    metadata = next(iter(shards.values())).metadata

    def close() -> None:
        for shard in shards.values():
            shard.close()

    return TensorSource(entries, lambda name: owner[name].load(name),
                        [index, *(index.parent / f for f in shards)], metadata, close)


def _weight_map(index: Path) -> dict[str, str]:
    """The index's tensor name -> shard file map; every shard it lists must be beside it."""
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConversionError(f"{index} has no weight_map")
    problems = [f"{index.name} lists {file}, which is missing beside it"
                for file in sorted(set(weight_map.values())) if not (index.parent / file).is_file()]
    if problems:
        raise ConversionError(problems)
    return weight_map


def _merged(index: Path, weight_map: dict[str, str],
            shards: dict[str, TensorSource]) -> tuple[dict[str, Entry], dict[str, TensorSource]]:
    """Each tensor's entry and the shard that holds it; the index and the shards must agree both ways."""
    problems = []
    entries, owner = {}, {}
    for name, file in weight_map.items():
        if name not in shards[file].entries:
            problems.append(f"{index.name} puts {name} in {file}, which does not hold it")
            continue
        entries[name], owner[name] = shards[file].entries[name], shards[file]
    for file, shard in shards.items():
        problems += [f"{file} holds {n}, which {index.name} does not list"
                     for n in shard.entries if n not in weight_map]
    if problems:
        raise ConversionError(problems)
    return entries, owner


def metadata_for(job: WriteJob) -> dict[str, str]:
    return {"format": "pt", "bertvault.config": json.dumps(job.config, sort_keys=True),
            "bertvault.tied": json.dumps(job.tied, sort_keys=True)}


def write_file(path: Path, tensors: list[tuple[str, LazyTensor]], metadata: dict[str, str]) -> None:
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for name, tensor in tensors:
        code = _CODES.get(tensor.dtype.name)
        if code is None:
            raise ConversionError(f"{name}: safetensors cannot hold dtype {tensor.dtype}")
        header[name] = {"dtype": code, "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + tensor.nbytes]}
        offset += tensor.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the format allows space padding; aligned data can be mapped in place
    base = 8 + len(blob)
    jobs, at = [], base
    for name, tensor in tensors:
        jobs.append(placed(at, name, tensor))
        at += tensor.nbytes
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        preallocate(fd, at, path)
        pwrite_all(fd, struct.pack("<Q", len(blob)) + blob, 0)
        write_placed(fd, jobs)
    finally:
        os.close(fd)
    _verify(path, tensors)


def _verify(path: Path, tensors: list[tuple[str, LazyTensor]]) -> None:
    written = read(path).entries
    expected = {name: (t.shape, t.dtype) for name, t in tensors}
    if {n: (e.shape, e.dtype) for n, e in written.items()} != expected:
        raise ConversionError(f"{path} does not read back as written")


def _shards(tensors: list[tuple[str, LazyTensor]], limit: int | None) -> list[list[tuple[str, LazyTensor]]]:
    groups: list[list[tuple[str, LazyTensor]]] = [[]]
    size = 0
    for item in tensors:
        if limit and groups[-1] and size + item[1].nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item[1].nbytes
    return groups


def write_weights(folder: Path, job: WriteJob, stem: str = "model") -> None:
    """model.safetensors, or model-0000k-of-0000n.safetensors + the index when over max_shard_size."""
    metadata = metadata_for(job)
    groups = _shards(job.tensors, job.max_shard_size)
    if len(groups) == 1:
        write_file(folder / f"{stem}.safetensors", job.tensors, metadata)
        return
    weight_map = {}
    for k, group in enumerate(groups, 1):
        file = f"{stem}-{k:05d}-of-{len(groups):05d}.safetensors"
        write_file(folder / file, group, metadata)
        weight_map.update({name: file for name, _ in group})
    total = sum(t.nbytes for _, t in job.tensors)
    index = {"metadata": {"total_size": total, **metadata}, "weight_map": weight_map}
    index_text = json.dumps(index, indent=2) + "\n"
    (folder / f"{stem}.safetensors.index.json").write_text(index_text, encoding="utf-8")


def write(dest: Path, job: WriteJob) -> None:
    if job.single_file:
        write_file(dest, job.tensors, metadata_for(job))
        return
    dest.mkdir(parents=True, exist_ok=True)
    write_weights(dest, job)
    sidecars.write_hf_config(dest, job.config)
    sidecars.copy_vocab(dest, job.vocab_path, required=False, fmt="safetensors")
