"""Tables as people see them: fitted to an 80- or 120-column terminal (names whole, low-value columns
left out first, long cells cut with …, hashes shortened), and in a pipe plain lines that are never
wrapped or cut (JSON included)."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bertvault.cli import _Col, _print_table, app

runner = CliRunner()
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
COLUMNS = [_Col("name"), _Col("kind", 2), _Col("format", 7), _Col("size", 6), _Col("sha256", 4, hash=True),
           _Col("source", 1, shrink=12)]
ROWS = [["bert-large-uncased-whole-word-masking", "checkpoint", "hf-safetensors", "1.3 GB", "de5abb23" * 8,
         "https://storage.googleapis.com/bert_models/2018_10_18/wwm_uncased_L-24_H-1024_A-16.zip"],
        ["tiny", "dataset", "text", "1 B", "not pinned", "file:tiny.txt"]]


def in_terminal(*args: str, columns: int, env: dict | None = None) -> tuple[int, str]:
    """Run `bertvault ARGS` on a pseudo-terminal `columns` wide (as a user's shell would); its screen."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([sys.executable, "-m", "bertvault", *args], stdin=child, stdout=child,
                               stderr=child, env={**environ, **(env or {}), "TERM": "xterm"}, close_fds=True)
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(parent, 1 << 16)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(parent)
    code = process.wait(timeout=60)
    return code, ANSI.sub("", output.decode()).replace("\r\n", "\n")


def rendered(width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    _print_table("artifacts", COLUMNS, ROWS, console)
    return out.getvalue().splitlines()


def header(lines: list[str]) -> list[str]:
    return lines[1].split()


def test_at_80_columns_low_value_columns_go_first_and_names_stay_whole() -> None:
    lines = rendered(80)
    assert max(map(len, lines)) <= 80
    assert header(lines) == ["name", "format", "size", "sha256"]  # source (1) and kind (2) left out
    assert lines[3].split() == ["bert-large-uncased-whole-word-masking", "hf-safetensors", "1.3", "GB",
                                "de5abb23…"]
    assert lines[4].split()[0] == "tiny" and lines[4].rstrip().endswith("not pinned")  # not a hash: whole


def test_at_120_columns_every_column_shows_and_the_long_one_is_cut_with_an_ellipsis() -> None:
    lines = rendered(120)
    assert max(map(len, lines)) <= 120
    assert header(lines) == ["name", "kind", "format", "size", "sha256", "source"]
    source = lines[3][lines[1].index("source"):].rstrip()
    assert source.endswith("…") and ROWS[0][5].startswith(source[:-1]) and len(source) > 12
    assert "de5abb23…" in lines[3] and ROWS[0][4] not in lines[3]


def test_a_wide_terminal_shows_every_cell_whole() -> None:
    lines = rendered(200)
    assert ROWS[0][5] in lines[3] and "…" not in "\n".join(lines).replace("de5abb23…", "")


def test_in_a_pipe_rows_are_whole_unwrapped_lines() -> None:
    result = runner.invoke(app, ["info", "bert-base-uncased"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    row = next(line for line in lines if line.startswith("model.safetensors "))
    data = json.loads(runner.invoke(app, ["info", "bert-base-uncased", "--json"]).output)
    spec = next(f for f in data["files"] if f["path"] == "model.safetensors")
    assert spec["sha256"] in row and spec["urls"][0] in row and "…" not in result.output
    assert not any(set(line) & set("│┃─━┏┗") for line in lines)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("columns", [80, 120])
def test_list_in_a_terminal_fits_it_with_every_name_whole(columns: int) -> None:
    code, screen = in_terminal("list", columns=columns)
    assert code == 0
    lines = screen.splitlines()
    assert max(map(len, lines)) <= columns
    names = {row["name"] for row in json.loads(runner.invoke(app, ["list", "--json"]).output)}
    first_words = {line.split()[0] for line in lines[3:] if line.strip()}
    assert names <= first_words  # no name broken over two lines or cut
    assert "…" not in screen
    shown = lines[1].split()
    assert shown[:2] == ["name", "format"] and "size" in shown and "cached" in shown
    assert ("architecture" in shown) == (columns == 120)


@pytest.mark.timeout(120)
def test_info_in_a_terminal_shortens_hashes_and_cuts_mirrors() -> None:
    code, screen = in_terminal("info", "bert-base-uncased", columns=80)
    assert code == 0
    lines = screen.splitlines()
    assert max(map(len, lines)) <= 80
    data = json.loads(runner.invoke(app, ["info", "bert-base-uncased", "--json"]).output)
    for spec in data["files"]:
        row = next(line for line in lines if line.startswith(spec["path"] + " "))
        assert f" {spec['sha256'][:8]}… " in row and spec["sha256"] not in screen
        assert row.rstrip().endswith("…") and "hf://google-bert/" in row
    # a fact longer than the terminal wraps inside its column, under its value
    architecture = next(i for i, line in enumerate(lines) if line.lstrip().startswith("architecture"))
    value_at = lines[architecture].index("layers=")
    assert lines[architecture + 1][:value_at].strip() == "" and lines[architecture + 1][value_at:].strip()


def test_provenance_json_is_never_wrapped_in_a_pipe(tmp_path) -> None:
    from bertvault.provenance import write_record

    out = tmp_path / "model"
    out.mkdir()
    check = {f"max_abs_diff_{part}": 1e-7 for part in ("hidden", "mlm", "nsp", "pooled", "layer0", "layer1")}
    source = {"source": "x" * 150, "files": {"model.safetensors": "ab" * 32}}
    write_record(out, "convert", [source], check=check)
    result = runner.invoke(app, ["info", str(out)], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.lstrip().startswith("check"))
    assert json.loads(line.split(None, 1)[1]) == check and len(line) > 160
    assert "x" * 150 in result.output and "ab" * 32 in result.output
