"""PyTorch's zip checkpoints (what `torch.save` writes since 1.6), read and written without torch.

Importing torch costs about 2 CPU-seconds, more than copying a BERT-large file; converting a plain
state dict needs none of it. The format is a stored (uncompressed) zip: `<archive>/data.pkl`, a
pickle of the object whose tensors are persistent references to `<archive>/data/<key>` records,
each record 64-byte aligned, plus small records torch reads (`.format_version`,
`.storage_alignment`, `byteorder`, `version`, `.data/serialization_id`).

Reading unpickles with a restricted Unpickler: it resolves exactly the names a plain state dict
uses (torch._utils._rebuild_tensor_v2, torch.<T>Storage, collections.OrderedDict) to inert
stand-ins of its own and refuses every other global, so nothing in the file can run. Anything it
does not handle (another global, a legacy or big-endian file, a non-contiguous tensor, damage) is
`Unhandled`: the caller then uses `torch.load(weights_only=True)`, which refuses unsafe files
with its own diagnosis. Tensors come back as `StoredTensor`s, mapped from the file when loaded.

Writing produces what `torch.save({name: tensor, ...})` produces, record for record; the tensors
are written at their planned offsets on worker threads (rawio.write_placed), with the zip CRCs.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import secrets
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertvault.errors import ConversionError
from bertvault.formats.base import placed
from bertvault.formats.rawio import MappedFile, crc32, preallocate, pwrite_all, write_placed
from bertvault.formats.tensors import LazyTensor, bfloat16

ALIGNMENT = 64
ARCHIVE = "archive"
STORAGES = {"FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
            "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32",
            "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}
_STORAGE_OF = {dtype: name for name, dtype in STORAGES.items()}


class Unhandled(Exception):
    """Not a file this module reads; torch.load(weights_only=True) decides."""


def _dtype(name: str) -> np.dtype:
    return bfloat16() if name == "bfloat16" else np.dtype(name)


# ---------------------------------------------------------------------------------------- reading

@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: str


@dataclass(frozen=True, slots=True)
class _Storage:
    file: MappedFile
    offset: int  # of its bytes in the file
    dtype: np.dtype
    numel: int


@dataclass(frozen=True, slots=True)
class StoredTensor:
    """A tensor in a torch zip file, read (mapped) when `load` is called."""

    storage: _Storage
    start: int  # in elements of the storage
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype

    @property
    def region(self) -> tuple[Path, int]:
        return self.storage.file.path, self.storage.offset + self.start * self.storage.dtype.itemsize

    def load(self) -> np.ndarray:
        count = int(np.prod(self.shape, dtype=np.int64))
        itemsize = self.storage.dtype.itemsize
        if not count:
            return np.empty(self.shape, dtype=self.storage.dtype)
        offset = self.storage.offset + self.start * itemsize
        return self.storage.file.array(offset, self.storage.dtype, self.shape)


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2: checks its arguments, builds a StoredTensor."""
    ints = (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride)))
    if not (isinstance(storage, _Storage) and ints and isinstance(requires_grad, bool)) or backward_hooks \
            or metadata or len(size) != len(stride):
        raise Unhandled("an unusual tensor record")
    numel = int(np.prod(size, dtype=np.int64))
    if numel and any(s != c for s, c, n in zip(stride, _contiguous_strides(size), size) if n > 1):
        raise Unhandled("a non-contiguous tensor")
    if storage_offset + numel > storage.numel:
        raise Unhandled("a tensor larger than its storage")
    return StoredTensor(storage, storage_offset, size)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storage: Callable[[str, np.dtype, int], _Storage]):
        super().__init__(io.BytesIO(data))
        self._storage = storage

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGES:
            return _StorageType(STORAGES[name])
        raise Unhandled(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int) and pid[4] >= 0):
            raise Unhandled("an unusual storage reference")
        return self._storage(pid[2], _dtype(pid[1].dtype), pid[4])


