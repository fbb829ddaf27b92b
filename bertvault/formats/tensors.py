"""Tensors that are read only when a writer asks for them, so a conversion holds one at a time.

A LazyTensor knows its shape and dtype up front (from a checkpoint's index or header) and how to
produce its values. Key-map operations wrap the loader; nothing is read while plans are made.
Values are numpy arrays: reading a TF checkpoint and writing safetensors then needs neither torch
nor TensorFlow (each costs seconds to import); bfloat16 comes from ml_dtypes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertvault.errors import ConversionError

DTYPE_CHOICES = ("keep", "fp32", "fp16", "bf16")


def bfloat16() -> np.dtype:
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def target_dtype(choice: str) -> np.dtype | None:
    """--dtype keep|fp32|fp16|bf16 as a numpy dtype (None: keep each tensor's own)."""
    if choice not in DTYPE_CHOICES:
        raise ConversionError(f"--dtype must be one of {', '.join(DTYPE_CHOICES)}, got {choice!r}")
    return {"keep": None, "fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}.get(choice) or (
        bfloat16() if choice == "bf16" else None
    )


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or dtype.name == "bfloat16"


@dataclass
class Entry:
    """What a reader knows about one tensor before reading it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    region: tuple[Path, int] | None = None  # (file, offset) where its bytes lie as they are, if they do


@dataclass(frozen=True)
class LazyTensor:
    shape: tuple[int, ...]
    dtype: np.dtype
    origin: str  # the key in the file it comes from, for messages
    loader: Callable[[], np.ndarray]
    # (file, offset) when the values are exactly the bytes there, in C order: a writer may copy
    # them file to file without reading them. Any operation on the values drops it.
    region: tuple[Path, int] | None = None

    def load(self) -> np.ndarray:
        array = self.loader()
        if tuple(array.shape) != self.shape:
            raise ConversionError(
                f"{self.origin}: the file holds shape {list(array.shape)} "
                f"but its index says {list(self.shape)}; the checkpoint is corrupt"
            )
        return array

    def then(self, fn: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...],
             dtype: np.dtype | None = None) -> LazyTensor:
        """A tensor computed from this one when loaded."""
        return LazyTensor(shape, dtype or self.dtype, self.origin, lambda: fn(self.load()))

    def cast(self, dtype: np.dtype | None) -> LazyTensor:
        if dtype is None or dtype == self.dtype or not is_float(self.dtype):
            return self
        return self.then(lambda a: a.astype(dtype), self.shape, dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


# torch <-> numpy, for the formats that are torch pickles and for the numerical check.

def torch_to_numpy(tensor) -> np.ndarray:
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.contiguous().view(torch.int16).numpy().view(bfloat16())
    return tensor.contiguous().numpy()


def numpy_to_torch(array: np.ndarray):
    import torch

    if array.dtype.name == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(array).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(array))


def numpy_dtype_of_torch(dtype) -> np.dtype:
    import torch

    if dtype == torch.bfloat16:
        return bfloat16()
    return np.dtype(torch.empty(0, dtype=dtype).numpy().dtype)
