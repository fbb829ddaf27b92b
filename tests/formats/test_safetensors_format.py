"""The streaming safetensors writer produces files the safetensors library reads as written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from bertvault.errors import ConversionError
from bertvault.formats import safetensors as st
from bertvault.formats.base import WriteJob
from bertvault.formats.tensors import LazyTensor, bfloat16


def _lazy(array: np.ndarray, name: str) -> LazyTensor:
    return LazyTensor(array.shape, array.dtype, name, lambda: array)


def _job(tensors: dict[str, np.ndarray], **kw) -> WriteJob:
    return WriteJob([(k, _lazy(v, k)) for k, v in tensors.items()], {"hidden_size": 4}, None, None,
                    {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}, **kw)


@pytest.fixture
def arrays():
    rng = np.random.default_rng(1)
    return {"a": rng.standard_normal((3, 5)).astype(np.float32),
            "b": rng.standard_normal(7).astype(np.float16),
            "c": np.arange(6, dtype=np.int64).reshape(2, 3), "empty": np.zeros((0, 4), np.float32)}


def test_streamed_file_equals_what_the_library_reads(tmp_path, arrays):
    path = tmp_path / "x.safetensors"
    st.write(path, _job(arrays, single_file=True))
    loaded = load_file(path)
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)
    with safe_open(path, "np") as handle:
        meta = handle.metadata()
    assert meta["format"] == "pt"
    assert json.loads(meta["bertvault.tied"]) == {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"
    }
    assert json.loads(meta["bertvault.config"]) == {"hidden_size": 4}
    assert int.from_bytes(path.read_bytes()[:8], "little") % 8 == 0  # header padded: data 8-byte aligned


def test_bfloat16_round_trip(tmp_path):
    import torch
    from safetensors.torch import load_file as load_torch

    array = np.random.default_rng(2).standard_normal((4, 4)).astype(bfloat16())
    path = tmp_path / "b.safetensors"
    st.write(path, _job({"w": array}, single_file=True))
    assert load_torch(path)["w"].dtype == torch.bfloat16
    assert np.array_equal(st.read(path).load("w"), array)


def test_sharded_write_and_read(tmp_path, arrays):
    folder = tmp_path / "sharded"
    st.write(folder, _job(arrays, single_file=False, max_shard_size=64))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    source = st.read(folder / "model.safetensors.index.json")
    for name, array in arrays.items():
        assert np.array_equal(source.load(name), array)


def test_truncated_and_inconsistent_files_are_refused(tmp_path, arrays):
    path = tmp_path / "x.safetensors"
    st.write(path, _job(arrays, single_file=True))
    path.write_bytes(path.read_bytes()[:-9])
    with pytest.raises(ConversionError, match="truncated"):
        st.read(path)
    folder = tmp_path / "sharded"
    st.write(folder, _job(arrays, single_file=False, max_shard_size=64))
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["ghost"] = next(iter(data["weight_map"].values()))
    index.write_text(json.dumps(data))
    with pytest.raises(ConversionError, match="ghost"):
        st.read(index)
