"""`prepare --engine ray`: the same work items as a local run, as tasks on a running Ray cluster.

Only this module imports Ray (the `bertvault[ray]` extra). The driver (the `prepare` process) reads
the inputs as a local run does and submits each item as a task with one CPU; text chunks travel in
Ray's object store, AzureML shards and TFRecord files by path, so they must be on storage every
node shares (a gs:// input is pulled into the driver's cache: put `BERTVAULT_HOME` on shared storage
for those). A task builds its item's shard in a temporary folder on its node, exactly as a local
worker would (same seed per item, so the same bytes), and returns the files; the driver keeps them
in a resume folder named for the run's inputs and options. A node that dies costs only the items it
held: Ray runs them again elsewhere (`MAX_RETRIES`). A run that stops for any reason leaves its
finished items in the resume folder, and the same command run again submits only the others.

Output flows through the driver: it writes every shard (an `--out gs://` run then uploads them as
a local run does). That needs no storage shared for output, and it bounds the pace: at the rate
measured for one core (README, "Data at scale"), 64 cores read 1.2 GB of text a second and make
0.8 GB of native shards, about what one machine's 10-gigabit link and disk carry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bertvault.data import shards
from bertvault.errors import BertvaultError, DataError, UsageError
from bertvault.io.hashing import hash_file

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # per item, for a worker or node that dies; an error of the item itself is not retried
CONNECT_SECONDS = 10
SHARD_NAME = re.compile(r"part-\d+\.(ids\.npy|index\.npy|tfrecord)")
RECORD = "{stem}.item.json"  # the item's shard entry and counts, written after its files


def connect(address: str):
    """The Ray module, connected to the cluster at `address` ("auto": RAY_ADDRESS, or the cluster
    started on this machine by `ray start`). Never starts a cluster of its own."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray on this machine and every node: "
                         "pip install 'bertvault[ray]'") from None
    if not ray.is_initialized():
        handlers = _stop_handlers()
        try:
            # Ray waits minutes for a cluster that is not there: first a plain connection, for seconds
            target = _reachable(address)
            ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False)
        except (OSError, ValueError, RuntimeError) as exc:  # ConnectionError is an OSError
            what = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            raise DataError(f"cannot reach a Ray cluster at --ray-address {address}: {what}; start one "
                            "with `ray start --head`, or give its HOST:PORT") from None
        finally:
            # Ray's core installs its own SIGTERM handler (a stack dump, exit 1): a stop request stays
            # the command's to handle (remove the staging folder, exit 130)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    return ray


def _stop_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}  # handlers are the main thread's to set
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(sig) is not None}


def _reachable(address: str) -> str:
    """HOST:PORT of the cluster's head (`auto`: as Ray finds it), once it accepts a connection."""
    from ray._private.services import canonicalize_bootstrap_address

    target = canonicalize_bootstrap_address(address) if address == "auto" else address
    host, _, port = (target or "").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{target!r} is not HOST:PORT")
    socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    return target


