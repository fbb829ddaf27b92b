"""What a pull says: a failed one says why once (no table of nothing, no progress line claiming the
file), and the bars, the log lines and the summary table give one speed for the same transfer."""

from __future__ import annotations

import io
import re
import time

import pytest
from fetch_helpers import random_bytes
from rich.console import Console

from bertvault.fetch.progress import LogReporter, RichReporter, shown_speed
from bertvault.fetch.task import Task

DATA = random_bytes(300_000, seed=5)


def test_a_failed_pull_says_why_once(cli, faulty, manifest, home) -> None:
    url = f"http://127.0.0.1:{faulty.port}/nowhere/a.bin"
    manifest.add("gone", {"path": "a.bin", "urls": [url]})
    result = cli("pull", "gone", "--progress", "log", "--log-every", "0.1")
    assert result.exit_code == 3
    assert result.stdout == ""  # no table of a file that is not there
    lines = result.stderr.splitlines()
    assert lines == ["bertvault: gone: 1 of 1 files to fetch, size not published",
                     f"error: gone/a.bin: {url}: HTTP 404 Not Found"], result.stderr
    assert (result.stdout + result.stderr).count(url) == 1


def test_a_failed_file_among_others_is_said_in_the_error_not_the_table(cli, faulty, manifest, home) -> None:
    gone = f"http://127.0.0.1:{faulty.port}/nowhere/b.bin"
    manifest.add("half", {"path": "a.bin", "urls": [faulty.add("a.bin", DATA)]},
                 {"path": "b.bin", "urls": [gone]})
    result = cli("pull", "half", "--progress", "log", "--log-every", "0.1")
    assert result.exit_code == 3
    table = result.stdout.splitlines()
    assert table[0] == "half: 1 files" and table[2].startswith("a.bin ") and "b.bin" not in result.stdout
    status = [line for line in result.stderr.splitlines() if line.startswith("bertvault: pull half:")]
    assert status[-1].startswith("bertvault: pull half: 1/2 files, ") and ", 1 failed" in status[-1]
    assert result.stderr.count("HTTP 404") == 1
    assert result.stderr.splitlines()[-1].startswith("error: half/b.bin")


def test_a_mirror_left_for_the_next_is_said_once(cli, faulty, manifest, home) -> None:
    gone = f"http://127.0.0.1:{faulty.port}/nowhere/a.bin"
    manifest.add("fallback", {"path": "a.bin", "urls": [gone, faulty.add("a.bin", DATA)]})
    result = cli("pull", "fallback", "--progress", "log")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("HTTP 404") == 1 and result.stderr.count("trying the next mirror") == 1
    assert "error" not in result.stderr


@pytest.mark.timeout(120)
def test_the_log_line_and_the_table_give_the_same_speed(cli, nginx, manifest, home) -> None:
    nginx.put("p.bin", random_bytes(1_500_000, seed=2))
    manifest.add("timed", {"path": "p.bin", "urls": [nginx.url("p.bin", slow=True)]})
    result = cli("pull", "timed", "--connections", "1", "--chunk-size", "2M", "--log-every", "0.2")
    assert result.exit_code == 0, result.stderr
    last = [line for line in result.stderr.splitlines() if line.startswith("bertvault: pull timed:")][-1]
    logged = re.search(r", ([\d.]+ [KMG]?B/s)$", last).group(1)
    header, row = result.stdout.splitlines()[1:3]
    tabled = row[header.index("speed"):].split("  ")[0].strip()
    assert logged == tabled and tabled.endswith("B/s")


def _transfer(reporter, pause: float, takes: float) -> Task:
    """A real file's counters as a download moves them: it starts `pause` seconds after the display
    and takes `takes` seconds."""
    task = Task("f.bin", 1_000_000)
    reporter.start("x", [task])
    time.sleep(pause)
    task.begin("http://example.org/f.bin", 1_000_000, 0)
    time.sleep(takes)
    task.add(1_000_000)
    task.state = "verifying"
    task.finish("done")
    return task


def test_the_log_speed_is_the_transfer_s_own_not_the_display_s() -> None:
    reporter = LogReporter(io.StringIO(), every=0)
    task = _transfer(reporter, pause=0.4, takes=0.2)  # the display was up three times as long
    assert reporter.status().endswith(f", {shown_speed(task.fetched, task.seconds)}")


def test_the_bars_show_the_same_speed_never_a_question_mark() -> None:
    screen = io.StringIO()
    reporter = RichReporter(Console(file=screen, force_terminal=True, width=120, color_system=None))
    task = _transfer(reporter, pause=0.1, takes=0.02)  # done between two redraws of the bars
    reporter.stop()
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    final = frames.split("\r")[-1]  # rich redraws the bars in place; the last frame stays
    speed = shown_speed(task.fetched, task.seconds)
    assert speed.endswith("/s") and speed in final and "?" not in final
