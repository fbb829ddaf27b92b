"""Page-aligned buffers for the connections, and the bounded pool they lend the hasher.

Direct I/O (O_DIRECT) writes need aligned memory, offsets and lengths; mmap'd memory is page
aligned. A connection fills a buffer from the socket, writes it, and hands it to the hasher, which
hashes it in file order and gives it back: bytes that arrive ahead of the hashed prefix wait in
memory rather than being read back from disk. The pool bounds that memory; when it runs dry a
connection uses its own buffer and the hasher reads those bytes back from the file instead.
"""

from __future__ import annotations

import mmap
import threading

ALIGN = 4096  # O_DIRECT alignment that every Linux block device accepts


def aligned(size: int) -> memoryview:
    """A page-aligned, zero-filled writable buffer of `size` bytes."""
    return memoryview(mmap.mmap(-1, size))


def align_down(value: int) -> int:
    return value - value % ALIGN


def align_up(value: int) -> int:
    return align_down(value + ALIGN - 1)


class Pool:
    """`count` buffers of `size` bytes, lent to whoever asks first."""

    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self._free: list[memoryview] = []
        if count:
            memory = aligned(count * size)  # pages are touched only when first filled
            self._free = [memory[i * size:(i + 1) * size] for i in range(count)]
        self._cond = threading.Condition()

    def get(self, wait: float = 0.0, spare: int = 0) -> memoryview | None:
        """A free buffer that leaves `spare` others free, waiting up to `wait` seconds for one;
        None if none came."""
        with self._cond:
            if wait > 0:
                self._cond.wait_for(lambda: len(self._free) > spare, wait)
            return self._free.pop() if len(self._free) > spare else None

    def put(self, buffer: memoryview) -> None:
        if len(buffer) != self.size:  # a slice given back would shrink the pool's buffers for good
            raise ValueError(f"a buffer of {len(buffer)} bytes given back to a pool of "
                             f"{self.size}-byte buffers")
        with self._cond:
            self._free.append(buffer)
            self._cond.notify()
