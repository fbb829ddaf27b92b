"""The hashers bertvault knows, and hashing a whole file once with several of them at the same time."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def _crc32c():
    """crc32c's hasher (hashlib's interface), imported only when a file is checked against one."""
    import crc32c

    return crc32c.CRC32CHash()


HASHERS: dict[str, Callable[[], object]] = {
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "crc32c": _crc32c,
}


def update_all(hashers: list, data: memoryview, pool: ThreadPoolExecutor | None) -> None:
    """Feed `data` to every hasher: the first on this thread, the others on `pool` at the same time
    (hashlib releases the GIL, so a server's md5 costs no time beside our sha256)."""
    first, *others = hashers
    waiting = [pool.submit(h.update, data) for h in others] if pool is not None else []
    first.update(data)
    for future in waiting:
        future.result()


class Stopped(Exception):
    """hash_file was asked to stop (its result is no longer wanted)."""


def hash_file(path: os.PathLike, algos: set[str], block: int = 8 << 20,
              stop: threading.Event | None = None) -> dict[str, str]:
    """Hash a whole file with each algorithm, reading it once; with several, each block is hashed
    by all of them at the same time (update_all). Setting `stop` (from another thread) ends the
    reading with Stopped, whatever the number of algorithms."""
    hashers = {algo: HASHERS[algo]() for algo in algos}
    buffer = memoryview(bytearray(block))
    pool = ThreadPoolExecutor(len(hashers) - 1) if len(hashers) > 1 else None
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                if stop is not None and stop.is_set():
                    raise Stopped(str(path))
                update_all(list(hashers.values()), buffer[:n], pool)
    finally:
        if pool is not None:
            pool.shutdown()
    return {algo: h.hexdigest() for algo, h in hashers.items()}