def _data_offset(raw, info: zipfile.ZipInfo) -> int:
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise Unhandled("a damaged zip entry")
    name_length, extra_length = struct.unpack_from("<HH", header, 26)
    return info.header_offset + 30 + name_length + extra_length


def load(path: Path) -> object:
    """The unpickled object, tensors as StoredTensor. Raises Unhandled for anything else."""
    try:
        if not zipfile.is_zipfile(path):
            raise Unhandled("not a zip file")
        with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
            records = {info.filename: info for info in archive.infolist()}
            pickles = [n for n in records if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise Unhandled("no single data.pkl")
            prefix = pickles[0][: -len("data.pkl")]
            if prefix + "byteorder" in records and archive.read(prefix + "byteorder") != b"little":
                raise Unhandled("a big-endian file")
            data = archive.read(pickles[0])  # zipfile checks this record's CRC
            mapped = MappedFile(path)
            storages: dict[str, _Storage] = {}

            def storage(key: str, dtype: np.dtype, numel: int) -> _Storage:
                if key not in storages:
                    info = records.get(f"{prefix}data/{key}")
                    if (info is None or info.compress_type != zipfile.ZIP_STORED
                            or info.file_size < numel * dtype.itemsize):
                        raise Unhandled(f"storage {key} is missing, compressed or short")
                    storages[key] = _Storage(mapped, _data_offset(raw, info), dtype, numel)
                elif storages[key].dtype != dtype or storages[key].numel != numel:
                    raise Unhandled(f"storage {key} is referenced as two types")
                return storages[key]

            return _Unpickler(data, storage).load()
    except Unhandled:
        raise
    except Exception as exc:  # noqa: BLE001 - any surprise in the file: torch's loader gives the diagnosis
        raise Unhandled(f"{type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------------------- writing

class _Pickle:
    """The pickle torch.save writes for a dict of tensors (protocol 2), opcode by opcode: the
    standard pickler would have to import torch to name torch's functions."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02}(")  # PROTO 2, EMPTY_DICT, MARK

    def text(self, value: str) -> None:
        data = value.encode("utf-8")
        self.out += b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE

    def int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])  # BININT1
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)  # BININT2
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)  # BININT
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data  # LONG1

    def ints(self, values: tuple[int, ...]) -> None:
        self.out += b"("  # MARK
        for value in values:
            self.int(value)
        self.out += b"t"  # TUPLE

    def global_(self, module: str, name: str) -> None:
        self.out += f"c{module}\n{name}\n".encode()  # GLOBAL

    def tensor(self, name: str, storage: str, key: str, shape: tuple[int, ...]) -> None:
        numel = int(np.prod(shape, dtype=np.int64))
        self.text(name)
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("  # MARK (the call's arguments), MARK (the storage's persistent id)
        self.text("storage")
        self.global_("torch", storage)
        self.text(key)
        self.text("cpu")
        self.int(numel)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self.int(0)  # storage offset
        self.ints(shape)
        self.ints(_contiguous_strides(shape))
        self.out += b"\x89"  # NEWFALSE: requires_grad
        self.global_("collections", "OrderedDict")
        self.out += b")RtR"  # EMPTY_TUPLE, REDUCE (the empty hooks), TUPLE, REDUCE (the tensor)

    def finish(self) -> bytes:
        return bytes(self.out + b"u.")  # SETITEMS, STOP


_ZIP64_LIMIT = 0xFFFFFFFF
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, as torch writes


@dataclass
class _Record:
    name: str
    size: int
    header: int = 0  # offset of the local header
    data: int = 0  # offset of the bytes
    crc: int = 0

    @property
    def zip64(self) -> bool:
        return self.size >= _ZIP64_LIMIT or self.header >= _ZIP64_LIMIT

    def local_header(self) -> bytes:
        name = self.name.encode()
        big = self.size >= _ZIP64_LIMIT
        extra = struct.pack("<HHQQ", 1, 16, self.size, self.size) if big else b""
        fixed = 30 + len(name) + len(extra)
        padding = (self.data - self.header) - fixed - 4
        extra += struct.pack("<HH", 0x4246, padding) + b"Z" * padding  # "FB": torch's alignment padding
        size32 = _ZIP64_LIMIT if big else self.size
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if big else 20, 0, 0, 0, _DOS_DATE, self.crc,
                             size32, size32, len(name), len(extra))
        return header + name + extra

    def central_header(self) -> bytes:
        name = self.name.encode()
        fields = []
        if self.size >= _ZIP64_LIMIT:
            fields += [self.size, self.size]
        if self.header >= _ZIP64_LIMIT:
            fields.append(self.header)
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        size32 = min(self.size, _ZIP64_LIMIT)
        version = 45 if self.zip64 else 20
        header = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, 0, 0, _DOS_DATE, self.crc,
                             size32, size32, len(name), len(extra), 0, 0, 0, 0,
                             min(self.header, _ZIP64_LIMIT))
        return header + name + extra


def _place(records: list[_Record]) -> int:
    """Offsets for each record, its bytes aligned like torch's; returns where the directory starts."""
    at = 0
    for record in records:
        record.header = at
        zip64 = 20 if record.size >= _ZIP64_LIMIT else 0
        fixed = 30 + len(record.name.encode()) + zip64 + 4  # + "FB" field
        record.data = at + fixed + (-(at + fixed) % ALIGNMENT)
        at = record.data + record.size
    return at


def _directory(records: list[_Record], start: int) -> bytes:
    central = b"".join(r.central_header() for r in records)
    end = start + len(central)
    count = len(records)
    zip64 = (struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), start)
             + struct.pack("<IIQI", 0x07064B50, 0, end, 1))
    end_record = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                             min(len(central), _ZIP64_LIMIT), min(start, _ZIP64_LIMIT), 0)
    return central + zip64 + end_record


