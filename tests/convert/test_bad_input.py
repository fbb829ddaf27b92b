"""Bad input: one clear line on stderr, a non-zero exit, nothing written, nothing executed."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess

import numpy as np
import pytest
from tiny_bert import listing
from typer.testing import CliRunner

from bertvault.cli import app

runner = CliRunner()


def _run(args):
    result = runner.invoke(app, ["convert", *map(str, args)])
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _refused(workdir, args, pattern, code=5):
    before = listing(workdir)
    result = _run(args)
    assert result.exit_code == code, result.stderr
    assert re.search(pattern, result.stderr), result.stderr
    assert listing(workdir) == before  # nothing written, no temporaries left
    return result


def test_missing_index_or_data(sources, tmp_path):
    ckpt = _copy(sources("tf1").parent, tmp_path / "ckpt")
    (ckpt / "bert_model.ckpt.index").unlink()
    _refused(tmp_path, [next(ckpt.glob("*.data-*")), "--to", "safetensors"],
             r"cannot tell the format|\.index is missing")
    ckpt2 = _copy(sources("tf1").parent, tmp_path / "ckpt2")
    next(ckpt2.glob("*.data-*")).unlink()
    _refused(tmp_path, [ckpt2, "--to", "safetensors"], r"data-00000-of-00001 is missing")


def test_truncated_and_corrupt_files(sources, tmp_path):
    folder = _copy(sources("safetensors").parent, tmp_path / "st")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    _refused(tmp_path, [weights, "--to", "pt"], r"not a readable safetensors file")


def test_random_bytes_as_pytorch_file(tmp_path):
    # torch's weights-only unpickler fails on noise in many ways (UnpicklingError, IndexError, KeyError,
    # UnicodeDecodeError...); each must become a domain error. 300 seeds meet them all.
    from bertvault.errors import ConversionError, UnsafeInput
    from bertvault.formats.pt import load_pickle

    rng = np.random.default_rng(0)
    for seed in range(300):
        junk = tmp_path / f"junk{seed}.bin"
        junk.write_bytes(rng.bytes(4096))
        if seed < 5:  # the whole command, as a user meets it
            folder = tmp_path / f"cli{seed}"
            folder.mkdir()
            junk = junk.rename(folder / "pytorch_model.bin")
            _refused(folder, [junk, "--to", "safetensors"],
                     r"truncated or not a PyTorch checkpoint|not a readable")
        else:
            with pytest.raises((ConversionError, UnsafeInput)):
                load_pickle(junk)


def test_unknown_key(sources, tmp_path, tiny):
    from safetensors.numpy import save_file

    folder = _copy(sources("safetensors").parent, tmp_path / "st")
    state = dict(tiny.state) | {"bert.encoder.layer.0.attention.self.rotary.weight": np.zeros(4, np.float32)}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    _refused(tmp_path, [folder / "model.safetensors", "--to", "tf1"],
             r"bert\.encoder\.layer\.0\.attention\.self\.rotary\.weight, which is not a BERT weight")


def test_shape_disagreeing_with_the_config(sources, tmp_path, tiny):
    folder = _copy(sources("safetensors").parent, tmp_path / "st")
    (folder / "config.json").write_text(json.dumps(tiny.config | {"intermediate_size": 48}))
    _refused(tmp_path, [folder / "model.safetensors", "--to", "tf1"],
             r"intermediate\.dense\.weight; the config needs \[48, 32\]")


def test_vocab_that_disagrees_with_the_embeddings(sources, tmp_path):
    folder = _copy(sources("safetensors").parent, tmp_path / "st")
    with open(folder / "vocab.txt", "a") as vocab:
        vocab.write("extra\n")
    _refused(tmp_path, [folder / "model.safetensors", "--to", "hf"],
             r"vocab\.txt has 84 tokens but the embeddings have 83 rows")


def test_existing_output_is_refused_without_force(sources, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _refused(tmp_path, [sources("hf"), "--to", "tf1", "--out", out],
             r"output folder .*out exists; pass --force")
    assert (out / "keep.txt").read_text() == "mine"


def test_a_pickle_carrying_code_never_runs(tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    folder = tmp_path / "evil"
    folder.mkdir()
    evil = pickle.dumps({"bert.embeddings.word_embeddings.weight": Evil()})
    (folder / "pytorch_model.bin").write_bytes(evil)
    _refused(tmp_path, [folder / "pytorch_model.bin", "--to", "safetensors"], r"posix\.system.*refused",
             code=6)
    assert not marker.exists()


def test_pre_ln_is_refused_with_the_reason(tmp_path, tiny):
    import torch

    folder = tmp_path / "bing"
    folder.mkdir()
    state = {f"module.{k}": torch.from_numpy(v) for k, v in tiny.state.items()}
    state["module.bert.encoder.layer.0.PreAttentionLayerNorm.weight"] = torch.ones(32)
    torch.save(state, folder / "training_state.pt")
    (folder / "config.json").write_text(json.dumps(tiny.config))
    _refused(tmp_path, [folder / "training_state.pt", "--to", "hf"], r"Pre-LN .*Post-LN")


def test_interrupted_conversion_leaves_nothing(sources, tmp_path, monkeypatch):
    from bertvault.formats import safetensors

    def explode(path, tensors, metadata):
        path.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors, "write_file", explode)
    before = listing(tmp_path)
    result = runner.invoke(app, ["convert", str(sources("hf")), "--to", "safetensors",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted"
    assert listing(tmp_path) == before


def test_a_full_disk_is_one_clear_error_before_any_work(sources, tmp_path):
    """The output's blocks are reserved first: on a disk too small for it, nothing is written."""
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({mounted.stderr.strip()}); needs root")
    try:
        for to, out in (("safetensors", disk / "model.safetensors"), ("pt", disk / "model.bin")):
            result = _run([sources("hf"), "--to", to, "--out", out])
            assert result.exit_code == 5
            assert re.search(r"not enough space for .*bytes needed, \d+ free", result.stderr)
            assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
