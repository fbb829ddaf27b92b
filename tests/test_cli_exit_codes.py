"""Exit codes as the README's table gives them, command by command: a bad, missing or unknown option
is 2, said in one line before any work starts; every command that takes a name suggests the names
it may have meant, each artifact once."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from bertvault.cli import app

runner = CliRunner()
URL = "https://example.org/a/model.bin"


def _leaves(group=get_command(app), path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if not hasattr(group, "commands"):
        return [path]
    return [leaf for name, command in group.commands.items() for leaf in _leaves(command, (*path, name))]


@pytest.fixture
def text(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("One sentence here.\nAnother one.\n\nA second document.\nWith two lines.\n")
    return corpus


# (command line, what the one error line says); {text} is a small text file, {tmp} a fresh folder.
# prepare checks its options before it looks for the vocab (which does not exist here)
PREPARE = ["prepare", "{text}", "--vocab-from", "no-such-vocab", "--out", "{tmp}/o"]
PRETRAIN = ["pretrain", "--from", "bert-demo-tiny", "--data", "{text}", "--out", "{tmp}/r"]
CONVERT = ["convert", "bert-demo-tiny", "--to", "hf"]
BAD_OPTIONS = {
    "list --kind": (["list", "--kind", "model"], "--kind must be checkpoint or dataset"),
    "add --kind": (["add", "x", URL, "--kind", "model"], "--kind must be one of checkpoint, dataset"),
    "add --format": (["add", "x", URL, "--format", "onnx", "--arch", "2-32-4"], "--format must be one of"),
    "add without --arch": (["add", "x", URL], "a checkpoint needs --arch LAYERS-HIDDEN-HEADS"),
    "add --arch": (["add", "x", URL, "--arch", "2-32"], "--arch '2-32': expected LAYERS-HIDDEN-HEADS"),
    "manifest validate": (["manifest", "validate", "{tmp}/none.toml"], "no such manifest file"),
    "prepare --format": ([*PREPARE, "--format", "parquet"], "--format must be one of native, tfrecord"),
    "prepare --seq-len": ([*PREPARE, "--seq-len", "7"], "--seq-len 7 is below 8"),
    "prepare --masked-lm-prob": ([*PREPARE, "--masked-lm-prob", "2"], "--masked-lm-prob must be in (0, 1]"),
    "prepare --out s3": (["prepare", "{text}", "--vocab-from", "no-such-vocab", "--out", "s3://b/p"],
                         "other schemes are not supported"),
    "pretrain without --data": (["pretrain", "--from", "bert-demo-tiny", "--out", "{tmp}/r"],
                                "--data is required"),
    "pretrain --steps": ([*PRETRAIN, "--steps", "0"], "--steps must be at least 1"),
    "pretrain --optimizer": ([*PRETRAIN, "--optimizer", "sgd"], "--optimizer must be one of adamw, lamb"),
    "finetune --task": (["finetune", "--from", "bert-demo-tiny", "--task", "nope", "--train", "{text}",
                         "--eval", "{text}", "--out", "{tmp}/f"], "--task must be one of"),
    "evaluate glue --tasks": (["evaluate", "glue", "--from", "bert-demo-tiny", "--out", "{tmp}/g", "--tasks",
                               "nope"], "--tasks: no GLUE task 'nope'"),
    "pull --jobs": (["pull", "bert-demo-tiny", "--jobs", "0"], "--jobs must be at least 1"),
    "pull --progress": (["pull", "bert-demo-tiny", "--progress", "loud"], "--progress must be one of"),
    "pull --chunk-size": (["pull", "bert-demo-tiny", "--chunk-size", "3XB"], "--chunk-size '3XB': expected"),
    "verify a path": (["verify", "../meta/x"], "is not an artifact name"),
    "cache rm a path": (["cache", "rm", "../x"], "is not an artifact name"),
    "cache gc --partial-days": (["cache", "gc", "--partial-days", "-1"], "--partial-days must be 0 or more"),
    "convert --to": (["convert", "bert-demo-tiny", "--to", "onnx"],
                     "--to must be one of tf1, safetensors, pt, hf, azureml-pt, got 'onnx'"),
    "convert --to read-only": (["convert", "bert-demo-tiny", "--to", "tf2"], "--to must be one of"),
    "convert --dtype": ([*CONVERT, "--dtype", "fp8"], "--dtype must be one of"),
    "convert --from-format": ([*CONVERT, "--from-format", "onnx"], "--from-format must be one of"),
    "convert --max-shard-size": ([*CONVERT, "--max-shard-size", "big"], "--max-shard-size 'big'"),
    "push": (["push", "{text}", "ftp://example.org/x"], "use gs://BUCKET/PREFIX or hf://ORG/REPO"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_a_bad_option_is_exit_2_in_one_line(case: str, text, tmp_path) -> None:
    args, says = BAD_OPTIONS[case]
    result = runner.invoke(app, [a.format(text=text, tmp=tmp_path) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert not list(tmp_path.glob("[orfg]"))  # nothing was made


def test_every_problem_is_said_at_once() -> None:
    result = runner.invoke(app, ["convert", "bert-demo-tiny", "--to", "onnx", "--dtype", "fp8",
                                 "--max-shard-size", "big"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and all(
        part in result.stderr for part in ("--to must be", "--dtype must be", "--max-shard-size 'big'"))


@pytest.mark.parametrize("path", _leaves(), ids=" ".join)
def test_an_unknown_option_is_exit_2_for_every_command(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--no-such-option"])
    assert result.exit_code == 2 and "No such option: --no-such-option" in result.output


@pytest.mark.parametrize("path", [("info",), ("pull",), ("pin",), ("cache", "rm"), ("convert",), ("push",),
                                  ("add",), ("prepare",), ("manifest", "validate")], ids=" ".join)
def test_a_missing_argument_is_exit_2(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, list(path))
    assert result.exit_code == 2 and "Missing argument" in result.output


# Every command that takes an artifact name, given a misspelt one.
NAMED = {
    "info": ["info", "{name}"],
    "pull": ["pull", "{name}"],
    "pin": ["pin", "{name}"],
    "verify": ["verify", "{name}"],
    "cache rm": ["cache", "rm", "{name}"],
    "convert": ["convert", "{name}", "--to", "hf"],
    "push": ["push", "{name}", "gs://bucket/prefix"],
    "prepare --vocab-from": ["prepare", "{text}", "--vocab-from", "{name}", "--out", "{tmp}/o"],
    "pretrain --from": ["pretrain", "--from", "{name}", "--data", "{text}", "--out", "{tmp}/r"],
    "finetune --from": ["finetune", "--from", "{name}", "--train", "{text}", "--eval", "{text}",
                        "--out", "{tmp}/f"],
    "evaluate glue --from": ["evaluate", "glue", "--from", "{name}", "--out", "{tmp}/g", "--tasks", "rte"],
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(NAMED))
def test_every_command_that_takes_a_name_suggests_each_artifact_once(case: str, text, tmp_path) -> None:
    args = [a.format(name="bert-base-uncase", text=text, tmp=tmp_path) for a in NAMED[case]]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "did you mean 'bert-base-uncased'" in line, line
    suggested = re.findall(r"'([^']+)'", line.split("did you mean", 1)[1])
    from bertvault.registry import load_registry

    owners = [load_registry().get(name).name for name in suggested]
    assert len(owners) == len(set(owners)), f"an artifact suggested twice: {suggested}"


def test_a_cached_artifact_no_manifest_declares_can_still_be_removed(tmp_path, monkeypatch) -> None:
    from bertvault.cache import layout, metadata

    metadata.record_file("gone-from-manifests", "f.bin", {"sha256": "0" * 64, "size": 1})
    removed = runner.invoke(app, ["cache", "rm", "gone-from-manifests"])
    assert removed.exit_code == 0, removed.output
    assert "removed gone-from-manifests" in removed.stdout
    assert not layout.artifact_dir("gone-from-manifests").exists()
