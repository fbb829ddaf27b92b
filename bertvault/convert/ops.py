"""The operations a key map may apply to a tensor, each with its shape rule and its inverse.

Shapes are worked out before any tensor is read, so every mismatch is reported up front.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bertvault.convert.schema import resolve_shape
from bertvault.convert.tensors import LazyTensor


class OpError(ValueError):
    """A tensor's shape does not fit the operation the key map asks for."""


_STRIP = 64  # source columns per strip
_STRIP_BYTES = 512 << 10  # a strip stays in a core's L2 cache


def _transpose(a: np.ndarray) -> np.ndarray:
    """a.T, contiguous. numpy's own element-order copy reads a kernel across a page per element;
    instead, a strip of 64 columns is gathered into a small buffer (each source row contributes one
    contiguous 256-byte run), then transposed from cache into whole output rows. About 1.5x the
    8-rows-at-a-time copy for BERT's [1024, 1024] and [1024, 4096] kernels; taller ones, whose strip
    would not stay in cache, go 8 source rows at a time."""
    rows, cols = a.shape
    out = np.empty((cols, rows), dtype=a.dtype)
    if rows * _STRIP * a.dtype.itemsize > _STRIP_BYTES or cols < _STRIP:
        for start in range(0, rows, 8):
            out[:, start:start + 8] = a[start:start + 8].T
        return out
    strip = np.empty((rows, _STRIP), dtype=a.dtype)
    whole = cols - cols % _STRIP
    for start in range(0, whole, _STRIP):
        np.copyto(strip, a[:, start:start + _STRIP])
        out[start:start + _STRIP] = strip.T
    if whole < cols:
        out[whole:] = a[:, whole:].T
    return out


def padded_vocab(vocab_size: int) -> int:
    """NVIDIA pads the vocabulary to a multiple of 8 for tensor-core-friendly matmuls."""
    return vocab_size + (-vocab_size) % 8


def forward(op: Any, tensor: LazyTensor, symbols: dict[str, int]) -> LazyTensor:
    """Apply `op` in the reading direction (format -> canonical)."""
    shape = tensor.shape
    if op == "transpose":
        if len(shape) != 2:
            raise OpError(f"transpose needs a 2-D tensor, got shape {list(shape)}")
        return tensor.then(_transpose, (shape[1], shape[0]))
    if op == "vocab_rows":
        rows, vocab = shape[0], symbols["vocab_size"]
        if rows == vocab:
            return tensor
        if rows == padded_vocab(vocab) and rows > vocab:
            return tensor.then(lambda a: np.ascontiguousarray(a[:vocab]), (vocab, *shape[1:]))
        raise OpError(f"{rows} rows fit neither the vocabulary ({vocab}) nor its padding to a multiple of 8")
    kind, target = op
    new = resolve_shape(target, symbols, {})
    if new is None or math.prod(new) != math.prod(shape):
        raise OpError(f"cannot reshape {list(shape)} to {list(new or target)}")
    return tensor.then(lambda a: np.ascontiguousarray(a).reshape(new), new)


def backward(op: Any, tensor: LazyTensor, before: tuple[int, ...]) -> LazyTensor:
    """Undo `op` (writing direction); `before` is the shape the op was applied to."""
    if op == "transpose":
        return tensor.then(_transpose, before)
    if op == "vocab_rows":
        raise OpError("vocab_rows only trims padding when reading; this format is read-only")
    return tensor.then(lambda a: np.ascontiguousarray(a).reshape(before), before)


def shape_chain(ops: tuple, start: tuple[int, ...], symbols: dict[str, int]) -> list[tuple[int, ...]]:
    """The shape before each op and after the last, starting from a source shape."""
    probe = LazyTensor(start, np.dtype(np.float32), "", lambda: np.empty(0))
    shapes = [start]
    for op in ops:
        probe = forward(op, probe, symbols)
        shapes.append(probe.shape)
    return shapes
