"""`bertvault pull` against nginx: ranges, If-Range, resume after a real crash, four processes at once,
hash mismatches, offline mode, --include, --to and the cache it leaves."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from fetch_helpers import bertvault_process, random_bytes, sha256

SMALL = ["--chunk-size", "64K", "--retry-wait", "0.01", "--progress", "none"]


def pull_json(cli, *args: str) -> dict:
    result = cli("pull", *args, "--json", *SMALL)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def blobs(home: Path) -> list[Path]:
    return sorted((home / "blobs" / "sha256").glob("??/*"))


def test_parallel_ranges_land_verified_in_the_view(cli, nginx, manifest, home) -> None:
    data = random_bytes(1_000_000)
    manifest.add("two-files", {"path": "a.bin", "urls": [nginx.put("a.bin", data)]},
                 {"path": "sub/b.txt", "urls": [nginx.put("b.txt", b"hello\n")],
                  "sha256": sha256(b"hello\n")})
    report = pull_json(cli, "two-files", "--connections", "4")

    view = home / "artifacts" / "two-files"
    assert (view / "a.bin").read_bytes() == data and (view / "sub" / "b.txt").read_bytes() == b"hello\n"
    files = {f["path"]: f for f in report["files"]}
    assert files["a.bin"]["sha256"] == sha256(data) and files["a.bin"]["trust"] == "first-use"
    assert files["sub/b.txt"]["trust"] == "pinned"
    # hardlinked to read-only blobs, one per file
    assert (view / "a.bin").stat().st_nlink == 2
    assert not os.access(view / "a.bin", os.W_OK) or os.getuid() == 0
    assert {p.name for p in blobs(home)} == {sha256(data), sha256(b"hello\n")}
    ranged = [line for line in nginx.log() if line.path == "/a.bin" and line.method == "GET"]
    assert len(ranged) == 16
    assert all(line.status == 206 and line.range.startswith("bytes=") for line in ranged)
    assert all(line.if_range.startswith('"') and line.accept_encoding == "identity" for line in ranged)
    # keep-alive connections, reused; no more than four (loopback is fast: two already keep the hasher busy)
    assert 2 <= len({line.connection for line in ranged}) <= 4
    assert nginx.bytes_sent("/a.bin") == len(data)
    meta = json.loads((home / "meta" / "two-files.json").read_text())
    assert meta["complete"] is True and meta["files"]["a.bin"]["etag"].startswith('"')

    again = pull_json(cli, "two-files")
    assert [f["status"] for f in again["files"]] == ["cached", "cached"]
    assert nginx.bytes_sent("/a.bin") == len(data)


def test_idle_connections_split_the_last_range_in_flight(cli, nginx, manifest, home) -> None:
    size = 6 << 20
    data = random_bytes(size, seed=11)
    nginx.put("tail.bin", data)
    manifest.add("tail", {"path": "tail.bin", "urls": [nginx.url("tail.bin", slow=True)]})
    # One 6 MiB range for three connections: without splitting, one connection would fetch it all
    # at 1 MiB/s while the other two sat idle.
    result = cli("pull", "tail", "--connections", "3", "--chunk-size", "6M", "--progress", "none")
    assert result.exit_code == 0, result.output + result.stderr
    assert (home / "artifacts" / "tail" / "tail.bin").read_bytes() == data
    ranges = sorted(int(line.range.split("=")[1].split("-")[0])
                    for line in nginx.log() if line.path == "/slow/tail.bin" and line.method == "GET")
    assert len(ranges) >= 2 and ranges[0] == 0 and ranges[1] >= 1 << 20
    # the first request was cut short where the split fell: little beyond the file itself was sent
    assert nginx.bytes_sent("/slow/tail.bin") < size + (2 << 20)


def test_crash_with_sigkill_then_resume_fetches_only_the_rest(nginx, manifest, home) -> None:
    size = 8 << 20
    data = random_bytes(size, seed=7)
    nginx.put("big.bin", data)
    # nginx sends each request's first second at once, then 1 MiB/s (ticking once a second):
    # two connections on two 4 MiB ranges reach half the file after about a second
    manifest.add("crashy", {"path": "big.bin", "urls": [nginx.url("big.bin", slow=True)]})
    args = ("pull", "crashy", "--connections", "2", "--chunk-size", "4M", "--progress", "none")

    first = bertvault_process(*args)
    journal = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once about half the file is on disk
        partial = home / "partial"
        journal = next(partial.glob("big.bin-*/journal"), None) if partial.exists() else None
        if journal and _journaled(journal) >= size // 2:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert journal is not None and not (home / "artifacts" / "crashy").exists()
    written = _journaled(journal)
    assert size // 2 <= written <= size * 3 // 4

    second = bertvault_process(*args, "--json")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    result = json.loads(out)["files"][0]
    assert result["resumed"] >= written and result["fetched"] + result["resumed"] == size
    assert result["fetched"] <= size - written
    assert (home / "artifacts" / "crashy" / "big.bin").read_bytes() == data
    assert result["sha256"] == sha256(data)
    # nginx's own count: both runs together sent the file about once, not once and a half
    assert nginx.bytes_sent("/slow/big.bin") < size * 1.15
    assert not list((home / "partial").iterdir())


def _journaled(journal: Path) -> int:
    total = 0
    for line in journal.read_text().splitlines()[1:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "w" in entry:
            total = sum(e - s for s, e in entry["w"])
    return total


def test_four_processes_pull_the_same_artifact_once(nginx, manifest, home) -> None:
    # One connection at 1 MB/s: 6 s of download, so the four overlap even when the machine is busy
    # enough to take seconds starting each
    data = random_bytes(6_000_000, seed=4)
    nginx.put("shared.bin", data)
    manifest.add("shared", {"path": "shared.bin", "urls": [nginx.url("shared.bin", slow=True)]})
    processes = [bertvault_process("pull", "shared", "--chunk-size", "2M", "--connections", "1",
                                   "--progress", "log", "--log-every", "0.5")
                 for _ in range(4)]
    outputs = [p.communicate(timeout=90) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [o[1] for o in outputs]
    assert (home / "artifacts" / "shared" / "shared.bin").read_bytes() == data
    assert [p.name for p in blobs(home)] == [sha256(data)]
    assert nginx.bytes_sent("/slow/shared.bin") == len(data)  # downloaded once; the others waited
    assert any("waiting for bertvault process" in err for _, err in outputs)
    assert sum("cached" in out for out, _ in outputs) == 3


def test_hash_mismatch_fails_and_leaves_nothing_in_the_view(cli, nginx, manifest, home) -> None:
    url = nginx.put("model.bin", b"not the published bytes" * 1000)
    manifest.add("tampered", {"path": "model.bin", "urls": [url], "sha256": "ab" * 32})
    result = cli("pull", "tampered", *SMALL)
    assert result.exit_code == 4
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: tampered/model.bin: ") and url in error
    assert f"sha256 expected {'ab' * 32} (manifest), got {sha256(b'not the published bytes' * 1000)}" in error
    assert "quarantined as" in error
    assert not (home / "artifacts" / "tampered").exists()
    assert not blobs(home)
    assert len(list((home / "quarantine" / "tampered").glob("model.bin.*"))) == 2  # the bytes and why
    assert not (home / "meta" / "tampered.json").exists()  # a failed first pull leaves no record


def test_offline_mode_makes_no_request(cli, nginx, manifest, home) -> None:
    url = nginx.put("o.bin", b"offline" * 100)
    manifest.add("offline-art", {"path": "o.bin", "urls": [url]})

    refused = cli("pull", "offline-art", "--offline", *SMALL)
    assert refused.exit_code == 3 and "offline mode" in refused.stderr and "o.bin" in refused.stderr
    assert cli("pull", "offline-art", *SMALL, env={"BERTVAULT_OFFLINE": "1"}).exit_code == 3
    assert nginx.log() == []

    assert cli("pull", "offline-art", *SMALL).exit_code == 0
    requests_made = len(nginx.log())
    served = cli("pull", "offline-art", *SMALL, env={"BERTVAULT_OFFLINE": "1"})
    assert served.exit_code == 0 and "cached" in served.stdout
    assert len(nginx.log()) == requests_made


def test_include_selects_files_and_optional_ones(cli, nginx, manifest, home) -> None:
    shards = [nginx.put(f"part_{i}.bin", bytes([i]) * 1000) for i in range(12)]
    extra = nginx.put("extra.h5", b"h5" * 100)
    manifest.add("shards", *({"path": f"part_{i}.bin", "urls": [u]} for i, u in enumerate(shards)),
                 {"path": "extra.h5", "urls": [extra], "optional": True})
    report = pull_json(cli, "shards", "--include", "part_1?.bin")
    assert sorted(f["path"] for f in report["files"]) == ["part_10.bin", "part_11.bin"]
    assert report["complete"] is False
    report = pull_json(cli, "shards")
    assert len(report["files"]) == 12 and report["complete"] is True
    assert not (home / "artifacts" / "shards" / "extra.h5").exists()
    report = pull_json(cli, "shards", "--include", "*.h5")
    assert (home / "artifacts" / "shards" / "extra.h5").read_bytes() == b"h5" * 100
    assert len(list((home / "artifacts" / "shards").iterdir())) == 13  # earlier files stay in the view
    bad = cli("pull", "shards", "--include", "*.safetensors", *SMALL)
    assert bad.exit_code == 2 and "matches none of the files of shards" in bad.stderr


def test_pull_to_materializes_elsewhere(cli, nginx, manifest, tmp_path) -> None:
    manifest.add("copyme", {"path": "d/x.txt", "urls": [nginx.put("x.txt", b"x" * 5000)]})
    report = pull_json(cli, "copyme", "--to", tmp_path / "out", "--no-fsync")
    assert (tmp_path / "out" / "d" / "x.txt").read_bytes() == b"x" * 5000
    assert report["materialized"] == str(tmp_path / "out")


def test_progress_lines_and_summary_table_when_not_a_terminal(cli, nginx, manifest) -> None:
    data = random_bytes(2_000_000, seed=2)
    nginx.put("p.bin", data)
    manifest.add("shown", {"path": "p.bin", "urls": [nginx.url("p.bin", slow=True)]})
    result = cli("pull", "shown", "--connections", "1", "--chunk-size", "2M", "--log-every", "0.2")
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("bertvault: pull shown:")]
    assert len(lines) >= 3 and "ETA" in lines[0] and lines[-1].startswith("bertvault: pull shown: 1/1 files")
    assert "p.bin" in result.stdout and "downloaded" in result.stdout
    assert "first use: p.bin sha256" in result.stdout
    assert "shown: complete" in result.stdout


def test_ctrl_c_stops_cleanly_and_the_next_pull_resumes(nginx, manifest, home) -> None:
    size = 8 << 20
    data = random_bytes(size, seed=8)
    nginx.put("int.bin", data)
    manifest.add("interrupted", {"path": "int.bin", "urls": [nginx.url("int.bin", slow=True)]})
    args = ("pull", "interrupted", "--connections", "2", "--chunk-size", "4M", "--progress", "none")
    first = bertvault_process(*args)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((home / "partial").glob("int.bin-*/journal")
                                                   if (home / "partial").exists() else []):
        time.sleep(0.05)
    time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=20)
    assert first.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err
    kept = [p.name for p in (home / "partial").iterdir()]
    assert len(kept) == 1 and "@" not in kept[0]  # given back under the shared, resumable name

    second = bertvault_process(*args, "--json")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    result = json.loads(out)["files"][0]
    assert result["resumed"] > 0 and (home / "artifacts" / "interrupted" / "int.bin").read_bytes() == data


def test_rich_bars_on_a_terminal(nginx, manifest) -> None:
    import io

    from rich.console import Console

    from bertvault.fetch.options import PullOptions
    from bertvault.fetch.progress import RichReporter
    from bertvault.fetch.pull import pull

    data = random_bytes(1_000_000, seed=3)
    manifest.add("bars", {"path": "bar.bin", "urls": [nginx.put("bar.bin", data)]})
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    report = pull("bars", PullOptions(chunk_size=65536), RichReporter(console))
    assert report.results[0].status == "downloaded" and report.complete
    text = screen.getvalue()
    assert "bar.bin" in text and "1.0/1.0 MB" in text and "\x1b[" in text  # drawn with terminal codes


NO_OP_LOCK = """
import sys
import bertvault.cache.locks as locks
import bertvault.cache.metadata as metadata


