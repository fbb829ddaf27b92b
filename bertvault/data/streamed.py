"""A `bertvault prepare` folder whose shards arrive one by one in a local folder while it is read.

Something else (pretrain's prefetcher) fetches the shards into `Arrivals.folder`, each complete
and verified before it takes its name there, and removes them once used. These readers only wait
for a shard to appear, then read what they need from it and close it again: no file stays open
or mapped between two examples, so a removed shard frees its disk space at once, and a reader in a
forked data-loader worker holds nothing the prefetcher must wait for.

A failed fetch leaves `FAILED` in the folder (the error's kind and message, JSON); a reader waiting
for a shard raises it as that error.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertvault import errors
from bertvault.data import features, shards, tfrecord
from bertvault.errors import DataError

FAILED = ".failed.json"
_POLL = (0.005, 0.2)  # first and longest pause between looks for a shard


@dataclass(frozen=True)
class Arrivals:
    """Where shards land, and how a reader waits for one."""

    folder: Path

    def path(self, name: str) -> Path:
        """The shard `name` once it is there; raises the fetch's error if it failed."""
        path = self.folder / name
        pause = _POLL[0]
        while not path.is_file():
            self.raise_failure()
            time.sleep(pause)
            pause = min(pause * 2, _POLL[1])
        return path

    def raise_failure(self) -> None:
        try:
            failure = json.loads((self.folder / FAILED).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        kind = getattr(errors, str(failure.get("kind")), None)
        if not (isinstance(kind, type) and issubclass(kind, errors.BertvaultError)):
            kind = DataError
        raise kind(str(failure.get("message", "fetching a shard failed")))

    def fail(self, error: errors.BertvaultError) -> None:
        shards.write_json(self.folder, FAILED, {"kind": type(error).__name__, "message": str(error)})


def _pread(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, size, offset)
    finally:
        os.close(fd)
    if len(data) != size:
        raise DataError(f"{path}: {size} bytes at {offset} asked, {len(data)} there; the shard is truncated")
    return data


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _npy_layout(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """(offset of the data, shape, dtype) of a C-order .npy file."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = _HEADER_READERS.get(version)
            if read is None:
                raise ValueError(f".npy format version {version}")
            shape, fortran, dtype = read(handle)
            offset = handle.tell()
    except ValueError as exc:
        raise DataError(f"{path}: not a .npy array ({exc})") from None
    if fortran or dtype.hasobject:
        raise DataError(f"{path}: a Fortran-order or object array, not a shard bertvault wrote")
    return offset, shape, dtype


class _StreamedShards:
    """What both kinds share: the header's shards, and where each one's examples start."""

    def __init__(self, arrivals: Arrivals, header: dict):
        self.arrivals = arrivals
        self.entries = header["shards"]
        self.seq_len = header["seq_len"]
        self.shard_counts = [int(e["examples"]) for e in self.entries]
        self.bounds = np.cumsum([0] + self.shard_counts)


class StreamedNative(_StreamedShards):
    """Native shards (token ids + index per shard), read with pread as they arrive."""

    def __init__(self, arrivals: Arrivals, header: dict):
        super().__init__(arrivals, header)
        self._layouts: dict[str, tuple] = {}

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def files(self, shard: int) -> list[str]:
        return [self.entries[shard]["ids"], self.entries[shard]["index"]]

    def _layout(self, name: str, check) -> tuple[Path, int, np.dtype, tuple[int, ...]]:
        path = self.arrivals.path(name)
        if name not in self._layouts:
            offset, shape, dtype = _npy_layout(path)
            check(path, shape, dtype)
            self._layouts[name] = (offset, dtype, shape)
        offset, dtype, shape = self._layouts[name]
        return path, offset, dtype, shape

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        shard = int(np.searchsorted(self.bounds, i, side="right")) - 1
        entry, row = self.entries[shard], i - int(self.bounds[shard])

        def index_ok(path, shape, dtype):
            if shape != (entry["examples"], 4) or dtype != np.int64:
                raise DataError(f"{path}: index of shape {shape} ({dtype}); the header says "
                                f"({entry['examples']}, 4) int64")

        def ids_ok(path, shape, dtype):
            if len(shape) != 1 or dtype.kind not in "iu":
                raise DataError(f"{path}: token ids of shape {shape} ({dtype}); expected a 1-D integer array")

        path, offset, _, _ = self._layout(entry["index"], index_ok)
        start, len_a, len_b, label = np.frombuffer(_pread(path, offset + 32 * row, 32), "<i8").tolist()
        path, offset, dtype, shape = self._layout(entry["ids"], ids_ok)
        if start < 0 or len_a < 0 or len_b < 0 or start + len_a + len_b > shape[0]:
            raise DataError(f"{path}: example {row} points outside the shard's {shape[0]} token ids")
        data = _pread(path, offset + start * dtype.itemsize, (len_a + len_b) * dtype.itemsize)
        tokens = np.frombuffer(data, dtype).astype(np.int64)
        return tokens[:len_a], tokens[len_a:], label


class StreamedTFRecords(_StreamedShards):
    """TFRecord shards of a prepared folder, indexed when they arrive (in each process that reads them)."""

    KEEP = 16  # record indexes kept per process: items are read in order, a few shards at a time

    def __init__(self, arrivals: Arrivals, header: dict):
        super().__init__(arrivals, header)
        self._indexes: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def files(self, shard: int) -> list[str]:
        return [self.entries[shard]["file"]]

    def _index(self, shard: int, path: Path) -> np.ndarray:
        found = self._indexes.get(shard)
        if found is None:
            found = tfrecord.index(path)
            if len(found) != self.shard_counts[shard]:
                raise DataError(f"{path}: {len(found)} records; the header says {self.shard_counts[shard]}")
            if len(self._indexes) >= self.KEEP:
                self._indexes.pop(next(iter(self._indexes)))
            self._indexes[shard] = found
        return found

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        shard = int(np.searchsorted(self.bounds, i, side="right")) - 1
        row = i - int(self.bounds[shard])
        path = self.arrivals.path(self.entries[shard]["file"])
        offset, length = (int(v) for v in self._index(shard, path)[row])
        data = _pread(path, offset, length + 4)
        if tfrecord.masked_crc(data[:length]) != int.from_bytes(data[length:], "little"):
            raise DataError(f"{path}: corrupt record at byte {offset} (data checksum mismatch)")
        return features.pair_from_google(tfrecord.decode_example(data[:length], f"{path} record {row}"))


@dataclass(frozen=True)
class StreamedFolder:
    """A prepared folder being streamed into `arrivals.folder`, where its header and vocab already are."""

    arrivals: Arrivals
    header: dict

    @property
    def folder(self) -> Path:
        return self.arrivals.folder

    def open(self):
        kinds = {"native": StreamedNative, "tfrecord": StreamedTFRecords}
        return kinds[self.header["kind"]](self.arrivals, self.header)
