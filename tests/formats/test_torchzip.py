"""torch's zip checkpoints without torch: what bertvault writes is what torch reads, and back."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from bertvault.formats import pt, torchzip
from bertvault.formats.tensors import LazyTensor, bfloat16, torch_to_numpy

ARRAYS = {
    "bert.embeddings.word_embeddings.weight":
        np.random.default_rng(0).standard_normal((83, 32)).astype(np.float32),
    "half": np.arange(12, dtype=np.float16).reshape(3, 4),
    "brain": (np.arange(7, dtype=np.float32) / 3).astype(bfloat16()),
    "double": np.array(2.5),  # 0-d
    "empty": np.zeros((0, 5), dtype=np.float32),
    "ids": np.arange(70000, dtype=np.int64),  # a size that needs BININT/LONG opcodes in the pickle
    "mask": np.array([True, False, True]),
}


def _lazy(arrays):
    return [(name, LazyTensor(a.shape, a.dtype, name, lambda a=a: a)) for name, a in arrays.items()]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("mmap", [False, True])
def test_what_bertvault_writes_torch_loads_bit_exact(tmp_path, mmap):
    path = tmp_path / "pytorch_model.bin"
    torchzip.save(path, _lazy(ARRAYS))
    loaded = torch.load(path, weights_only=True, mmap=mmap)
    assert list(loaded) == list(ARRAYS)
    for name, array in ARRAYS.items():
        assert _same(torch_to_numpy(loaded[name]), array), name
        assert loaded[name].is_contiguous() and not loaded[name].requires_grad
    with zipfile.ZipFile(path) as archive:  # an ordinary zip: every CRC right, every record stored
        assert archive.testzip() is None
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        assert {"archive/data.pkl", "archive/byteorder", "archive/version"} <= set(archive.namelist())


def test_records_are_aligned_for_mapping(tmp_path):
    path = tmp_path / "w.pt"
    torchzip.save(path, _lazy(ARRAYS))
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            at = info.header_offset
            name_length = int.from_bytes(raw[at + 26:at + 28], "little")
            extra_length = int.from_bytes(raw[at + 28:at + 30], "little")
            assert (info.header_offset + 30 + name_length + extra_length) % 64 == 0, info.filename


def test_reads_what_torch_saves_without_torch_semantics_lost(tmp_path):
    linear = torch.nn.Linear(4, 3)
    shared = torch.randn(5, 4)
    state = linear.state_dict()  # an OrderedDict carrying _metadata
    state["tied.a"] = shared
    state["tied.b"] = shared
    state["tail"] = shared[2:]  # a view at an offset into a shared storage
    state["bf16"] = torch.randn(6).to(torch.bfloat16)
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    loaded = torchzip.load(path)
    assert isinstance(loaded, OrderedDict) and list(loaded) == list(state)
    for name, tensor in state.items():
        assert isinstance(loaded[name], torchzip.StoredTensor)
        assert _same(loaded[name].load(), torch_to_numpy(tensor)), name
    assert loaded["tied.a"].storage is loaded["tied.b"].storage


def test_mapped_arrays_are_copy_on_write(tmp_path):
    path = tmp_path / "w.bin"
    torch.save({"w": torch.ones(1000)}, path)
    before = path.read_bytes()
    array = torchzip.load(path)["w"].load()
    array[:] = 7  # writable, as torch.from_numpy needs, and private
    assert path.read_bytes() == before


@pytest.mark.parametrize("state", [
    {"t": torch.randn(3, 4).t()},  # non-contiguous
    {"p": torch.nn.Parameter(torch.randn(2))},  # a Parameter, not a tensor
    {"u": torch.zeros(3, dtype=torch.uint16)},  # a dtype saved with _rebuild_tensor_v3
])
def test_anything_else_is_left_to_torch_weights_only(tmp_path, state):
    path = tmp_path / "w.bin"
    torch.save(state, path)
    with pytest.raises(torchzip.Unhandled):
        torchzip.load(path)
    if "u" not in state:  # pt still reads it, through torch.load(weights_only=True)
        source = pt.read(path)
        name = next(iter(state))
        assert np.array_equal(source.load(name), torch_to_numpy(state[name].detach().contiguous()))


def test_legacy_files_are_left_to_torch(tmp_path):
    path = tmp_path / "w.bin"
    torch.save({"a": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(torchzip.Unhandled, match="not a zip"):
        torchzip.load(path)
    assert np.array_equal(pt.read(path).load("a"), np.ones(3, dtype=np.float32))


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_code_in_the_pickle_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(2), "evil": _Payload(marker)}, path)
    with pytest.raises(torchzip.Unhandled, match="system"):
        torchzip.load(path)
    assert not marker.exists()


def test_a_storage_reference_must_name_a_storage_type_from_the_file(tmp_path):
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):  # a storage type spelled as a plain string, not resolved by find_class
            return ("storage", "FloatStorage", "0", "cpu", 2) if obj == "X" else None

    path = tmp_path / "w.bin"
    with zipfile.ZipFile(path, "w") as archive:
        body = io.BytesIO()
        Pickler(body, protocol=2).dump({"w": "X"})
        archive.writestr("archive/data.pkl", body.getvalue())
        archive.writestr("archive/data/0", np.ones(2, dtype=np.float32).tobytes())
    with pytest.raises(torchzip.Unhandled, match="storage reference"):
        torchzip.load(path)


def test_pt_writer_streams_through_torchzip(tmp_path, tiny):
    from bertvault.formats.base import WriteJob

    tensors = _lazy(tiny.state)
    job = WriteJob(tensors, tiny.config, None, True, {}, single_file=True)
    pt.write(tmp_path / "w.bin", job)
    loaded = torch.load(tmp_path / "w.bin", weights_only=True)
    assert all(_same(torch_to_numpy(loaded[k]), v) for k, v in tiny.state.items())
