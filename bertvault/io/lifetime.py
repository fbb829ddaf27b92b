"""Worker processes end with the process that started them, and leave stop signals to it.

A pool worker (prepare) or a data-loader worker (pretrain) waits on a queue; if its parent is
killed (kill -9, the OOM killer), nothing ever writes to that queue again, and the worker would
wait forever. The kernel ends it instead: PR_SET_PDEATHSIG on Linux; elsewhere the worker falls
back on its pool's own checks.

Ctrl-C at a terminal goes to the whole foreground process group, and torchrun signals a trainer's
group: a worker that got it would die with a traceback mid-item, or ignore it and then ignore its
parent's request to stop as well. So a worker starts with the stop signals blocked (a blocked
signal stays blocked across fork and exec), moves into a process group of its own, discards what
arrived meanwhile, and keeps SIGTERM's default so that its parent can always stop it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Around starting workers: blocked for the children (the mask is inherited), and deferred here,
    since a Python handler (Ctrl-C's KeyboardInterrupt) that ran between starting a child and
    handing it its work would leave that child waiting on a pipe nobody writes. A signal that came
    meanwhile is delivered to this process's own handler when the block ends."""
    deferred: list[int] = []

    def defer(signum, frame) -> None:
        deferred.append(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # the only thread where handlers run
        previous = {sig: signal.signal(sig, defer) for sig in STOP_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # the kernel delivers what it held: to `deferred`
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if deferred:
            signal.raise_signal(deferred[0])


def leave_stop_signals_to_parent() -> None:
    """First thing in a worker started under `stop_signals_blocked`."""
    os.setpgid(0, 0)  # out of the parent's group: group-wide signals are the parent's to handle
    for sig in STOP_SIGNALS:  # SIG_IGN discards one that reached the old group before setpgid
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent (or its exit) can always stop this worker


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when its parent ends. `parent`: the pid that started it, when known;
    if that process already ended (before the request took effect), exit now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: not Linux
        log.debug("PR_SET_PDEATHSIG is unavailable; a worker relies on its pool to notice a dead parent")
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def own_std_streams() -> None:
    """sys.stdout and sys.stderr of a forked worker are copies of its parent's, locks included: if
    another thread of the parent (a progress display) was writing at the fork, the worker's first
    write, or the flush multiprocessing makes at its exit, would wait forever. Fresh ones on the
    same descriptors."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None:
            continue
        try:
            fresh = open(fd, "w", buffering=1, encoding=stream.encoding, errors=stream.errors, closefd=False)
        except (OSError, AttributeError, ValueError):  # a closed descriptor, or a stream without these
            continue
        setattr(sys, name, fresh)
