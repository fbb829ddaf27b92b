"""One transfer attempt: the missing ranges of a preallocated file fetched by several connections
at once, each filling an aligned buffer from its socket and writing it in place (pwrite; with
direct I/O where the filesystem allows it, so gigabytes do not churn through the page cache); a
committer thread journals what is written; a hasher hashes the prefix in order from the written
buffers (see hashing.py).

Any connection's fatal error stops the others at once (their sockets are shut down), and what was
written is journaled before the attempt ends, so the next one resumes from there.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bertvault.cache.journal import Journal
from bertvault.fetch import cancel
from bertvault.fetch.buffers import ALIGN, Pool, align_down, aligned
from bertvault.fetch.digests import can_compute
from bertvault.fetch.hashing import Hasher, Progress
from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import Interrupted, Remote, Retryable, Unavailable, disk_full
from bertvault.fetch.retry import Budget, GiveUp, Stop
from bertvault.fetch.task import Task
from bertvault.fetch.transports import Body, Transport
from bertvault.io.ranges import RangeSet, chunks
from bertvault.io.space import DISK_FULL, fdatasync, start_writeback

MIN_SPLIT = 2 << 20  # a piece in flight is split only if each half keeps at least this much
POOL_WAIT = 1.0  # seconds a connection ahead of a busy hasher waits for a buffer before using its own
POOL_POLL = 0.02  # seconds between looks at whether the hasher is still busy
POOL_SPARE = 2  # buffers kept for the connection at the hashed prefix
RAMP_STEP = 2  # connections started at first, and added at a time while the hasher idles
RAMP_INTERVAL = 0.05  # seconds between looks at the hasher
RAMP_IDLE = 0.5  # the share of an interval the hasher must idle for more connections to start
SPLIT_ALIGN = 64 << 10  # split points stay aligned, so both halves can be written with direct I/O

log = logging.getLogger(__name__)


class Piece:
    """One ranged request's bytes [cursor, end): the connection advances `cursor`; another idle
    connection may lower `end` to take the second half (see _Chunks.take)."""

    __slots__ = ("cursor", "end", "requested_end")

    def __init__(self, start: int, end: int | None) -> None:
        self.cursor, self.end, self.requested_end = start, end, end


class _Chunks:
    """The ranges still to fetch, lowest first so that the hashed prefix keeps growing.

    When none are left, an idle connection splits the busiest piece in flight and takes its upper
    half (as aria2 does), so that the last seconds of a download still use every connection instead
    of waiting on the one that drew the last chunk. The split point stays at least one socket read
    ahead of the owner's cursor: the owner never writes past its new end, so no byte is written twice.
    """

    def __init__(self, pieces: list[tuple[int, int]], *, margin: int, min_split: int, align: int = 1) -> None:
        self._pieces = collections.deque(pieces)
        self._active: dict[Piece, None] = {}  # in the order taken: ties go to the earliest piece
        self._lock = threading.Lock()
        self._margin, self._min_split, self._align = margin, min_split, align

    def __len__(self) -> int:
        return len(self._pieces)

    def take(self) -> Piece | None:
        with self._lock:
            if self._pieces:
                piece = Piece(*self._pieces.popleft())
            else:
                busiest = max(self._active, key=lambda p: p.end - p.cursor, default=None)
                if busiest is None:
                    return None
                split = max(busiest.cursor + self._margin, (busiest.cursor + busiest.end) // 2)
                split += -split % self._align
                if busiest.end - split < self._min_split:
                    return None
                piece, busiest.end = Piece(split, busiest.end), split
            self._active[piece] = None
            return piece

    def done(self, piece: Piece) -> None:
        with self._lock:
            self._active.pop(piece, None)

    def give_back(self, piece: Piece) -> None:
        with self._lock:
            self._active.pop(piece, None)
            if piece.end > piece.cursor:
                self._pieces.appendleft((piece.cursor, piece.end))


class Transfer:
    def __init__(self, transport: Transport, remote: Remote, fd: int, folder: Path, journal: Journal,
                 options: PullOptions, task: Task, stop: Stop, event: Callable[[str], None],
                 direct_fd: int | None = None) -> None:
        self.transport, self.remote, self.fd = transport, remote, fd
        self.folder, self.journal = folder, journal
        self.direct_fd = direct_fd  # the same file opened with O_DIRECT, where the filesystem allows it
        self._pool = Pool(options.hash_window // options.buffer_size, options.buffer_size)
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
        hasher = Hasher(self.fd, algos, progress, self.options.hash_block, self.direct_fd)
        committer = threading.Thread(target=self._commit_loop, args=(progress,), daemon=True)
        if not remote.ranges or remote.size is None:
            workers = [threading.Thread(target=self._stream, args=(progress,), daemon=True)]
        else:
            missing = done.missing(remote.size)
            min_split = max(2 * self.options.buffer_size, MIN_SPLIT)
            queue = _Chunks(chunks(missing, self.options.chunk_for(remote.size)),
                            margin=self.options.buffer_size, min_split=min_split, align=SPLIT_ALIGN)
            # More connections than pieces are worth it when they can split pieces in flight.
            splittable = sum(end - start for start, end in missing) // min_split
            most = self.options.connections if self.transport.parallel else 1
            workers = [threading.Thread(target=self._worker, args=(queue, progress), daemon=True)
                       for _ in range(min(most, max(len(queue), splittable)))]
            committer.start()
        hasher.start()
        try:
            self._run_workers(workers, progress, hasher)
        finally:
            failed = self._failure is not None or self.stop.is_set()
            if failed:
                progress.abort()
            self._ended.set()
            if committer.is_alive():
                committer.join()
            # what is written is journaled, whatever happens next: after a failure here, and after
            # one in the steps that install the file (a full disk), the next pull resumes from it
            self._last_commit(progress, synced=failed and self.options.fsync)
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
        synced: list[OSError] = []
        syncer = threading.Thread(target=self._sync, args=(synced,), daemon=True)
        if self.options.fsync:
            syncer.start()
        try:
            hashes = hasher.result(size)
        finally:
            if syncer.is_alive():
                syncer.join()
        if synced:  # a full disk can show up only now (delayed allocation, network filesystems)
            raise synced[0]
        return hashes, size

    def _sync(self, errors: list[OSError]) -> None:
        try:
            fdatasync(self.fd)
        except OSError as exc:
            errors.append(exc)

    def _run_workers(self, workers: list[threading.Thread], progress: Progress, hasher: Hasher) -> None:
        """Start a few connections, and more while they leave the hasher idle; wait for them all.

        Where one connection already delivers faster than bytes can be hashed (a fast server
        nearby), more would only spend CPU that hashing needs; where the server caps each
        connection (a CDN), the hasher idles and the rest start within a few tenths of a second."""
        waiting = collections.deque(workers)
        running: list[threading.Thread] = []

        def start(count: int) -> None:
            for _ in range(min(count, len(waiting))):
                running.append(waiting.popleft())
                running[-1].start()

        start(RAMP_STEP)
        idle, tick = 0.0, None
        while alive := [w for w in running if w.is_alive()]:
            alive[0].join(RAMP_INTERVAL if waiting else 0.25)
            self._watch(hasher)
            if not waiting:
                continue
            now = time.monotonic()
            if tick is None:  # the hasher's wait while the first connections connect says nothing
                if progress.received:
                    idle, tick = progress.idle(), now
            elif now - tick >= RAMP_INTERVAL:
                if progress.idle() - idle > RAMP_IDLE * (now - tick):
                    start(RAMP_STEP)
                idle, tick = progress.idle(), now

    # -- stopping --

    def _watch(self, hasher: Hasher) -> None:
        """Stop the connections at once when the pull is stopped, or when the hasher failed (nothing
        more could be verified)."""
        if self.stop.is_set():
            self._abort()
        if hasher.error is not None:
            self._fail(hasher.error)

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
        buffer = aligned(self.options.buffer_size)
        budget = Budget(self.options, self.remote.url)
        try:
            while not self._stopped() and (piece := queue.take()) is not None:
                start = piece.cursor
                try:
                    self._copy(session, piece, buffer, progress)
                    queue.done(piece)
                except Retryable as exc:
                    queue.give_back(piece)
                    if self._stopped():
                        return
                    if piece.cursor > start:
                        budget.progressed()
                    wait = budget.wait_after(exc)
                    log.info("%s: %s; retrying bytes %d-%d in %.1f s", self.task.label, exc, piece.cursor,
                             piece.end - 1, wait)
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
            self._copy(self.transport.session(), Piece(0, None), aligned(self.options.buffer_size), progress)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits on us
            if not self.stop.is_set():
                self._fail(exc)

    def _copy(self, session: object, piece: Piece, own: memoryview, progress: Progress) -> None:
        """Read [piece.cursor, piece.end) into the file at its offset, a buffer at a time, advancing
        the cursor as buffers land. The end is read afresh for every read: another connection may
        have taken the rest (never below cursor + one buffer, so a fill in progress is never cut)."""
        # a silent server (no answer, not even headers) holds no body to abort: the wait is abandoned
        def request() -> Body:
            return self.transport.open(self.remote, session, piece.cursor, piece.requested_end)

        body = cancel.call(request, self._stopped, discard=lambda late: late.close(), what="request")
        with self._lock:
            self._bodies.add(body)
        first = piece.cursor
        try:
            ended = False
            while not ended and (piece.end is None or piece.cursor < piece.end):
                if self._stopped():
                    return
                lent = self._lend(progress, piece.cursor)
                buffer = own if lent is None else lent
                # end the fill on an aligned offset so the next one starts aligned (a buffer under
                # one alignment unit fills whole instead)
                stop = max(align_down(piece.cursor + len(buffer)),
                           piece.cursor + min(len(buffer), ALIGN))
                filled = 0
                while (want := min(stop, piece.end or stop) - piece.cursor - filled) > 0:
                    n = body.readinto(buffer[filled: filled + want])
                    if n <= 0:
                        ended = True
                        break
                    filled += n
                if filled:
                    self._write(buffer[:filled], piece.cursor)
                    progress.add(piece.cursor, piece.cursor + filled, lent, self._pool.put)
                    piece.cursor += filled
                    self.task.add(filled)
                elif lent is not None:
                    self._pool.put(lent)
            self._check_end(piece, piece.cursor - first, body.length)
        finally:
            with self._lock:
                self._bodies.discard(body)
            # A connection is reused only with its response read to the end (not cut short by a split).
            body.close(reuse=piece.cursor == piece.requested_end)

    def _check_end(self, piece: Piece, got: int, announced: int | None) -> None:
        """A body that ended short of its range, of the probed size, or of its own Content-Length
        (the only word on the size of a stream) was cut: its bytes are not the whole file."""
        size = self.remote.size
        if piece.end is not None and piece.cursor < piece.end:
            short = piece.end - piece.cursor
            raise Retryable(f"connection closed early, {short} bytes short of byte {piece.end}")
        if piece.end is None and size is not None and piece.cursor != size:
            raise Retryable(f"body ended after {piece.cursor} of {size} bytes")
        if piece.end is None and announced is not None and got != announced:
            raise Retryable(f"body ended after {got} of the {announced} bytes it announced")

    def _lend(self, progress: Progress, cursor: int) -> memoryview | None:
        """A pool buffer, whose bytes go to the hasher in memory; None: use the connection's own
        buffer, and the hasher reads those bytes back from the file.

        The connection at the hashed prefix never waits and may take the spares, so the bytes the
        hasher waits for are never read back. One ahead of it waits for a buffer while the hasher
        is busy (holding the download to the hashing speed costs nothing then: hashing finishes
        last either way), but not while the hasher idles, waiting for the prefix: a slow connection
        there must not hold up the others."""
        if progress.behind(cursor):
            return self._pool.get()
        deadline = time.monotonic() + POOL_WAIT
        while True:
            busy = progress.hashing()
            lent = self._pool.get(wait=POOL_POLL if busy else 0, spare=POOL_SPARE)
            if lent is not None or not busy or time.monotonic() >= deadline:
                return lent

    def _write(self, data: memoryview, offset: int) -> None:
        try:
            while data:
                direct = self.direct_fd is not None and offset % ALIGN == 0 and len(data) % ALIGN == 0
                n = os.pwrite(self.direct_fd if direct else self.fd, data, offset)  # type: ignore[arg-type]
                data, offset = data[n:], offset + n
        except OSError as exc:
            if exc.errno in DISK_FULL:
                resumable = self.remote.ranges and self.remote.size is not None
                raise disk_full(self.folder, resumable=resumable) from None
            raise

    # -- the journal --

    def _commit_loop(self, progress: Progress) -> None:
        """Journal what is written every commit_interval; sync the data first every sync_interval."""
        every = max(1, round(self.options.sync_interval / self.options.commit_interval))
        tick = 0
        while not self._ended.wait(self.options.commit_interval):
            tick += 1
            try:
                if self.options.fsync:
                    start_writeback(self.fd)
                self._commit(progress, synced=self.options.fsync and tick % every == 0)
            except OSError as exc:  # a full disk can stop the journal too; the connections report it
                log.warning("%s: could not update the journal: %s", self.task.label, exc)

    def _commit(self, progress: Progress, *, synced: bool) -> None:
        snapshot = progress.snapshot()
        if synced:
            fdatasync(self.fd)
        self.journal.commit(snapshot, synced=synced)

    def _last_commit(self, progress: Progress, *, synced: bool) -> None:
        try:
            self._commit(progress, synced=synced)
        except OSError as exc:  # the journal under-states what is on disk: the next pull fetches more
            log.warning("%s: could not update the journal: %s", self.task.label, exc)
