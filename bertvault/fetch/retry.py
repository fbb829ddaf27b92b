"""Retry budgets: exponential backoff with jitter (urllib3's Retry does the arithmetic), Retry-After
honoured, and the count reset whenever bytes arrive, so a flaky but working server never runs out."""

from __future__ import annotations

import threading

from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import Retryable


class GiveUp(Exception):
    """The budget is spent; the message says why."""


class Budget:
    def __init__(self, options: PullOptions, what: str) -> None:
        self._options = options
        self._what = what
        self._retry = self._fresh()

    def _fresh(self) -> Retry:
        o = self._options
        return Retry(total=o.retries, backoff_factor=o.retry_wait, backoff_jitter=o.retry_wait,
                     backoff_max=o.max_retry_wait)

    def progressed(self) -> None:
        if self._retry.history:
            self._retry = self._fresh()

    def wait_after(self, error: Retryable) -> float:
        """Seconds to wait before trying again; raises GiveUp when the budget is spent."""
        try:
            self._retry = self._retry.increment(method="GET", url=self._what)
        except MaxRetryError:
            tries = self._options.retries + 1
            raise GiveUp(f"{tries} attempts failed without progress; last: {error}") from None
        failed = len(self._retry.history)
        if error.attempts is not None and failed >= error.attempts:
            raise GiveUp(f"{failed} attempts failed; last: {error}")
        wait = self._retry.get_backoff_time()
        if error.retry_after is not None:
            if error.retry_after > self._options.max_retry_after:
                raise GiveUp(f"{error} and asks to retry after {error.retry_after:.0f} s "
                             f"(more than the {self._options.max_retry_after:.0f} s allowed)")
            wait = max(wait, error.retry_after)
        return wait


class Stop:
    """A shared flag that also wakes sleepers: set it and every wait returns at once."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait; True if stopped meanwhile."""
        return self._event.wait(seconds) if seconds > 0 else self._event.is_set()
