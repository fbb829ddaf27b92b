"""Hashing while downloading, in file order, without reading the file back where possible.

Connections hand each buffer they have written to the hasher (Progress.add). Bytes at the hashed
prefix are hashed from that buffer; bytes that arrived ahead of it wait in their buffer (a bounded
pool, see buffers.py). Only bytes written without a lent buffer are read back from the file: with
direct I/O from the disk, otherwise from the page cache where they were just written. hashlib
releases the GIL on large buffers, so hashing runs on another core while the connections receive.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bertvault.fetch.buffers import ALIGN, align_down, align_up, aligned
from bertvault.io.hashing import HASHERS, update_all
from bertvault.io.ranges import RangeSet


class Progress:
    """Ranges written so far, the buffers still holding some of them, and a condition to wait on."""

    def __init__(self, done: RangeSet) -> None:
        self.written = done
        # offset → (bytes, release their buffer)
        self.held: dict[int, tuple[memoryview, Callable[[], None]]] = {}
        self.cond = threading.Condition()
        self.finished = False   # every byte is written (size may then be known only now)
        self.aborted = False
        self.size: int | None = None
        self.hashed = 0  # bytes the hasher has hashed, in order; only the hasher writes it
        self.received = 0  # bytes added in this attempt
        self._idle = 0.0  # seconds the hasher has waited for bytes to hash: the download is the bottleneck
        self._waiting_since: float | None = None

    def add(self, start: int, end: int, held: memoryview | None = None,
            give_back: Callable[[memoryview], None] | None = None) -> None:
        """[start, end) is written; `held` (if given) holds those bytes until the hasher gives it back."""
        with self.cond:
            self.written.add(start, end)
            self.received += end - start
            if held is not None and give_back is not None:
                # the whole buffer goes back, not the slice holding these bytes
                self.held[start] = (held[: end - start], lambda: give_back(held))
            self.cond.notify_all()

    def behind(self, cursor: int) -> bool:
        """True when every byte before `cursor` is written: the hasher waits for this connection."""
        with self.cond:
            return self.written.prefix() >= cursor

    def hashing(self) -> bool:
        """True while written bytes wait to be hashed (the hasher is busy, not waiting for bytes)."""
        with self.cond:
            return self.written.prefix() > self.hashed

    def idle(self) -> float:
        """Seconds the hasher has spent waiting for bytes so far, a wait in progress included."""
        with self.cond:
            since = self._waiting_since
            return self._idle + (time.monotonic() - since if since is not None else 0.0)

    def wait_for_bytes(self) -> None:
        """The hasher's wait (called with `cond` held), timed."""
        self._waiting_since = started = time.monotonic()
        try:
            self.cond.wait()
        finally:
            self._waiting_since = None
            self._idle += time.monotonic() - started

    def finish(self, size: int) -> None:
        with self.cond:
            self.finished, self.size = True, size
            self.cond.notify_all()

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()

    def snapshot(self) -> RangeSet:
        with self.cond:
            return self.written.copy()


class Hasher(threading.Thread):
    """Hash the file with every algorithm in `algos`, in order, as its prefix is written."""

    def __init__(self, fd: int, algos: set[str], progress: Progress, block: int,
                 direct_fd: int | None = None) -> None:
        super().__init__(name="hasher", daemon=True)
        self.fd, self.direct_fd, self.progress, self.block = fd, direct_fd, progress, block
        self.hashers = {algo: HASHERS[algo]() for algo in sorted(algos)}
        self.error: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def hashed(self) -> int:
        """Bytes hashed so far (kept in Progress, where the connections look at it)."""
        return self.progress.hashed

    def run(self) -> None:
        if len(self.hashers) > 1:
            self._pool = ThreadPoolExecutor(len(self.hashers) - 1, thread_name_prefix="hasher")
        try:
            self._follow()
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self.error = exc
        finally:
            if self._pool is not None:
                self._pool.shutdown()
            with self.progress.cond:  # whatever is still held goes back to its pool
                for _, release in self.progress.held.values():
                    release()
                self.progress.held.clear()

    def _next(self) -> tuple[memoryview, Callable[[], None]] | int | None:
        """A held buffer at the hashed offset, or where to stop reading the file back, or None at the end."""
        progress = self.progress
        with progress.cond:
            while True:
                if progress.aborted:
                    return None
                for offset in [o for o, (data, _) in progress.held.items() if o + len(data) <= self.hashed]:
                    progress.held.pop(offset)[1]()  # overtaken: hashed from the file already
                if self.hashed in progress.held:
                    return progress.held.pop(self.hashed)
                prefix = progress.written.prefix()
                if prefix > self.hashed:
                    ahead = [o for o in progress.held if o > self.hashed]
                    return min([prefix, self.hashed + self.block, *ahead])
                if progress.finished:
                    return None
                progress.wait_for_bytes()

    def _follow(self) -> None:
        scratch = aligned(self.block + 2 * ALIGN)  # room to widen a read to aligned ends
        while (step := self._next()) is not None:
            if isinstance(step, int):
                self._update(self._read_back(scratch, step))
            else:
                data, release = step
                try:
                    self._update(data)
                finally:
                    release()

    def _read_back(self, scratch: memoryview, stop: int) -> memoryview:
        """Bytes [hashed, stop) from the file: with direct I/O in aligned blocks around them."""
        if self.direct_fd is None:
            n = os.preadv(self.fd, [scratch[: stop - self.hashed]], self.hashed)
            if n <= 0:
                raise OSError(f"short read at byte {self.hashed} of the partial file")
            return scratch[:n]
        start = align_down(self.hashed)
        n = os.preadv(self.direct_fd, [scratch[: align_up(stop) - start]], start)
        if n <= self.hashed - start:
            raise OSError(f"short read at byte {self.hashed} of the partial file")
        return scratch[self.hashed - start: min(n, stop - start)]

    def _update(self, data: memoryview) -> None:
        update_all(list(self.hashers.values()), data, self._pool)
        self.progress.hashed += len(data)

    def result(self, size: int) -> dict[str, str]:
        self.join()
        if self.error is not None:
            raise self.error
        if self.hashed != size:
            raise OSError(f"hashing covered {self.hashed} of {size} bytes")
        return {algo: h.hexdigest() for algo, h in self.hashers.items()}
