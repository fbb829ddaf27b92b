"""Ctrl-C and kill -9 anywhere in a pull: Ctrl-C stops it within a second even on a silent server
(connecting, or waiting for an answer that never comes), and leaves a resumable partial download or
nothing, never an empty folder or a lock owner; after any number of interruptions the next pull
ends with the right bytes, and `cache gc` leaves nothing behind."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from fetch_helpers import bertvault_process, random_bytes, sha256

FAST = ["--chunk-size", "64K", "--retry-wait", "0.01", "--progress", "none"]
DATA = random_bytes(512 * 1024, seed=41)
CTRL_C_WITHIN = 1.0  # seconds from SIGINT to the process's exit


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the pull to get there"
        time.sleep(0.02)


def interrupt(process, sig: int = signal.SIGINT) -> tuple[float, str]:
    """Send `sig`; (seconds until the process ended, its stderr)."""
    started = time.monotonic()
    process.send_signal(sig)
    _, err = process.communicate(timeout=15)
    return time.monotonic() - started, err


def debris(home: Path) -> list[str]:
    """What a stopped pull must not leave: empty partial folders, lock owners, temporary files."""
    found = []
    partial = home / "partial"
    if partial.exists():
        found += [f"empty partial {p.name}" for p in partial.iterdir() if not (p / "data").exists()]
    locks = home / "locks"
    if locks.exists():
        found += [f"lock owner {p.name}" for p in locks.iterdir() if p.suffix in (".owner", ".tmp")]
    for folder in (home / "meta", home / "artifacts"):
        if folder.exists():
            found += [f"leftover {p.name}" for p in folder.iterdir() if p.name.startswith(".")]
    return found


@pytest.mark.timeout(40)
@pytest.mark.parametrize("silent", ["HEAD", "GET"])
def test_ctrl_c_on_a_silent_server_stops_within_a_second_and_leaves_no_debris(faulty, manifest, home,
                                                                            silent) -> None:
    url = faulty.add("f.bin", DATA, hang=(silent,))
    manifest.add("hung", {"path": "f.bin", "urls": [url]})
    process = bertvault_process("pull", "hung", *FAST)
    wait_until(lambda: any(s.method == silent for s in faulty.seen))
    time.sleep(0.3)
    elapsed, err = interrupt(process)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert elapsed < CTRL_C_WITHIN, f"Ctrl-C took {elapsed:.2f} s"
    assert debris(home) == []
    assert not (home / "partial").exists() or not list((home / "partial").iterdir())  # nothing was fetched


@pytest.mark.timeout(40)
def test_ctrl_c_during_a_stalled_body_keeps_what_arrived_for_the_next_pull(faulty, manifest, home,
                                                                           cli) -> None:
    url = faulty.add("f.bin", DATA, ["stall:60"])
    manifest.add("stalled", {"path": "f.bin", "urls": [url]})
    process = bertvault_process("pull", "stalled", "--chunk-size", "1M", "--progress", "none")
    wait_until(lambda: any(s.sent >= len(DATA) // 2 for s in faulty.gets("f.bin")))
    time.sleep(0.3)
    elapsed, err = interrupt(process)
    assert process.returncode == 130 and "Traceback" not in err
    assert elapsed < CTRL_C_WITHIN, f"Ctrl-C took {elapsed:.2f} s"
    assert debris(home) == []
    kept = list((home / "partial").iterdir())
    assert len(kept) == 1 and "@" not in kept[0].name  # given back under the shared, resumable name

    result = cli("pull", "stalled", "--chunk-size", "1M", "--progress", "none", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)["files"][0]
    assert report["resumed"] >= len(DATA) // 2 and report["sha256"] == sha256(DATA)


@pytest.mark.timeout(120)
def test_pulls_interrupted_and_killed_again_and_again_end_right_and_gc_leaves_nothing(nginx, manifest,
                                                                                      home) -> None:
    size = 12 << 20
    data = random_bytes(size, seed=42)
    nginx.put("loop.bin", data)
    # each request: its first MiB at once, then 1 MiB/s; two connections
    manifest.add("loop", {"path": "loop.bin", "urls": [nginx.url("loop.bin", slow=True)]})
    args = ("pull", "loop", "--connections", "2", "--chunk-size", "3M", "--progress", "none")
    rng = random.Random(7)
    for sig in (signal.SIGINT, signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
        process = bertvault_process(*args)
        wait_until(lambda: (home / "partial").exists() and any((home / "partial").iterdir()))
        time.sleep(rng.uniform(0.1, 0.8))
        elapsed, err = interrupt(process, sig)
        if sig == signal.SIGINT:
            assert process.returncode == 130 and "Traceback" not in err, err
            assert elapsed < CTRL_C_WITHIN, f"Ctrl-C took {elapsed:.2f} s"
            assert debris(home) == []
        else:
            assert process.returncode == -signal.SIGKILL
    final = bertvault_process(*args, "--json")
    out, err = final.communicate(timeout=60)
    assert final.returncode == 0, err
    assert json.loads(out)["files"][0]["resumed"] > 0
    assert (home / "artifacts" / "loop" / "loop.bin").read_bytes() == data
    assert nginx.bytes_sent("/slow/loop.bin") < 2 * size  # resumed each time, not started over

    gc = bertvault_process("cache", "gc", "--partial-days", "0")
    out, err = gc.communicate(timeout=30)
    assert gc.returncode == 0, err
    assert debris(home) == [] and not list((home / "partial").iterdir())
    assert not [p for p in (home / "locks").iterdir()], "gc leaves no lock file of finished work"
