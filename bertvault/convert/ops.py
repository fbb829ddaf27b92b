"""The operations a key map may apply to a tensor, each with its shape rule and its inverse.

Shapes are worked out before any tensor is read, so every mismatch is reported up front.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bertvault.convert.schema import resolve_shape
from bertvault.formats.tensors import LazyTensor


class OpError(ValueError):
    """A tensor's shape does not fit the operation the key map asks for."""


_STRIP = 64  # source rows per strip


def _transpose(a: np.ndarray) -> np.ndarray:
    """a.T, contiguous, a strip of 64 source rows at a time. numpy's whole-array copy walks the
    source down a column, one cache line (and, for a [1024, 4096] kernel, one page) per element;
    within a strip, the 64 rows' lines stay in L1 while 16 output rows are filled from them.
    About 3x the whole-array copy and 1.8x a 64-column gather on BERT-large's kernels (tests/convert/
    test_ops.py checks the values; benchmarks/bench_convert.py the speed)."""
    rows, cols = a.shape
    out = np.empty((cols, rows), dtype=a.dtype)
    for start in range(0, rows, _STRIP):
        out[:, start:start + _STRIP] = a[start:start + _STRIP].T
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
