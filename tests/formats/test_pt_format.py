"""PyTorch pickles: tensors load, code never runs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from bertvault.errors import ConversionError, UnsafeInput
from bertvault.formats import pt


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("how", ["torch-zip", "torch-legacy", "raw-pickle"])
def test_a_pickle_carrying_code_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    state = {"bert.embeddings.word_embeddings.weight": torch.zeros(2, 2), "evil": Payload(marker)}
    if how == "raw-pickle":
        path.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=how == "torch-zip")
    assert not marker.exists()
    with pytest.raises(UnsafeInput, match="refused"):
        pt.read(path)
    assert not marker.exists()


def test_state_dicts_in_every_serialization(tmp_path):
    state = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
             "b": torch.ones(4, dtype=torch.bfloat16)}
    for legacy in (False, True):
        path = tmp_path / f"w{legacy}.pt"
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        source = pt.read(path)
        assert source.entries["a"].shape == (2, 3) and source.entries["b"].dtype.name == "bfloat16"
        assert np.array_equal(source.load("a"), state["a"].numpy())


def test_truncated_and_non_state_dict_files(tmp_path):
    path = tmp_path / "w.bin"
    torch.save({"a": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ConversionError, match="truncated or not a PyTorch checkpoint"):
        pt.read(path)
    other = tmp_path / "x.bin"
    torch.save({"a": torch.ones(2), "epoch": 3}, other)
    with pytest.raises(ConversionError, match="not a state dict"):
        pt.read(other)


def test_a_pickled_module_is_code_not_weights(tmp_path):
    path = tmp_path / "ckpt_1.pt"
    torch.save({"model": {"w": torch.ones(2)}, "data_loader": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(UnsafeInput, match="torch.nn.modules.linear.Linear"):
        pt.read(path)
