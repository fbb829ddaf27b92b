"""Benchmarks of `bertvault pull` and `bertvault verify` against a local nginx (issue 3).

    python benchmarks/bench_pull.py                    # all four, 1 GiB, 3 rounds
    python benchmarks/bench_pull.py --only wall,verify --size-mib 256 --rounds 5

1. wall:   a 1 GiB file from nginx: `bertvault pull` (hashing sha256, journaling, fsync) vs `curl -o`
           (verifying nothing). Goal: wall-time ratio <= 1.15.
2. rate:   nginx with `limit_rate 50m` (a CDN's per-connection cap): bertvault with 8 connections and
           its default ranges vs curl (goal >= 6x faster) and vs `aria2c -x8 -s8` (goal: no slower).
           Also shown: bertvault with one range per connection (--chunk-size SIZE/8, aria2's split).
3. resume: kill -9 at 50% of a rate-limited pull, run again: bytes the second run fetched (its own
           report and nginx's access log). Goal: <= 55% of the file.
4. verify: `bertvault verify` on the pulled 1 GiB vs `sha256sum` on the same blob, both from the page
           cache. Goal: throughput >= 0.9x sha256sum's.

Timings are medians of interleaved rounds (the order reversed every other round); every timed run
starts after `sync`. The scratch folder (default under /tmp) is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import as_installed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import Nginx  # the tests' own nginx, two workers here


class Bench:
    def __init__(self, scratch: Path, size: int, rate: str) -> None:
        self.scratch, self.size = scratch, size
        self.nginx = Nginx(scratch, rate, workers=2)
        self.file = self.nginx.root / "big.bin"
        with open(self.file, "wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, 64 << 20))
                f.write(block)
                left -= len(block)
        self.manifest = scratch / "bench.toml"
        self.manifest.write_text(
            '[[artifact]]\nname = "bench-fast"\nkind = "dataset"\nformat = "text"\n'
            f'[[artifact.files]]\npath = "big.bin"\nurls = ["{self.url()}"]\n\n'
            '[[artifact]]\nname = "bench-slow"\nkind = "dataset"\nformat = "text"\n'
            f'[[artifact.files]]\npath = "big.bin"\nurls = ["{self.url(slow=True)}"]\n')
        self.home = scratch / "home"
        self.env = {**os.environ, "BERTVAULT_HOME": str(self.home), "BERTVAULT_MANIFESTS": str(self.manifest)}
        self.bertvault = [sys.executable, "-m", "bertvault"]

    def url(self, slow: bool = False) -> str:
        return self.nginx.url("big.bin", slow)

    def clean(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        (self.scratch / "out.bin").unlink(missing_ok=True)
        os.sync()

    def timed(self, command: list[str], **kw) -> float:
        self.clean()
        started = time.perf_counter()
        subprocess.run(command, check=True, env=self.env, stdout=subprocess.DEVNULL, **kw)
        return time.perf_counter() - started

    def pull(self, name: str, *args: str) -> float:
        return self.timed([*self.bertvault, "pull", name, "--progress", "none", *args])

    def curl(self, slow: bool = False) -> float:
        return self.timed(["curl", "-s", "-o", str(self.scratch / "out.bin"), self.url(slow)])

    def aria2(self) -> float:
        return self.timed(["aria2c", "-x8", "-s8", "-d", str(self.scratch), "-o", "out.bin",
                           "--allow-overwrite=true", "--auto-file-renaming=false", "--console-log-level=warn",
                           "--summary-interval=0", "--download-result=hide", self.url(slow=True)])

    def nginx_bytes(self) -> int:
        return self.nginx.bytes_sent("big.bin")

    def close(self) -> None:
        self.nginx.close()


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved(jobs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each job once a round, the order reversed every other round. This VM's disk is slow or fast
    for a whole run depending on what the run before it freed (ext4 mounted with `discard`), so a
    fixed order would hand one tool the slow turns; alternating gives each the same mix."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for round_ in range(rounds):
        for name in (list(jobs) if round_ % 2 == 0 else list(reversed(jobs))):
            times[name].append(jobs[name]())
    return times


def bench_wall(b: Bench, rounds: int) -> dict:
    times = interleaved({"curl": b.curl, "pull": lambda: b.pull("bench-fast"),
                         "unsynced": lambda: b.pull("bench-fast", "--no-fsync")}, rounds)
    pulls, unsynced, curls = times["pull"], times["unsynced"], times["curl"]
    ratio = median(pulls) / median(curls)
    return {"bertvault_s": pulls, "bertvault_no_fsync_s": unsynced, "curl_s": curls, "ratio": round(ratio, 3),
            "ratio_no_fsync": round(median(unsynced) / median(curls), 3), "goal": "<= 1.15",
            "met": ratio <= 1.15}


def bench_rate(b: Bench, rounds: int) -> dict:
    one_range_each = str(-(-b.size // 8))
    times = interleaved({"pull": lambda: b.pull("bench-slow", "--connections", "8"), "aria2": b.aria2,
                         "one_range": lambda: b.pull("bench-slow", "--connections", "8",
                                                     "--chunk-size", one_range_each)},
                        rounds)
    pulls, arias = times["pull"], times["aria2"]
    curls = [b.curl(slow=True)]  # ~20 s at 50 MB/s: once is enough
    vs_curl = median(curls) / median(pulls)
    vs_aria = median(arias) / median(pulls)
    return {"bertvault_8x_s": pulls, "aria2c_x8_s8_s": arias, "curl_s": curls,
            "bertvault_one_range_per_connection_s": times["one_range"],
            "speedup_vs_curl": round(vs_curl, 2), "speedup_vs_aria2c": round(vs_aria, 2),
            "goal": ">= 6x curl, >= 1x aria2c", "met": vs_curl >= 6 and vs_aria >= 1.0}


def bench_resume(b: Bench) -> dict:
    b.clean()
    args = [*b.bertvault, "pull", "bench-slow", "--connections", "8", "--progress", "none"]
    first = subprocess.Popen(args, env=b.env, stdout=subprocess.DEVNULL)
    written = 0
    while first.poll() is None:
        journals = list((b.home / "partial").glob("*/journal")) if (b.home / "partial").exists() else []
        if journals:
            for line in journals[0].read_text().splitlines()[1:]:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                ranges = entry.get("w") or entry.get("s") or []
                written = sum(e - s for s, e in ranges)
            if written >= b.size // 2:
                first.send_signal(signal.SIGKILL)
                break
        time.sleep(0.02)
    first.wait()
    time.sleep(2.5)  # nginx logs the aborted requests once it notices the closed connections
    before = b.nginx_bytes()
    done = subprocess.run([*args, "--json"], env=b.env, check=True, capture_output=True, text=True)
    fetched = json.loads(done.stdout)["files"][0]["fetched"]
    by_nginx = b.nginx_bytes() - before
    share = by_nginx / b.size
    return {"killed_at": round(written / b.size, 3), "second_run_fetched": fetched,
            "second_run_nginx_bytes": by_nginx, "share": round(share, 3), "goal": "<= 0.55",
            "met": share <= 0.55}


def bench_verify(b: Bench, rounds: int) -> dict:
    b.clean()
    subprocess.run([*b.bertvault, "pull", "bench-fast", "--progress", "none"], env=b.env, check=True,
                   stdout=subprocess.DEVNULL)
    blob = next(p for p in (b.home / "blobs").rglob("*") if p.is_file())
    ours, theirs = [], []
    for _ in range(rounds + 1):  # the first round warms the page cache
        started = time.perf_counter()
        subprocess.run([*b.bertvault, "verify", "bench-fast"], env=b.env, check=True,
                       stdout=subprocess.DEVNULL)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run(["sha256sum", str(blob)], check=True, stdout=subprocess.DEVNULL)
        theirs.append(time.perf_counter() - started)
    ours, theirs = ours[1:], theirs[1:]
    ratio = median(theirs) / median(ours)  # throughput ratio = inverse time ratio
    return {"bertvault_verify_s": ours, "sha256sum_s": theirs, "throughput_ratio": round(ratio, 2),
            "goal": ">= 0.9", "met": ratio >= 0.9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", default="50m", help="nginx limit_rate for the rate and resume benchmarks")
    parser.add_argument("--only", default="wall,rate,resume,verify")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="folder for the big files (default: a temp dir)")
    args = parser.parse_args()
    as_installed()
    for tool in ("nginx", "curl", "aria2c", "sha256sum"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    scratch = Path(tempfile.mkdtemp(prefix="bertvault-bench-", dir=args.scratch))
    bench = Bench(scratch, args.size_mib << 20, args.rate)
    results: dict = {"size_bytes": bench.size, "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    try:
        chosen = args.only.split(",")
        runners = {"wall": lambda: bench_wall(bench, args.rounds),
                   "rate": lambda: bench_rate(bench, args.rounds),
                   "resume": lambda: bench_resume(bench),
                   "verify": lambda: bench_verify(bench, args.rounds)}
        for name in chosen:
            results[name] = runners[name]()
            print(json.dumps({name: results[name]}), flush=True)
    finally:
        bench.close()
        shutil.rmtree(scratch, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
