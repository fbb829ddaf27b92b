"""Key-map operations on real arrays: the strip transpose against numpy's own, on awkward shapes."""

from __future__ import annotations

import numpy as np
import pytest

from bertvault.convert import ops
from bertvault.formats.tensors import LazyTensor, bfloat16

SHAPES = [(1, 1), (1, 300), (300, 1), (64, 64), (65, 3), (130, 70), (200, 128), (0, 4)]  # strips of 64 rows


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_transpose_matches_numpy_on_every_shape(shape: tuple[int, int], dtype: str) -> None:
    rng = np.random.default_rng(0)
    array = rng.standard_normal(shape).astype(bfloat16() if dtype == "bfloat16" else dtype)
    out = ops._transpose(array)
    assert out.flags.c_contiguous
    assert out.dtype == array.dtype
    assert np.array_equal(out.view(np.uint8), np.ascontiguousarray(array.T).view(np.uint8))


def test_transpose_reads_a_strided_source_and_leaves_it_alone() -> None:
    base = np.arange(200 * 150, dtype=np.float32).reshape(200, 150)
    view = base[::2, 10:]  # not contiguous, as a slice of a mapped checkpoint may be
    before = base.copy()
    assert np.array_equal(ops._transpose(view), view.T)
    assert np.array_equal(base, before)


def test_forward_then_backward_transpose_is_the_identity() -> None:
    array = np.arange(97 * 33, dtype=np.float32).reshape(97, 33)
    tensor = LazyTensor(array.shape, array.dtype, "k", lambda: array)
    there = ops.forward("transpose", tensor, {})
    assert there.shape == (33, 97)
    back = ops.backward("transpose", there, array.shape)
    assert np.array_equal(back.load(), array)
