"""A two-node Ray cluster on loopback, and `prepare --engine ray` on it; run by test_ray_engine.py as
`unshare -n -p -f --mount-proc python ray_cluster.py SPEC.json`.

In a network namespace with nothing but loopback, Ray can neither advertise nor reach the machine's
external address; in a PID namespace of its own, every Ray process ends when this script does. The
head and the extra worker node have one CPU each.

SPEC: {"vocab", "corpus", "cli_out", "kill_out", "resume_out", "report"}. Writes "cli_out" with the
CLI; "kill_out" with the library (small items), killing the extra worker node once two items are
done; "resume_out" in two runs, the first stopped after three items;
writes to "report" {"items": …, "killed": [pids], "alive": nodes, "log": [lines]}.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

PORT = 6399
WORKER_PORT = 6411  # the extra node's node manager: how its raylet is found to be killed
BIN = Path(sys.executable).parent


def ray_start(*args: str) -> None:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([str(BIN / "ray"), "start", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                              "--disable-usage-stats", "--object-store-memory=100000000", *args],
                             env=env, capture_output=True, text=True, timeout=120)
    if started.returncode:
        sys.exit(f"ray start {' '.join(args)} failed: {started.stdout[-1500:]} {started.stderr[-1500:]}")


def worker_node_pids() -> list[int]:
    """The extra node's raylet and the worker processes it started."""
    flag = f"--node_manager_port={WORKER_PORT}"
    raylet = [pid for pid, line in _commands() if "raylet" in line and flag in line]
    children = [pid for pid, _ in _commands() if _parent(pid) in raylet]
    return raylet + children


def _warm() -> None:
    import bertvault.data.prepare  # noqa: F401 - the imports a first item would wait for


def warm_every_node(ray) -> None:
    """A worker on each node with bertvault imported before the runs, so that the extra node takes
    items from the start even on a busy machine (the head's worker is warm from the CLI run)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
    pinned = [ray.remote(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
              for node in nodes]
    ray.get([task(_warm).remote() for task in pinned], timeout=120)


def _commands():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Ray's socket paths must fit in 107 bytes: its session folder goes in a short temporary folder
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    try:
        run(spec, temp)
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def run(spec: dict, temp: str) -> None:
    ray_start("--head", f"--port={PORT}", "--include-dashboard=false", f"--temp-dir={temp}")
    ray_start(f"--address=127.0.0.1:{PORT}", f"--node-manager-port={WORKER_PORT}")
    address = f"127.0.0.1:{PORT}"

    cli = subprocess.run([str(BIN / "bertvault"), "prepare", spec["corpus"], "--vocab-from", spec["vocab"],
                          "--out", spec["cli_out"], "--engine", "ray", "--ray-address", address],
                         capture_output=True, text=True, timeout=300)
    if cli.returncode:
        sys.exit(f"prepare --engine ray failed ({cli.returncode}): {cli.stderr[-2000:]}")

    from bertvault.data import prepare, ray_engine

    warm_every_node(ray_engine.connect(address))
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("bertvault").addHandler(handler)
    logging.getLogger("bertvault").setLevel(logging.DEBUG)
    options = prepare.Options(format="tfrecord", dupe_factor=2, chunk_bytes=16_000, engine="ray",
                              ray_address=address)
    plan = prepare.plan([spec["corpus"]], spec["vocab"], spec["kill_out"], options)
    done, killed = [], []

    def report(size: int, documents: int, examples: int) -> None:
        """Kills the extra node as soon as it has finished an item (so it surely held work)."""
        import ray

        done.append(size)
        head = ray.get_runtime_context().get_node_id()  # this driver's node
        finished_there = any(r.startswith("work item") and not r.endswith(head) for r in records)
        if finished_there and not killed:
            for pid in worker_node_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            records.append(f"killed after {len(done)} items")

    prepare.run(plan, report)

    # Stopped by a real SIGTERM after three items (as a scheduler stops a job: Ray's core must not
    # have taken the signal over), then the same command again: only the items not finished run.
    plan = prepare.plan([spec["corpus"]], spec["vocab"], spec["resume_out"], options)

    stopped: list[int] = []

    def stop(size: int, documents: int, examples: int) -> None:
        stopped.append(size)
        if len(stopped) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # prepare.run turns it into KeyboardInterrupt

    try:
        prepare.run(plan, stop)
    except KeyboardInterrupt:
        pass
    prepare.run(prepare.plan([spec["corpus"]], spec["vocab"], spec["resume_out"], options))
    import ray

    alive = sum(node["Alive"] for node in ray.nodes())
    report = {"items": len(done), "killed": killed, "alive": alive, "log": records}
    Path(spec["report"]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
