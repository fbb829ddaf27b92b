"""Start-up cost of `bertvault list` against a bare interpreter (goal: within 0.3 s of `python -c pass`).

    python benchmarks/bench_list.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import as_installed


def wall(cmd: list[str], runs: int, env: dict) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    as_installed()
    bertvault = os.path.join(os.path.dirname(sys.executable), "bertvault")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BERTVAULT_HOME": home}
        wall([bertvault, "list"], 2, env)  # warm the page cache and .pyc files
        bare = wall([sys.executable, "-c", "pass"], args.runs, env)
        listed = wall([bertvault, "list"], args.runs, env)
        listed_json = wall([bertvault, "list", "--json"], args.runs, env)
    med = statistics.median
    print(f"python -c pass         median {med(bare):.3f} s")
    print(f"bertvault list         median {med(listed):.3f} s  (+{med(listed) - med(bare):.3f} s)")
    print(f"bertvault list --json  median {med(listed_json):.3f} s  (+{med(listed_json) - med(bare):.3f} s)")
    verdict = "met" if med(listed) - med(bare) <= 0.3 else "NOT met"
    print(f"goal: list within 0.300 s of bare start -> {verdict}")


if __name__ == "__main__":
    main()