def save(path: Path, tensors: list[tuple[str, LazyTensor]]) -> None:
    """`torch.save({name: tensor for name, tensor in tensors}, path)`, streamed."""
    pickled = _Pickle()
    for key, (name, tensor) in enumerate(tensors):
        storage = _STORAGE_OF.get(tensor.dtype.name)
        if storage is None:
            raise ConversionError(
                f"{name}: a PyTorch checkpoint written by bertvault cannot hold dtype {tensor.dtype}"
            )
        pickled.tensor(name, storage, str(key), tensor.shape)
    small = {"data.pkl": pickled.finish(), ".format_version": b"1",
             ".storage_alignment": str(ALIGNMENT).encode(), "byteorder": b"little"}
    serialization_id = "".join(secrets.choice("0123456789") for _ in range(40)).encode()
    tail = {"version": b"3\n", ".data/serialization_id": serialization_id}
    records = [_Record(f"{ARCHIVE}/{n}", len(b), crc=crc32(b)) for n, b in small.items()]
    records += [_Record(f"{ARCHIVE}/data/{k}", t.nbytes) for k, (_, t) in enumerate(tensors)]
    records += [_Record(f"{ARCHIVE}/{n}", len(b), crc=crc32(b)) for n, b in tail.items()]
    directory_at = _place(records)
    contents = {**small, **tail}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        preallocate(fd, directory_at, path)
        stored = records[len(small):len(small) + len(tensors)]
        jobs = [placed(r.data, name, tensor) for r, (name, tensor) in zip(stored, tensors)]
        for record, crc in zip(stored, write_placed(fd, jobs, want_crc=True)):
            record.crc = crc
        for record in records:
            pwrite_all(fd, record.local_header(), record.header)
            if record.name[len(ARCHIVE) + 1:] in contents:
                pwrite_all(fd, contents[record.name[len(ARCHIVE) + 1:]], record.data)
        pwrite_all(fd, _directory(records, directory_at), directory_at)
    finally:
        os.close(fd)
