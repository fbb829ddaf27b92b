"""Running one command on several processes: torchrun for CPUs and GPUs, torch_xla for TPU cores.

`bertvault pretrain --nproc-per-node 4 ...` starts the same command line again under
`torch.distributed.run` (the machinery behind `torchrun`), which sets RANK, WORLD_SIZE and
MASTER_ADDR for each child; the children see TORCHELASTIC_RUN_ID and train instead of launching.
A failed child is reported as one line, not as torchrun's traceback.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from bertvault.errors import BertvaultError, TrainingError, UsageError

log = logging.getLogger(__name__)


def launched() -> bool:
    """True inside a process that torchrun (or our re-launch) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def wants_launch(nproc_per_node: int, nnodes: int, device: str) -> bool:
    return (nproc_per_node > 1 or nnodes > 1) and device != "tpu" and not launched()


def torchrun_arguments(argv: list[str], nproc_per_node: int, nnodes: int, node_rank: int,
                       rdzv_endpoint: str | None) -> list[str]:
    """torchrun's command line for `python -m bertvault ARGV` on this node."""
    args = [f"--nproc-per-node={nproc_per_node}", f"--nnodes={nnodes}", "--max-restarts=0"]
    if nnodes == 1 and rdzv_endpoint is None:
        args.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise UsageError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        # Static rendezvous: node ranks are the ones given, as with torchrun --master-addr/--master-port.
        args += ["--rdzv-backend=static", f"--rdzv-endpoint={rdzv_endpoint}", f"--node-rank={node_rank}"]
    return [*args, "-m", "bertvault", *argv]


ERROR_DIR = "BERTVAULT_LAUNCH_ERRORS"  # where launched processes leave their one-line errors


class ChildError(TrainingError):
    """A launched process stopped on a bertvault error: its message and exit code, reported once."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class PeerFailed(TrainingError):
    """This process stopped because another process of the run failed; that one reports the cause."""


@contextmanager
def peers_may_fail(distributed: bool) -> Iterator[None]:
    """A collective that fails because a peer process died (gloo: "Connection closed by peer") is a
    consequence, not a cause: it becomes PeerFailed, one line, instead of a traceback per rank."""
    try:
        yield
    except RuntimeError as exc:
        import torch.distributed as dist

        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if distributed and (isinstance(exc, dist.DistError) or "peer" in text.lower()):
            raise PeerFailed(f"another process of this run failed ({text[:200]})") from None
        raise


def hand_error_to_launcher(exc: BertvaultError) -> bool:
    """In a launched process: leave the error for the launcher to print once; True if it was left
    (or needs no report: a PeerFailed process leaves the report to the peer that failed first)."""
    folder = os.environ.get(ERROR_DIR)
    if not folder or not launched():
        return False
    if isinstance(exc, PeerFailed):
        return True
    path = Path(folder) / f"rank-{int(os.environ.get('RANK', '0')):05d}"
    path.write_text(f"{exc.exit_code}\n{exc}", encoding="utf-8")
    return True


def _first_child_error(folder: Path) -> ChildError | None:
    for path in sorted(folder.glob("rank-*")):
        code, _, message = path.read_text(encoding="utf-8").partition("\n")
        return ChildError(message, int(code))
    return None


def relaunch(argv: list[str], nproc_per_node: int, nnodes: int, node_rank: int,
             rdzv_endpoint: str | None) -> None:
    """Runs ARGV under torch.distributed.run and waits; a failure is raised as one error.

    Children that stop on bad input leave their message in a shared folder; the lowest rank's is
    raised here (so the user reads it once, not once per process, and not as torchrun's traceback).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, get_args_parser

    arguments = torchrun_arguments(argv, nproc_per_node, nnodes, node_rank, rdzv_endpoint)
    args = get_args_parser().parse_args(arguments)
    if args.standalone:  # what torchrun's own run() does for --standalone
        args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    # One intra-op thread pool per process, sized so the processes share the cores instead of fighting.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc_per_node)))
    config, entrypoint, entry_args = config_from_args(args)
    log.info("launching %d processes per node on %d node(s)", nproc_per_node, nnodes)
    # torchrun's agent logs "sending SIGTERM" / "failed" lines that repeat ours; each of its modules
    # sets its own level, so quiet them one by one (--debug keeps them).
    quieted = {} if log.isEnabledFor(logging.DEBUG) else {
        logger: logger.level for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("torch.distributed.elastic") and isinstance(logger, logging.Logger)}
    for logger in quieted:
        logger.setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bertvault-launch-") as errors:
        os.environ[ERROR_DIR] = errors
        try:
            elastic_launch(config=config, entrypoint=entrypoint)(*entry_args)
        except SignalException as exc:  # Ctrl-C / SIGTERM to the launcher: the children got SIGTERM and saved
            reported = _first_child_error(Path(errors))
            raise reported or TrainingError(f"stopped by {exc.sigval.name}") from None
        except ChildFailedError as exc:
            reported = _first_child_error(Path(errors))
            if reported is not None:
                raise reported from None
            codes = sorted({failure.exitcode for failure in exc.failures.values()})
            raise TrainingError(
                f"{len(exc.failures)} of {nproc_per_node * nnodes} training processes failed (exit code "
                f"{', '.join(map(str, codes))}; a negative code is the signal that ended it)"
            ) from None
        finally:
            os.environ.pop(ERROR_DIR, None)
            for logger, level in quieted.items():
                logger.setLevel(level)


def dispatch(settings, run: Callable, *args, argv: list[str], preflight: Callable[[], None] | None = None,
             display: Callable[[], AbstractContextManager] | None = None):
    """Run a training command: here, under torchrun (several processes or nodes), or once per local
    TPU core. Returns what `run` returns where it ran here; None in a launcher.

    Before a launch, `preflight` checks what every process would otherwise find wrong at once, and
    where each source was found is handed to the children (sources.handed_to_children)."""
    if wants_launch(settings.nproc_per_node, settings.nnodes, settings.device):
        if preflight is not None:
            preflight()
        from bertvault import sources

        with sources.handed_to_children():
            relaunch(argv, settings.nproc_per_node, settings.nnodes, settings.node_rank,
                     settings.rdzv_endpoint)
        return None
    if settings.device == "tpu" and settings.nproc_per_node > 1:
        xla_launch(run, settings, *args)
        return None
    with display() if display is not None else nullcontext() as shown:
        return run(settings, *args, display=shown)


def xla_launch(fn, *args) -> None:
    """fn(*args) in one process per local XLA device (every TPU core of this host), via torch_xla."""
    import torch_xla

    torch_xla.launch(_xla_entry, args=(fn, *args))


def _xla_entry(*args) -> None:
    if args and isinstance(args[0], int):  # the process index, which some torch_xla releases pass first
        args = args[1:]
    fn, *rest = args
    fn(*rest)
