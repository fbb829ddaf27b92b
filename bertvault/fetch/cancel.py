"""Blocking calls that a stop abandons at once.

A request waiting to connect, or for the headers of an answer that never comes, cannot be woken:
requests gives no handle on its socket until the answer is there. Such a call runs on a daemon
thread while the caller polls its stop condition; once the condition holds the caller raises
Interrupted within a poll, and the abandoned call ends at its own timeout (its result, if any, is
closed), without keeping the process alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from bertvault.fetch.remote import Interrupted

T = TypeVar("T")
POLL = 0.05  # seconds between looks at the stop condition


def call(fn: Callable[[], T], stopped: Callable[[], bool], *, discard: Callable[[T], None] | None = None,
         what: str = "request") -> T:
    """fn()'s result (or its exception), unless `stopped()` turns true first: then Interrupted."""
    if stopped():
        raise Interrupted("stopped")
    outcome: dict[str, object] = {}
    done = threading.Event()
    lock = threading.Lock()

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc
        else:
            with lock:
                outcome["value"] = value
                late = "abandoned" in outcome
            if late and discard is not None:
                discard(value)
        finally:
            done.set()

    threading.Thread(target=run, name=what, daemon=True).start()
    while not done.wait(POLL):
        if stopped():
            with lock:
                outcome["abandoned"] = True
                if "value" not in outcome:
                    raise Interrupted("stopped")
            break
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
