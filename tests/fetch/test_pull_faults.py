"""What servers do wrong, on command (our fault-injecting server): every case must end with the
right bytes or a clear one-line error, never a splice of two versions or a half-written file."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from fetch_helpers import random_bytes, sha256

FAST = ["--chunk-size", "64K", "--retry-wait", "0.01", "--progress", "none", "--json"]
DATA = random_bytes(512 * 1024, seed=11)  # 8 chunks of 64K


def pull(cli, name: str, *args: str) -> tuple[int, dict | None, str]:
    result = cli("pull", name, *FAST, *args)
    report = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, report, result.stderr


def view_file(home, name: str, path: str = "f.bin") -> bytes:
    return (home / "artifacts" / name / path).read_bytes()


@pytest.mark.parametrize("faults", [
    pytest.param(["drop:10000", "drop:0", "drop:30000"], id="connection-dropped-after-n-bytes"),
    pytest.param(["500", "503", "502"], id="server-errors"),
    pytest.param(["stall:3"], id="stall"),
])
def test_transient_failures_are_retried_to_the_right_bytes(cli, faulty, manifest, home, faults) -> None:
    manifest.add("flaky", {"path": "f.bin", "urls": [faulty.add("f.bin", DATA, faults)]})
    started = time.monotonic()
    code, report, err = pull(cli, "flaky", "--connections", "2", "--stall-timeout", "0.5")
    assert code == 0, err
    assert view_file(home, "flaky") == DATA and report["files"][0]["sha256"] == sha256(DATA)
    assert len(faulty.gets("f.bin")) > 8  # the broken requests were made again
    assert time.monotonic() - started < 2.5  # a stall costs the stall timeout, not the server's pause


def test_dropped_connections_resume_mid_chunk(cli, faulty, manifest, home) -> None:
    manifest.add("dropped", {"path": "f.bin", "urls": [faulty.add("f.bin", DATA, ["drop:40000"])]})
    code, _, err = pull(cli, "dropped", "--connections", "1")
    assert code == 0, err
    retry = faulty.gets("f.bin")[1]
    assert retry.headers["range"] == "bytes=40000-65535"  # only what was missing
    assert sum(s.sent for s in faulty.gets("f.bin")) == len(DATA)


def test_429_retry_after_is_honoured(cli, faulty, manifest, home) -> None:
    manifest.add("limited", {"path": "f.bin", "urls": [faulty.add("f.bin", DATA, ["429"])]})
    code, _, err = pull(cli, "limited", "--connections", "1")
    assert code == 0, err
    first, second = faulty.gets("f.bin")[:2]
    assert second.at - first.at >= 0.95  # Retry-After: 1, though the backoff alone would wait ~0
    assert "HTTP 429" in err and "retrying in 1.0 s" in err


def test_200_answered_to_a_range_request_restarts_the_file_in_one_stream(cli, faulty, manifest, home) -> None:
    manifest.add("norange", {"path": "f.bin", "urls": [faulty.add("f.bin", DATA, ["drop:5000", "200"])]})
    code, _, err = pull(cli, "norange", "--connections", "1")
    assert code == 0, err
    assert view_file(home, "norange") == DATA
    last = faulty.gets("f.bin")[-1]
    assert "range" not in last.headers and last.sent == len(DATA)  # the whole file, from byte 0
    assert "whole file (200)" in err


def test_file_changed_between_attempts_is_fetched_again_never_spliced(cli, faulty, manifest, home) -> None:
    new = random_bytes(len(DATA), seed=12)
    url = faulty.add("f.bin", DATA, ["drop:30000", "etag-change"], after=new)
    manifest.add("changed", {"path": "f.bin", "urls": [url]})
    code, report, err = pull(cli, "changed", "--connections", "1")
    assert code == 0, err
    assert view_file(home, "changed") == new and report["files"][0]["sha256"] == sha256(new)
    assert faulty.gets("f.bin")[1].headers["if-range"] == faulty.gets("f.bin")[0].headers["if-range"]
    assert "etag changed" in err


def test_a_changed_file_is_noticed_across_runs_by_the_journal(cli, faulty, manifest, home) -> None:
    new = random_bytes(len(DATA), seed=13)
    served = faulty.add("f.bin", DATA, ["drop:100000", "404", "404", "404", "404", "404", "404", "404"])
    manifest.add("laterchanged", {"path": "f.bin", "urls": [served]})
    code, _, err = pull(cli, "laterchanged", "--connections", "1")
    assert code == 3 and "HTTP 404" in err
    assert list((home / "partial").iterdir())  # kept for a resume
    faulty.add("f.bin", new)  # the publisher replaces the file; new ETag
    code, report, err = pull(cli, "laterchanged", "--connections", "1")
    assert code == 0, err
    assert view_file(home, "laterchanged") == new
    assert "starting over, etag changed" in err


def test_truncated_single_stream_body_is_fetched_again(cli, faulty, manifest, home) -> None:
    manifest.add("truncated",
                 {"path": "f.bin", "urls": [faulty.add("f.bin", DATA, ["drop:200000"], ranges=False)]})
    code, report, err = pull(cli, "truncated")
    assert code == 0, err
    assert view_file(home, "truncated") == DATA
    assert [s.sent for s in faulty.gets("f.bin")] == [200000, len(DATA)]
    assert "starting this file again" in err


def test_corrupted_bytes_are_quarantined_and_the_next_mirror_used(cli, faulty, manifest, home) -> None:
    bad = faulty.add("bad/f.bin", DATA, ["corrupt"])
    good = faulty.add("good/f.bin", DATA)
    manifest.add("mirrored", {"path": "f.bin", "urls": [bad, good], "sha256": sha256(DATA)})
    code, report, err = pull(cli, "mirrored", "--connections", "1")
    assert code == 0, err
    assert report["files"][0]["url"] == good and view_file(home, "mirrored") == DATA
    assert "do not match" in err and bad in err
    quarantined = [p for p in (home / "quarantine" / "mirrored").iterdir() if not p.name.endswith(".why")]
    assert len(quarantined) == 1 and quarantined[0].read_bytes() != DATA


def test_server_digest_catches_corruption_without_a_pinned_hash(cli, faulty, manifest, home) -> None:
    md5 = base64.b64encode(hashlib.md5(DATA).digest()).decode()
    url = faulty.add("f.bin", DATA, ["corrupt"] * 20, headers={"Content-MD5": md5})
    manifest.add("unpinned", {"path": "f.bin", "urls": [url]})
    code, _, err = pull(cli, "unpinned", "--connections", "2")
    assert code == 4
    assert f"md5 expected {hashlib.md5(DATA).hexdigest()} (server content-md5), got" in err
    assert not (home / "artifacts" / "unpinned").exists()


def test_missing_mirror_falls_through_to_the_next(cli, faulty, manifest, home) -> None:
    gone = f"http://127.0.0.1:{faulty.port}/nowhere/f.bin"
    manifest.add("fallback", {"path": "f.bin", "urls": [gone, faulty.add("f.bin", DATA)]})
    code, report, err = pull(cli, "fallback")
    assert code == 0, err
    assert "HTTP 404" in err and "trying the next mirror" in err


def test_416_means_the_file_shrank_and_is_probed_again(cli, faulty, manifest, home) -> None:
    manifest.add("shrunk", {"path": "f.bin", "urls": [faulty.add("f.bin", DATA, ["416"])]})
    code, _, err = pull(cli, "shrunk", "--connections", "1")
    assert code == 0, err
    assert "416" in err and view_file(home, "shrunk") == DATA


def test_a_server_that_keeps_failing_gives_a_one_line_error_and_keeps_the_partial(
        cli, faulty, manifest, home) -> None:
    url = faulty.add("f.bin", DATA, ["drop:70000"] + ["500"] * 50)
    manifest.add("broken", {"path": "f.bin", "urls": [url]})
    code, _, err = pull(cli, "broken", "--connections", "1", "--retries", "3")
    assert code == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: broken/f.bin: " + url) and "4 attempts failed without progress" in last
    assert "HTTP 500" in last and "Traceback" not in err
    journal = next((home / "partial").glob("f.bin-*/journal"))
    assert json.loads(journal.read_text().splitlines()[-1]) in ({"w": [[0, 65536]]}, {"s": [[0, 65536]]})
    assert not (home / "artifacts" / "broken").exists()
