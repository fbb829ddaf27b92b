"""Worker processes end with the process that started them.

A pool worker (prepare) or a data-loader worker (pretrain) waits on a queue; if its parent is
killed (kill -9, the OOM killer), nothing ever writes to that queue again, and the worker would
wait forever. The kernel ends it instead: PR_SET_PDEATHSIG on Linux; elsewhere the worker falls
back on its pool's own checks.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
