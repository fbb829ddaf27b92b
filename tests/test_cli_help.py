"""`--help` as people read it at 80 columns: no line wider, no word broken at a hyphen, every example a
whole command a user can copy (a long one continued with a trailing backslash), usage lines in capitals."""

from __future__ import annotations

import re
import shlex

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from bertvault.cli import app

runner = CliRunner()
ROOT = get_command(app)


def _commands(group=ROOT, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every command and group, by its path of names (the root is ())."""
    found = {path: group}
    for name, command in getattr(group, "commands", {}).items():
        found.update(_commands(command, (*path, name)))
    return found


COMMANDS = _commands()


def _help(path: tuple[str, ...], width: int = 80) -> str:
    result = runner.invoke(app, [*path, "--help"], prog_name="bertvault", terminal_width=width,
                           env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def _examples(text: str) -> list[str]:
    """The example commands of a help page, each continued line joined to its start."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() in ("Examples:", "Example:")), None)
    if start is None:
        return []
    examples: list[str] = []
    continued = False
    for line in lines[start + 1:]:
        if not line.strip():
            break
        body = line.strip()
        if continued:
            examples[-1] += " " + body.removesuffix("\\").strip()
        else:
            assert body.startswith("bertvault "), f"an example line that is not a command: {line!r}"
            examples.append(body.removesuffix("\\").strip())
        continued = body.endswith("\\")
    assert not continued, "the last example ends in a continuation"
    return examples


def _option_names(command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)}


def test_every_command_has_help_with_examples() -> None:
    missing = [" ".join(path) for path, command in COMMANDS.items()
               if not hasattr(command, "commands") and not _examples(_help(path))]
    assert not missing, f"commands without an example: {missing}"
    assert len(COMMANDS) >= 20  # every command is here (pull, convert, cache rm, evaluate glue, ...)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "bertvault")
def test_help_fits_80_columns_and_breaks_no_word(path: tuple[str, ...]) -> None:
    text = _help(path)
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    # click breaks lines after a hyphen (`bert-large-` / `original`) unless held: none may end so
    broken = [line for line in text.splitlines() if re.search(r"\w-$", line)]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", sorted(p for p, c in COMMANDS.items() if not hasattr(c, "commands")),
                         ids=lambda p: " ".join(p))
def test_examples_are_whole_commands_with_real_options(path: tuple[str, ...]) -> None:
    for example in _examples(_help(path)):
        words = shlex.split(example)
        assert words[:len(path) + 1] == ["bertvault", *path], example
        unknown = {w.split("=")[0] for w in words if w.startswith("--")} - _option_names(COMMANDS[path])
        assert not unknown, f"{example!r} uses options {path} does not have: {unknown}"


def test_the_top_level_examples_name_real_commands() -> None:
    for example in _examples(_help(())):
        words = shlex.split(example)
        assert (words[1],) in COMMANDS or words[1] == "COMMAND", example


@pytest.mark.parametrize("path", sorted(p for p, c in COMMANDS.items() if not hasattr(c, "commands")),
                         ids=lambda p: " ".join(p))
def test_usage_names_arguments_in_capitals(path: tuple[str, ...]) -> None:
    usage = _help(path).splitlines()[0]
    assert usage.startswith(f"Usage: bertvault {' '.join(path)} [OPTIONS]")
    arguments = usage.split("[OPTIONS]", 1)[1].split()
    assert all(re.fullmatch(r"\[?[A-Z]+(\.\.\.)?\]?", a) for a in arguments), usage


def test_usage_lines_as_written() -> None:
    expected = {
        ("info",): "Usage: bertvault info [OPTIONS] NAME",
        ("pull",): "Usage: bertvault pull [OPTIONS] NAME",
        ("convert",): "Usage: bertvault convert [OPTIONS] SOURCE",
        ("prepare",): "Usage: bertvault prepare [OPTIONS] INPUT...",
        ("add",): "Usage: bertvault add [OPTIONS] NAME URL...",
        ("verify",): "Usage: bertvault verify [OPTIONS] [NAME...]",
        ("push",): "Usage: bertvault push [OPTIONS] SOURCE DEST",
        ("cache", "rm"): "Usage: bertvault cache rm [OPTIONS] NAME",
        ("manifest", "validate"): "Usage: bertvault manifest validate [OPTIONS] FILE...",
    }
    assert {path: _help(path).splitlines()[0] for path in expected} == expected
    missing = runner.invoke(app, ["info"])
    assert missing.exit_code == 2 and "Missing argument 'NAME'" in missing.output


def test_a_long_example_is_continued_not_wrapped() -> None:
    text = _help(("finetune",))
    assert ("    bertvault finetune --from bert-base-uncased --task squad \\\n"
            "        --train train-v1.1.json --eval dev-v1.1.json --out runs/squad\n") in text
    assert "bertvault pull azureml-wiki-512 --include 'wikipedia_segmented_part_1?.bin'\n" in _help(("pull",))


def test_option_help_keeps_hyphenated_names_whole() -> None:
    pretrain = _help(("pretrain",))
    assert "LAYERS-HIDDEN-HEADS" in pretrain and "google-research/bert" in pretrain
    assert "upper-case" in _help(("prepare",))
