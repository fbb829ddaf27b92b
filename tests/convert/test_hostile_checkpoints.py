"""Damaged and hostile checkpoints, configs and output places: each is one line and a documented exit
code, nothing is written, nothing is left half-done (issue #14's conversion cases, as classes)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_bert import listing
from typer.testing import CliRunner

from bertvault.cli import app

runner = CliRunner()
pytestmark = pytest.mark.timeout(300)


def _refused(workdir: Path, args: list, pattern: str, code: int = 5) -> str:
    before = listing(workdir)
    result = runner.invoke(app, ["convert", *map(str, args)])
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert pattern in result.stderr, result.stderr
    assert listing(workdir) == before  # nothing written, no temporaries left
    return result.stderr


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_of_a_tf1_index_is_one_error(sources, tmp_path_factory, data):
    """The index is a table of CRC-checked blocks: no flipped byte reaches a traceback or a wrong tensor."""
    work = _copy(sources("tf1").parent, tmp_path_factory.mktemp("flip") / "ckpt")
    index = work / "bert_model.ckpt.index"
    raw = bytearray(index.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    index.write_bytes(bytes(raw))
    result = runner.invoke(app, ["convert", str(work), "--to", "safetensors", "--no-check",
                                 "--out", str(work.parent / "out.safetensors")])
    assert result.exit_code in (0, 5), result.output
    if result.exit_code == 5:
        assert result.stderr.count("\n") == 1 and not (work.parent / "out.safetensors").exists()
    else:  # a byte the table does not use (the footer's padding): the tensors must still be exact
        from bertvault.convert import load_canonical

        assert load_canonical(work.parent / "out.safetensors").state_dict().keys() == \
            load_canonical(sources("tf1")).state_dict().keys()


def test_a_binary_checkpoint_state_file_beside_two_prefixes(sources, tmp_path):
    work = _copy(sources("tf1").parent, tmp_path / "ckpt")
    for part in list(work.glob("bert_model.ckpt.*")):
        shutil.copy(part, work / part.name.replace("bert_model.ckpt", "other.ckpt"))
    (work / "checkpoint").write_bytes(b"\xff\xfe\x00\x80model_checkpoint_path: \xc3")
    _refused(tmp_path, [work, "--to", "safetensors"], "holds several TF checkpoints")


def test_safetensors_config_metadata_that_is_not_an_object(sources, tmp_path):
    source = sources("safetensors")
    raw = source.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    header["__metadata__"] = {**header.get("__metadata__", {}), "bertvault.config": "[1, 2, 3]"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    hostile = tmp_path / "in" / "model.safetensors"
    hostile.parent.mkdir()
    data = raw[8 + length:]
    hostile.write_bytes(struct.pack("<Q", len(text)) + text + data)
    _refused(tmp_path, [hostile, "--to", "pt", "--out", tmp_path / "o.bin"], "is not a JSON object")


@pytest.mark.parametrize("field, value, says", [
    ("layer_norm_eps", "x", "layer_norm_eps must be a number above 0"),
    ("hidden_dropout_prob", 7, "hidden_dropout_prob must be a number in [0, 1)"),
    ("num_attention_heads", True, "num_attention_heads must be a positive whole number"),
    ("hidden_act", ["gelu"], "hidden_act must be an activation name"),
])
def test_a_config_with_values_of_the_wrong_kind(sources, tmp_path, field, value, says):
    work = _copy(sources("hf"), tmp_path / "ckpt")
    config = json.loads((work / "config.json").read_text())
    (work / "config.json").write_text(json.dumps({**config, field: value}))
    _refused(tmp_path, [work, "--to", "tf1", "--check"], says)


def test_a_config_with_fewer_layers_than_the_weights(sources, tmp_path):
    work = _copy(sources("tf1").parent, tmp_path / "ckpt")
    config = json.loads((work / "bert_config.json").read_text())
    (work / "bert_config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    _refused(tmp_path, [work, "--to", "safetensors", "--out", tmp_path / "o.safetensors"],
             "is layer 1, but the config has 1 layers")


def test_out_below_a_regular_file(sources, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    _refused(tmp_path,
             [sources("hf"), "--to", "safetensors", "--out", tmp_path / "afile" / "sub" / "m.safetensors"],
             "is a file, not a folder")


def _mount(where: Path, options: str) -> None:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip()}); needs root")


def test_out_on_a_read_only_filesystem(sources, tmp_path):
    disk = tmp_path / "ro"
    _mount(disk, "size=1m,ro")
    try:
        _refused(tmp_path, [sources("hf"), "--to", "safetensors", "--out", disk / "m.safetensors"],
                 "read-only or no permission")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("to, name", [("safetensors", "m.safetensors"), ("hf", "hf")])
def test_a_disk_that_fills_up_after_the_weights_leaves_nothing(sources, tmp_path, to, name):
    """Room for the weights (reserved first) but not for the provenance record: no output, no
    temporary, no 0-byte record left, one line."""
    probe = tmp_path / "probe"
    result = runner.invoke(app, ["convert", str(sources("hf")), "--to", to, "--no-check",
                                 "--out", str(probe / name)])
    assert result.exit_code == 0, result.output
    need = sum(-(-f.stat().st_size // 4096) * 4096 for f in probe.rglob("*") if f.is_file()
               and "provenance" not in f.name)
    disk = tmp_path / "small"
    _mount(disk, f"size={need}")
    try:
        result = runner.invoke(app, ["convert", str(sources("hf")), "--to", to, "--no-check",
                                     "--out", str(disk / name)])
        assert result.exit_code == 5, result.output
        assert result.stderr.count("\n") == 1 and "space" in result.stderr, result.stderr
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_cache_gc_removes_what_a_killed_conversion_left(isolated_env, tmp_path):
    """A conversion killed mid-write leaves its temporary in converted/; `cache gc` sees it once its
    process is gone, and leaves a live one's alone."""
    from bertvault.cache import layout

    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = layout.converted_dir("some-model", "safetensors").parent
    folder.mkdir(parents=True)
    left = folder / f".safetensors.bvtmp-{dead.pid}-0a0b0c0d"
    left.mkdir()
    (left / "model.safetensors").write_bytes(os.urandom(4096))
    live = folder / f".hf.bvtmp-{os.getpid()}-0a0b0c0d"
    live.mkdir()
    result = runner.invoke(app, ["cache", "gc"])
    assert result.exit_code == 0, result.output
    assert not left.exists() and live.exists()