class NoOpLock:  # what flock does on some network filesystems: nothing
    def __init__(self, *args, **kwargs):
        pass

    def acquire(self, timeout=None):
        return self

    def release(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


locks.FileLock = metadata.FileLock = NoOpLock
from bertvault.cli import main
sys.argv[0] = "bertvault"
main()
"""


def test_without_working_locks_every_process_still_succeeds(nginx, manifest, home, tmp_path) -> None:
    data = random_bytes(3_000_000, seed=5)
    nginx.put("nolock.bin", data)
    manifest.add("nolock", {"path": "nolock.bin", "urls": [nginx.url("nolock.bin", slow=True)]})
    script = tmp_path / "nolock.py"
    script.write_text(NO_OP_LOCK)
    import subprocess
    import sys

    processes = [subprocess.Popen([sys.executable, str(script), "pull", "nolock", "--chunk-size", "4M",
                                   "--progress", "none"], env=os.environ.copy(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=90) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [o[1] for o in outputs]
    assert (home / "artifacts" / "nolock" / "nolock.bin").read_bytes() == data
    assert [p.name for p in blobs(home)] == [sha256(data)]
    # several downloaded it: nothing saved, nothing broken
    assert nginx.bytes_sent("/slow/nolock.bin") > len(data)
    assert not list((home / "partial").iterdir())


@pytest.mark.parametrize("direct_io", [True, False], ids=["direct-io", "page-cache"])
def test_unaligned_ranges_and_a_tight_hash_window(nginx, manifest, home, direct_io) -> None:
    # Ranges of 100000 bytes (not a multiple of the 4 KiB that direct I/O needs), a buffer smaller
    # than a range and a pool of two: writes mix direct and buffered I/O, the hasher mixes lent
    # buffers and bytes read back from the file.
    from bertvault.fetch.options import PullOptions
    from bertvault.fetch.pull import pull

    data = random_bytes(2_345_678, seed=11)
    manifest.add("odd", {"path": "odd.bin", "urls": [nginx.put("odd.bin", data)]})
    options = PullOptions(connections=4, chunk_size=100_000, buffer_size=32768, hash_window=65536,
                          direct_io=direct_io, retry_wait=0.01)
    report = pull("odd", options)
    assert not report.failed and report.results[0].sha256 == sha256(data)
    assert (home / "artifacts" / "odd" / "odd.bin").read_bytes() == data


def test_connections_are_added_while_the_server_is_the_bottleneck(nginx, manifest, home) -> None:
    # 1 MB/s per connection: the hasher idles, so all eight connections start within moments.
    from bertvault.fetch.options import PullOptions
    from bertvault.fetch.pull import pull

    data = random_bytes(16_000_000, seed=12)
    nginx.put("capped.bin", data)
    manifest.add("capped", {"path": "capped.bin", "urls": [nginx.url("capped.bin", slow=True)]})
    report = pull("capped", PullOptions(connections=8, chunk_size=2 << 20))
    assert report.results[0].sha256 == sha256(data)
    ranged = [line for line in nginx.log() if line.path == "/slow/capped.bin" and line.method == "GET"]
    assert len({line.connection for line in ranged}) == 8
