"""Serialized `tf.train.Example` records for a whole batch of examples at once, without protobuf.

protobuf serializes one message per call, about 25 µs per pretraining example here (more than it
takes to build the example); these are the same bytes for thousands of examples in a few numpy
operations. An Example whose features are all packed int64 or float lists is, on the wire:

    Example   = 0x0a len Features
    Features  = (0x0a len FeatureEntry)*        one map entry per feature
    Entry     = 0x0a len key 0x12 len Feature
    Feature   = 0x1a len Int64List | 0x12 len FloatList
    *List     = 0x0a len packed values          varints (int64), little-endian float32 (float)

Each example is a row of byte segments (constants, varints, packed values), every segment an
[n, width] byte array with a mask of the bytes a row uses; one boolean index lays all rows end to
end. The map entries come in key order, as protobuf's deterministic serialization writes them: its
default order follows a hash table seeded per process, which made the same examples different
bytes in every run. tests/data/test_tfexample.py holds these bytes to protobuf's.
"""

from __future__ import annotations

import struct

import crc32c
import numpy as np

_MASK_DELTA = 0xA282EAD8
_LIST_TAG = {"int64": 0x1A, "float": 0x12}  # Feature's int64_list (field 3) or float_list (2), delimited


class Rows:
    """The byte segments of n rows: constants, varints of [n, k] values, raw [n, w] bytes. `flat`
    lays them out in one [n, width] array (each segment written in place), then keeps the bytes
    each row uses with one boolean index, when some varint is shorter than its segment's width."""

    def __init__(self, n: int):
        self.n = n
        self.segments: list[tuple[str, object]] = []

    def const(self, raw: bytes) -> None:
        if self.segments and self.segments[-1][0] == "const":
            raw = self.segments.pop()[1] + raw
        self.segments.append(("const", raw))

    def raw(self, data: np.ndarray) -> None:
        self.segments.append(("raw", data))

    def varint(self, values: np.ndarray) -> None:
        values = values.reshape(self.n, -1)
        if self.n and values.shape[1] == 1 and (values == values[0]).all():  # a length every row shares
            self.const(_varint(int(values[0, 0])))
            return
        v, width = _unsigned(values)
        if width == 1:  # a varint under 128 is its own byte
            self.raw(v.astype(np.uint8, copy=False))
        else:
            self.segments.append(("varint", (v, width, _sizes(v, width))))

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(all rows' bytes end to end, each row's length)."""
        widths = [_width(kind, payload) for kind, payload in self.segments]
        data = np.empty((self.n, sum(widths)), np.uint8)
        mask, unused, at = None, np.zeros(self.n, np.int64), 0
        for (kind, payload), width in zip(self.segments, widths):
            part = data[:, at : at + width]
            if kind == "const":
                part[:] = np.frombuffer(payload, np.uint8)
            elif kind == "raw":
                part[:] = payload
            else:
                v, size, sizes = payload
                _fill_varints(part.reshape(self.n, -1, size), v, sizes)
                if (sizes != size).any():
                    mask = np.ones(data.shape, bool) if mask is None else mask
                    mask[:, at : at + width] = _used(sizes, size).reshape(self.n, width)
                    unused += width - sizes.sum(axis=1, dtype=np.int64)
            at += width
        if mask is None:
            return data.reshape(-1), np.full(self.n, data.shape[1], np.int64)
        return np.compress(mask.reshape(-1), data.reshape(-1)), data.shape[1] - unused  # (data[mask]: slower)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # a negative int64 as its two's complement
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _width(kind: str, payload) -> int:
    if kind == "const":
        return len(payload)
    if kind == "raw":
        return payload.shape[1]
    v, size, _ = payload
    return v.shape[1] * size


def _unsigned(values: np.ndarray) -> tuple[np.ndarray, int]:
    """(values as the narrowest unsigned type that holds them, bytes of their longest varint). A
    negative int64 is its two's complement, 10 bytes, as protobuf writes it."""
    values = np.asarray(values)
    top = int(values.max(initial=0))
    if int(values.min(initial=0)) < 0:
        return values.astype(np.int64).astype(np.uint64), 10
    kind = next(k for k in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(k).max)
    return values.astype(kind, copy=False), max(1, -(-top.bit_length() // 7))


def _sizes(v: np.ndarray, width: int) -> np.ndarray:
    """Bytes of each value's varint (v as `_unsigned` gives it, width its longest)."""
    sizes = np.ones(v.shape, np.uint8)
    for k in range(1, width):
        sizes += v >= (1 << (7 * k))
    return sizes


def varint_size(values: np.ndarray) -> np.ndarray:
    return _sizes(*_unsigned(values)).astype(np.int64)


def _fill_varints(target: np.ndarray, v: np.ndarray, sizes: np.ndarray) -> None:
    """Writes each value's varint into target[..., :its size] (target: [n, k, width] bytes)."""
    width = target.shape[-1]
    if width == 1:
        target[..., 0] = v
        return
    for j in range(width):
        part = ((v >> (7 * j)) & 0x7F).astype(np.uint8)
        if j < width - 1:
            part |= (sizes > j + 1).view(np.uint8) << 7
        target[..., j] = part


def _used(sizes: np.ndarray, width: int) -> np.ndarray:
    return np.stack([sizes > j for j in range(width)], axis=-1)  # (a broadcast compare is 10x slower)


def _packed(values: np.ndarray, kind: str) -> tuple[tuple[str, object], np.ndarray]:
    """A packed list's values as a segment, and their length in bytes per row."""
    n = len(values)
    if kind == "float":
        data = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).reshape(n, -1)
        return ("raw", data), np.full(n, data.shape[1], np.int64)
    v, width = _unsigned(values)
    if width == 1:
        return ("raw", v.astype(np.uint8, copy=False)), np.full(n, v.shape[1], np.int64)
    sizes = _sizes(v, width)
    return ("varint", (v, width, sizes)), sizes.sum(axis=1, dtype=np.int64)


def _example(rows: Rows, batch: dict[str, np.ndarray], kinds: dict[str, str]) -> np.ndarray:
    """Appends the segments of each row's serialized Example to `rows`; returns their lengths."""
    entries = []
    for name in sorted(batch):
        key = name.encode()
        values, packed = _packed(np.asarray(batch[name]).reshape(rows.n, -1), kinds[name])
        listed = 1 + varint_size(packed) + packed
        feature = 1 + varint_size(listed) + listed
        entry = 2 + len(key) + 1 + varint_size(feature) + feature
        entries.append((key, _LIST_TAG[kinds[name]], values, packed, listed, feature, entry))
    total = sum(1 + varint_size(e[-1]) + e[-1] for e in entries)
    rows.const(b"\x0a")
    rows.varint(total)
    for key, tag, values, packed, listed, feature, entry in entries:
        rows.const(b"\x0a")
        rows.varint(entry)
        rows.const(bytes([0x0A, len(key)]) + key + b"\x12")
        rows.varint(feature)
        rows.const(bytes([tag]))
        rows.varint(listed)
        rows.const(b"\x0a")
        rows.varint(packed)
        rows.segments.append(values)
    return 1 + varint_size(total) + total


def _n(batch: dict[str, np.ndarray]) -> int:
    return len(next(iter(batch.values())))


def encode(batch: dict[str, np.ndarray], kinds: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Serialized Examples of a batch of [n, k] feature arrays (kinds: name → int64 | float), laid
    end to end: (bytes, length of each)."""
    rows = Rows(_n(batch))
    _example(rows, batch, kinds)
    return rows.flat()


def masked_crc(data) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _heads(lengths: np.ndarray) -> np.ndarray:
    """[n, 12]: each record's length (uint64) and the masked CRC32C of those 8 bytes."""
    sizes, which = np.unique(lengths, return_inverse=True)  # the records of a batch share a few lengths
    raw = [struct.pack("<Q", size) for size in sizes.tolist()]
    table = b"".join(r + struct.pack("<I", masked_crc(r)) for r in raw)
    return np.frombuffer(table, np.uint8).reshape(-1, 12)[which.reshape(-1)]


def records(batch: dict[str, np.ndarray], kinds: dict[str, str]) -> np.ndarray:
    """A batch as TFRecord records, bytes end to end: for each Example, its length (uint64), the
    masked CRC32C of those 8 bytes, the Example, the masked CRC32C of the Example (little-endian)."""
    n = _n(batch)
    examples = Rows(n)
    lengths = _example(examples, batch, kinds)
    rows = Rows(n)
    rows.raw(_heads(lengths))
    rows.segments += examples.segments
    rows.raw(np.zeros((n, 4), np.uint8))  # the CRC, once the bytes are laid out
    flat, sizes = rows.flat()
    ends = np.cumsum(sizes)
    view = memoryview(flat)
    crcs = np.fromiter(map(crc32c.crc32c, map(view.__getitem__, map(slice, (ends - 4 - lengths).tolist(),
                                                                       (ends - 4).tolist()))), np.uint32, n)
    masked = ((crcs >> 15) | (crcs << 17)) + np.uint32(_MASK_DELTA)
    flat[(ends - 4)[:, None] + np.arange(4)] = masked.astype("<u4").view(np.uint8).reshape(n, 4)
    return flat
