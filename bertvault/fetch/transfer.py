"""One transfer attempt: the missing ranges of a preallocated file fetched by several connections
at once, each writing in place (pwrite) as bytes arrive; a committer thread journals what is
written; hashing threads follow the contiguous prefix.

Any connection's fatal error stops the others at once (their sockets are shut down), and what was
written is journaled before the attempt ends, so the next one resumes from there.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from bertvault.fetch import journal as journals
from bertvault.fetch.digests import can_compute
from bertvault.fetch.hashing import Follower, Progress
from bertvault.fetch.options import PullOptions
from bertvault.fetch.ranges import RangeSet, chunks
from bertvault.fetch.remote import Remote, Retryable, Unavailable
from bertvault.fetch.retry import Budget, GiveUp, Stop
from bertvault.fetch.space import DISK_FULL, disk_full, fdatasync
from bertvault.fetch.task import Task
from bertvault.fetch.transports import Body, Transport

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """The pull was stopped (Ctrl-C)."""


class _Chunks:
    """The ranges still to fetch, lowest first so that the hashed prefix keeps growing."""

    def __init__(self, pieces: list[tuple[int, int]]) -> None:
        self._pieces = collections.deque(pieces)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pieces)

    def take(self) -> tuple[int, int] | None:
        with self._lock:
            return self._pieces.popleft() if self._pieces else None

    def give_back(self, start: int, end: int) -> None:
        if end > start:
            with self._lock:
                self._pieces.appendleft((start, end))


class Transfer:
    def __init__(self, transport: Transport, remote: Remote, fd: int, folder: Path, journal: journals.Journal,
                 options: PullOptions, task: Task, stop: Stop, event: Callable[[str], None]) -> None:
        self.transport, self.remote, self.fd, self.folder, self.journal = transport, remote, fd, folder, journal
        self.options, self.task, self.stop, self.event = options, task, stop, event
        self._failure: BaseException | None = None
        self._bodies: set[Body] = set()
        self._lock = threading.Lock()
        self._ended = threading.Event()  # this attempt is over (done, failed or stopped)

    def run(self, done: RangeSet, algos: set[str]) -> tuple[dict[str, str], int]:
        """Fetch what `done` lacks; return ({algo: hex digest}, size)."""
        remote = self.remote
        progress = Progress(done)
        algos = algos | {algo for algo in remote.digests if can_compute(algo)}
        followers = [Follower(self.fd, algo, progress, self.options.hash_block) for algo in sorted(algos)]
        committer = threading.Thread(target=self._commit_loop, args=(progress,), daemon=True)
        if not remote.ranges or remote.size is None:
            workers = [threading.Thread(target=self._stream, args=(progress,), daemon=True)]
        else:
            queue = _Chunks(chunks(done.missing(remote.size), self.options.chunk_for(remote.size)))
            count = min(self.options.connections if self.transport.parallel else 1, len(queue))
            workers = [threading.Thread(target=self._worker, args=(queue, progress), daemon=True) for _ in range(count)]
            committer.start()
        for thread in [*followers, *workers]:
            thread.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.25)
                    if self.stop.is_set():
                        self._abort()
        finally:
            failed = self._failure is not None or self.stop.is_set()
            if failed:
                progress.abort()
            self._ended.set()
            if committer.is_alive():
                committer.join()
            if failed:
                self._commit(progress, synced=self.options.fsync)
        if self._failure is not None:
            raise self._failure
        if self.stop.is_set():
            raise Interrupted("stopped")
        arrived = progress.snapshot().prefix()
        size = remote.size if remote.size is not None else arrived
        if arrived != size:
            raise Retryable(f"only {arrived} of {size} bytes arrived")
        progress.finish(size)
        self.task.state = "verifying"
        # The data goes to disk while the hashers catch up, so the blob is installed without a wait.
        syncer = threading.Thread(target=fdatasync, args=(self.fd,), daemon=True)
        if self.options.fsync:
            syncer.start()
        try:
            return {f.algo: f.result(size) for f in followers}, size
        finally:
            if syncer.is_alive():
                syncer.join()

    # -- stopping --

    def _abort(self) -> None:
        """Stop every connection now (a shut-down socket wakes the thread blocked reading it)."""
        self._ended.set()
        with self._lock:
            bodies = list(self._bodies)
        for body in bodies:
            body.abort()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = exc
        self._abort()

    def _stopped(self) -> bool:
        return self._ended.is_set() or self.stop.is_set()

    # -- connections --

    def _worker(self, queue: _Chunks, progress: Progress) -> None:
        session = self.transport.session()
        buffer = memoryview(bytearray(self.options.buffer_size))
        budget = Budget(self.options, self.remote.url)
        try:
            while not self._stopped() and (piece := queue.take()) is not None:
                start, end = piece
                cursor = [start]
                try:
                    self._copy(session, cursor, end, buffer, progress)
                except Retryable as exc:
                    queue.give_back(cursor[0], end)
                    if self._stopped():
                        return
                    if cursor[0] > start:
                        budget.progressed()
                    wait = budget.wait_after(exc)
                    log.info("%s: %s; retrying bytes %d-%d in %.1f s", self.task.label, exc, cursor[0], end - 1, wait)
                    if wait >= 1:
                        self.event(f"{self.task.label}: {exc}; retrying in {wait:.1f} s")
                    if self._ended.wait(wait):
                        return
        except GiveUp as exc:
            self._fail(Unavailable(str(exc)))
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits on us
            if not self._stopped():
                self._fail(exc)

    def _stream(self, progress: Progress) -> None:
        """The whole file in one request, for servers without ranges or a known size."""
        try:
            self._copy(self.transport.session(), [0], None, memoryview(bytearray(self.options.buffer_size)), progress)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits on us
            if not self.stop.is_set():
                self._fail(exc)

    def _copy(self, session: object, cursor: list[int], end: int | None, buffer: memoryview,
              progress: Progress) -> None:
        """Read [cursor, end) into the file at its offset, advancing cursor[0] as bytes land."""
        body = self.transport.open(self.remote, session, cursor[0], end)
        with self._lock:
            self._bodies.add(body)
        complete = False
        try:
            while end is None or cursor[0] < end:
                if self._stopped():
                    return
                want = buffer if end is None else buffer[: min(len(buffer), end - cursor[0])]
                n = body.readinto(want)
                if n <= 0:
                    break
                self._write(want[:n], cursor[0])
                progress.add(cursor[0], cursor[0] + n)
                cursor[0] += n
                self.task.add(n)
            size = self.remote.size
            if end is not None and cursor[0] < end:
                raise Retryable(f"connection closed early, {end - cursor[0]} bytes short of byte {end}")
            if end is None and size is not None and cursor[0] != size:
                raise Retryable(f"body ended after {cursor[0]} of {size} bytes")
            complete = True
        finally:
            with self._lock:
                self._bodies.discard(body)
            body.close(reuse=complete)

    def _write(self, data: memoryview, offset: int) -> None:
        try:
            while data:
                n = os.pwrite(self.fd, data, offset)
                data, offset = data[n:], offset + n
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise disk_full(exc, self.folder) from None
            raise

    # -- the journal --

    def _commit_loop(self, progress: Progress) -> None:
        """Journal what is written every commit_interval; sync the data first every sync_interval."""
        every = max(1, round(self.options.sync_interval / self.options.commit_interval))
        tick = 0
        while not self._ended.wait(self.options.commit_interval):
            tick += 1
            try:
                self._commit(progress, synced=self.options.fsync and tick % every == 0)
            except OSError as exc:  # a full disk can stop the journal too; the connections report it
                log.warning("%s: could not update the journal: %s", self.task.label, exc)

    def _commit(self, progress: Progress, *, synced: bool) -> None:
        snapshot = progress.snapshot()
        if synced:
            fdatasync(self.fd)
        self.journal.commit(snapshot, synced=synced)
