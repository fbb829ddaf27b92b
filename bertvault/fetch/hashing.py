"""Hashing while downloading: one thread per algorithm follows the contiguous prefix of the partial
file as the connections fill it, reading the fresh bytes back from the page cache (they were just
written, so this costs a memory copy, not a disk read). hashlib releases the GIL on large buffers,
so hashing runs on another core while the connections receive.
"""

from __future__ import annotations

import os
import threading

from bertvault.fetch.digests import HASHERS
from bertvault.fetch.ranges import RangeSet


class Progress:
    """Ranges written so far, with a condition the hashers wait on."""

    def __init__(self, done: RangeSet) -> None:
        self.written = done
        self.cond = threading.Condition()
        self.finished = False   # every byte is written (size may then be known only now)
        self.aborted = False
        self.size: int | None = None

    def add(self, start: int, end: int) -> None:
        with self.cond:
            self.written.add(start, end)
            self.cond.notify_all()

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

    def wait_beyond(self, pos: int) -> int | None:
        """The end of the contiguous prefix once it passes `pos`; None when aborted or at the end."""
        with self.cond:
            while True:
                if self.aborted:
                    return None
                prefix = self.written.prefix()
                if prefix > pos:
                    return prefix
                if self.finished:
                    return None
                self.cond.wait()


class Follower(threading.Thread):
    """Hash [0, end) of `fd` with `algo` as the prefix grows."""

    def __init__(self, fd: int, algo: str, progress: Progress, block: int) -> None:
        super().__init__(name=f"hash-{algo}", daemon=True)
        self.fd, self.algo, self.progress, self.block = fd, algo, progress, block
        self.hasher = HASHERS[algo]()
        self.hashed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        buffer = bytearray(self.block)
        view = memoryview(buffer)
        try:
            while (end := self.progress.wait_beyond(self.hashed)) is not None:
                while self.hashed < end:
                    n = os.preadv(self.fd, [view[: min(self.block, end - self.hashed)]], self.hashed)
                    if n <= 0:
                        raise OSError(f"short read at byte {self.hashed} of the partial file")
                    self.hasher.update(view[:n])
                    self.hashed += n
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, size: int) -> str:
        self.join()
        if self.error is not None:
            raise self.error
        if self.hashed != size:
            raise OSError(f"{self.algo} covered {self.hashed} of {size} bytes")
        return self.hasher.hexdigest()


class Stopped(Exception):
    """hash_file was asked to stop (its result is no longer wanted)."""


def hash_file(path: os.PathLike, algos: set[str], block: int = 8 << 20,
              stop: threading.Event | None = None) -> dict[str, str]:
    """Hash a whole file with each algorithm, reading it once. With several algorithms each block
    is hashed by one thread per algorithm at the same time (hashlib releases the GIL). Setting
    `stop` (from another thread) ends the reading with Stopped."""
    hashers = {algo: HASHERS[algo]() for algo in algos}
    buffer = memoryview(bytearray(block))
    with open(path, "rb", buffering=0) as f:
        if len(hashers) == 1:
            (hasher,) = hashers.values()
            while n := f.readinto(buffer):
                if stop is not None and stop.is_set():
                    raise Stopped(str(path))
                hasher.update(buffer[:n])
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(hashers)) as pool:
                while n := f.readinto(buffer):
                    list(pool.map(lambda h, block=buffer[:n]: h.update(block), hashers.values()))
    return {algo: h.hexdigest() for algo, h in hashers.items()}