def resume_folder(plan) -> Path:
    """Where this run's finished items are kept until the output is committed: named for what
    decides the output bytes (inputs as they are on disk, vocab, options) and for the output, so a
    rerun of the same command finds them, a changed input or option starts afresh, and two runs
    into different outputs never share (one's commit removes the folder)."""
    from bertvault.cache import layout

    o = plan.options
    key = {
        "out": str(plan.remote or plan.out),
        "inputs": [(str(f.path), f.kind, f.size, _mtime(f.path)) for f in plan.files],
        "vocab": plan.vocab.sha256,
        "lowercase": plan.vocab.lowercase,
        "options": {k: v for k, v in dataclasses.asdict(o).items() if k not in ("workers", "engine",
                                                                                  "ray_address")},
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return layout.prepare_items_dir() / digest[:16]


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _task(job, number: int, kind: str, payload) -> tuple[int, dict | None, dict, dict[str, bytes]]:
    """Runs on a Ray worker: one item, as a local worker runs it; its shard's files come back."""
    import ray

    from bertvault.data import prepare

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one CPU per task, as a local worker has
    # Memory, where the node has it: these files live only until they are sent, so the fsyncs of an
    # atomic write cost nothing there (on this project's VM they cost seconds an item on disk)
    memory = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bertvault-item-", dir=memory) as folder:
        number, entry, stats = prepare.work_item(job, number, kind, payload, Path(folder))
        files = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
    stats["node"] = ray.get_runtime_context().get_node_id()
    return number, entry, stats, files


def execute(job, items: Iterator, plan, report) -> Iterator[tuple[int, dict | None, dict]]:
    """(item number, shard entry, stats) for every item, with each shard's files in `job.staging`."""
    ray = connect(plan.options.ray_address)
    keep = resume_folder(plan)
    keep.mkdir(parents=True, exist_ok=True)
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_task)
    in_flight = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    log.info("Ray cluster: %d node(s), %d CPU(s); finished items are kept in %s",
             len(ray.nodes()), in_flight // 2, keep)
    job_ref = ray.put(job)
    running: dict = {}
    nodes: Counter = Counter()
    numbered = enumerate(items)
    try:
        while True:
            while len(running) < in_flight and (step := next(numbered, None)) is not None:
                number, (kind, payload, size) = step
                if (kept := _kept(keep, number)) is not None:
                    _place(keep, job.staging, kept[1])
                    report(size, kept[2].get("documents", 0), kept[2].get("examples", 0))
                    yield kept
                    continue
                running[task.remote(job_ref, number, kind, payload)] = (number, size)
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1)
            number, size = running.pop(done[0])
            result = _result(ray, done[0], number)
            node = result[2].pop("node", "?")
            nodes[node] += 1
            log.debug("work item %d done on node %s", number, node)
            _keep(keep, *result)
            _place(keep, job.staging, result[1])
            report(size, result[2].get("documents", 0), result[2].get("examples", 0))
            yield result[:3]
    except BaseException:
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    log.info("Ray: %d item(s) run on %d node(s) this time", sum(nodes.values()), len(nodes))


def finished(plan) -> None:
    """The output is committed: its resume folder has served."""
    shutil.rmtree(resume_folder(plan), ignore_errors=True)


def _result(ray, ref, number: int) -> tuple:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, BertvaultError):
            raise exc.cause from None
        raise DataError(f"work item {number} failed on the Ray cluster: {type(exc.cause).__name__}: "
                        f"{exc.cause}") from None
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError) as exc:
        raise DataError(f"work item {number}: its Ray worker died {MAX_RETRIES + 1} times "
                        f"({type(exc).__name__}); run the same command again to go on from the "
                        "finished items") from None


def _keep(keep: Path, number: int, entry: dict | None, stats: dict, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        if not SHARD_NAME.fullmatch(name):  # only what _process writes
            raise DataError(f"work item {number} returned the file {name!r}, not a shard")
        shards._atomic(keep, name, lambda handle, data=data: handle.write(data))
    record = {"number": number, "entry": entry, "stats": stats,
              "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    shards.write_json(keep, RECORD.format(stem=f"part-{number:05d}"), record)  # last: the item is done


def _kept(keep: Path, number: int) -> tuple[int, dict | None, dict] | None:
    """A finished item of an earlier run of this command, if its record is there and its files have
    the bytes the record names (anything else is run again)."""
    try:
        record = json.loads((keep / RECORD.format(stem=f"part-{number:05d}")).read_text())
        entry, digests = record["entry"], record["sha256"]
        for name in _names(entry or {}):
            if hash_file(keep / name, {"sha256"})["sha256"] != digests[name]:
                log.warning("%s: not the bytes its item made; that item runs again", keep / name)
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return number, entry, record.get("stats", {})


def _names(entry: dict) -> list[str]:
    """The shard's file names, each a plain `part-…` name (a record is read back from disk)."""
    names = [entry[k] for k in ("ids", "index", "file") if k in entry]
    for name in names:
        if not (isinstance(name, str) and SHARD_NAME.fullmatch(name)):
            raise DataError(f"a kept work item names the file {name!r}, not a shard; remove the resume "
                            "folder (`bertvault cache gc`) and run again")
    return names


def _place(keep: Path, staging: Path, entry: dict | None) -> None:
    """A kept item's files into the staging folder (copied: the resume folder stays whole until
    the output is committed)."""
    for name in _names(entry or {}):
        try:
            os.link(keep / name, staging / name)
        except OSError:
            shutil.copyfile(keep / name, staging / name)
