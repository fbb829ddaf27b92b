"""Showing a pull as it runs: rich bars on a terminal, plain periodic lines otherwise.

Reporters only read the Task counters (from their own thread); the download threads never wait on
the display.
"""

from __future__ import annotations

import threading
import time
from typing import IO, Protocol

from bertvault.fetch.task import Task
from bertvault.sizes import format_size

FINAL = ("done", "cached", "failed")


def shown_speed(fetched: int, seconds: float) -> str:
    """Bytes this process received over the seconds of that transfer, as the bars, the log lines and
    the summary table all show it ("" when nothing was received)."""
    return f"{format_size(fetched / seconds)}/s" if fetched and seconds > 0 else ""


def transfer(tasks: list[Task]) -> tuple[int, float]:
    """Bytes received and the seconds they took: from the first file's start to the last one's end (or
    now), so that for a single file it is that file's own figure."""
    started = [t for t in tasks if t.started is not None]
    if not started:
        return 0, 0.0
    first = min(t.started for t in started)  # type: ignore[type-var]
    ends = [t.ended for t in started]
    last = time.monotonic() if None in ends else max(ends)  # type: ignore[type-var]
    return sum(t.fetched for t in tasks), last - first


class Reporter(Protocol):
    def start(self, title: str, tasks: list[Task]) -> None: ...

    def event(self, message: str) -> None:
        """Something the user must hear even when progress is off: a retry, a wait, a mismatch."""

    def note(self, message: str) -> None:
        """Something said along with the progress (the total to fetch), not when it is off."""

    def stop(self) -> None: ...


class NullReporter:
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, title: str, tasks: list[Task]) -> None:
        pass

    def event(self, message: str) -> None:
        self.events.append(message)

    def note(self, message: str) -> None:
        self.events.append(message)

    def stop(self) -> None:
        pass


class _Ticker:
    """Calls `tick` every `every` seconds on a daemon thread until stopped (and once at the end)."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._every):
            self.tick()

    def end(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        self.tick()

    def tick(self) -> None:
        raise NotImplementedError


class LogReporter(_Ticker):
    """One line per interval (none if `every` is 0): files done, bytes, speed, ETA; events as they
    happen."""

    def __init__(self, stream: IO[str], every: float = 5.0) -> None:
        super().__init__(every)
        self._stream = stream
        self._tasks: list[Task] = []
        self._title = ""
        self._last = ""
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def start(self, title: str, tasks: list[Task]) -> None:
        self._title, self._tasks = title, tasks
        if self._every > 0:
            self.begin()

    def event(self, message: str) -> None:
        self._write(f"bertvault: {message}")

    def note(self, message: str) -> None:
        if self._every > 0:
            self._write(f"bertvault: {message}")

    def tick(self) -> None:
        if self._tasks and all(t.state == "failed" for t in self._tasks):
            return  # nothing to report: the error that ends the pull says why
        line = self.status()
        if line != self._last:
            self._last = line
            self._write(line)

    def status(self) -> str:
        tasks = self._tasks
        finished = sum(t.state in ("done", "cached") for t in tasks)
        failed = sum(t.state == "failed" for t in tasks)
        done = sum(t.done for t in tasks)
        fetched, seconds = transfer(tasks)
        totals = [t.total for t in tasks]
        total = sum(totals) if all(x is not None for x in totals) else None  # type: ignore[misc]
        text = f"bertvault: pull {self._title}: {finished}/{len(tasks)} files, {format_size(done)}"
        if total:
            text += f" of {format_size(total)} ({100 * done / total:.0f}%)"
            if fetched and seconds > 0 and done < total:
                text += f", ETA {(total - done) * seconds / fetched:.0f} s"
        if failed:
            text += f", {failed} failed"
        speed = shown_speed(fetched, seconds)
        active = [t.label for t in tasks if t.state not in FINAL and t.state != "queued"]
        return text + (f", {speed}" if speed else "") + (f" [{', '.join(active[:3])}]" if active else "")

    def stop(self) -> None:
        if self._every > 0:
            self.end()


class RichReporter(_Ticker):
    """An overall bar and one bar per active file, with speed and ETA."""

    def __init__(self, console) -> None:
        super().__init__(0.2)
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        # The speed is the one the log lines and the summary table show (`shown_speed`), not rich's own
        # estimate, which has no figure ("?") for a file fetched between two refreshes.
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TextColumn("{task.fields[speed]}"), TimeRemainingColumn(), console=console,
                                  transient=False)
        self._tasks: list[Task] = []
        self._ids: dict[int, int] = {}
        self._overall = None

    def start(self, title: str, tasks: list[Task]) -> None:
        self._tasks = tasks
        totals = [t.total for t in tasks]
        total = sum(totals) if None not in totals else None  # type: ignore[arg-type]
        self._overall = self._progress.add_task(f"[bold]{title}", total=total, speed="")
        self._progress.start()
        self.begin()

    def event(self, message: str) -> None:
        self._progress.console.print(message, markup=False, highlight=False)

    def note(self, message: str) -> None:
        self.event(message)

    def tick(self) -> None:
        for task in self._tasks:
            key = id(task)
            if task.state == "queued":
                continue
            if key not in self._ids:
                self._ids[key] = self._progress.add_task(f"  {task.label}", total=task.total, speed="")
            description = f"  {task.label}" + ("" if task.state == "downloading" else f" ({task.state})")
            self._progress.update(self._ids[key], completed=task.done, total=task.total,
                                  description=description, speed=shown_speed(task.fetched, task.seconds))
        totals = [t.total for t in self._tasks]
        self._progress.update(self._overall, completed=sum(t.done for t in self._tasks),
                              total=sum(totals) if None not in totals else None,
                              speed=shown_speed(*transfer(self._tasks)))

    def stop(self) -> None:
        self.end()
        self._progress.stop()
