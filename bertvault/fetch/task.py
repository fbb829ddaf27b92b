"""Live state of one file in a pull: counters the connections bump and the progress display reads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Task:
    label: str                  # the file's path in the artifact
    total: int | None = None
    done: int = 0               # bytes present, resumed ones included
    fetched: int = 0            # bytes received by this process
    resumed: int = 0
    state: str = "queued"       # queued, waiting, probing, downloading, verifying, done, cached, failed
    source: str = ""
    started: float | None = None
    ended: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            self.fetched += n

    def begin(self, source: str, total: int | None, present: int) -> None:
        with self._lock:
            self.source, self.total, self.done, self.resumed = source, total, present, present
            self.state = "downloading"
            self.started = self.started or time.monotonic()

    def finish(self, state: str) -> None:
        self.state, self.ended = state, time.monotonic()

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started

    @property
    def speed(self) -> float:
        return self.fetched / self.seconds if self.seconds > 0 else 0.0
