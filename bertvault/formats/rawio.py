"""Raw tensor bytes in files: read in place, written at planned offsets on both cores.

Reading maps each tensor's byte range copy-on-write (MAP_PRIVATE) and views it as a numpy array:
no copy is made until someone writes to the array, the page cache serves the bytes, and the mapping
goes away with the last view of it, so a conversion holds only the tensors it is working on.

Writing knows every tensor's offset before any is read (the formats put a header or directory of
offsets first), so worker threads produce the next tensors (read, transpose, cast, CRC) while the
calling thread `os.pwrite`s the current one into place: numpy copies, zlib's CRC and file writes
all release the GIL, so both cores work. A few tensors are in memory at once, never the model.
A tensor that a conversion only renames is copied file to file by the kernel (copy_file_range),
as `cp` copies, without being mapped or copied through this process.
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertvault.errors import ConversionError
from bertvault.io import space

try:  # zlib-ng's CRC-32 uses the CPU's carry-less multiply: ~20 GB/s against zlib's ~3
    from zlib_ng.zlib_ng import crc32
except ImportError:  # pragma: no cover - the same values, slower
    from zlib import crc32

WORKERS = min(2, os.cpu_count() or 1)
AHEAD_BYTES = 64 << 20  # produced and not yet written, at most (plus the tensor that crosses it)


def map_array(fd: int, offset: int, dtype: np.dtype, shape: tuple[int, ...], *, what: str) -> np.ndarray:
    """The `shape`/`dtype` tensor stored at `offset` of the open file `fd`, without reading it into
    memory of its own. Writable (copy-on-write): writes never reach the file."""
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    if nbytes == 0:
        return np.empty(shape, dtype=dtype)
    if os.fstat(fd).st_size < offset + nbytes:  # a mapping past the end would kill the process on access
        raise ConversionError(f"{what} is truncated: it ends before the {nbytes} bytes at offset {offset}")
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    region = mmap.mmap(fd, offset + nbytes - start, flags=mmap.MAP_PRIVATE,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=start)
    return np.frombuffer(region, dtype=dtype, count=count, offset=offset - start).reshape(shape)


class MappedFile:
    """A file whose tensors are mapped on demand; opened at the first one, by any thread."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def array(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            fd = self._fd
        return map_array(fd, offset, dtype, shape, what=str(self.path))

    def close(self) -> None:  # arrays already mapped stay valid
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def preallocate(fd: int, size: int, path: Path) -> None:
    """Reserve the output's blocks before writing it (io.space.preallocate, as a download does):
    a full disk is then one clear error before any work, and the kernel copies into blocks
    allocated in one go (a quarter faster on ext4 than filling a sparse file)."""
    try:
        space.preallocate(fd, size)
    except OSError as exc:
        if not space.is_full(exc):
            raise
        free = shutil.disk_usage(path.parent).free
        raise ConversionError(f"not enough space for {path.name}: {size} bytes needed, {free} free in "
                              f"{path.parent}; free some space or write elsewhere with --out") from None


def pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(f"pwrite wrote nothing at offset {offset}")
        view, offset = view[written:], offset + written


def bytes_of(array: np.ndarray) -> memoryview:
    """The array's bytes in C order (copied only if it is not contiguous already)."""
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


@dataclass(frozen=True)
class Placed:
    """One tensor's bytes and where they go in the output file."""

    offset: int
    nbytes: int
    produce: Callable[[], np.ndarray]  # its values (read, transposed, cast, ...)
    region: tuple[Path, int] | None = None  # (file, offset): the same bytes, as they lie in an input file


_BUFFER = 4 << 20
_local = threading.local()


def _buffer() -> memoryview:
    if not hasattr(_local, "buffer"):
        _local.buffer = memoryview(bytearray(_BUFFER))
    return _local.buffer


def _chunks(src: int, offset: int, nbytes: int, what: str):
    """The bytes at `offset` of `src`, a reused buffer's worth at a time."""
    buffer, done = _buffer(), 0
    while done < nbytes:
        count = os.preadv(src, [buffer[:min(_BUFFER, nbytes - done)]], offset + done)
        if count <= 0:
            raise ConversionError(
                f"{what} is truncated: it ends inside the {nbytes} bytes at offset {offset}"
            )
        yield buffer[:count]
        done += count


def _copy(src: int, offset: int, fd: int, to: int, nbytes: int, what: str) -> None:
    """File to file in the kernel (copy_file_range, as cp does), or through a small buffer where
    the kernel cannot (another filesystem on old kernels, some network filesystems)."""
    done = 0
    try:
        while done < nbytes:
            count = os.copy_file_range(src, fd, nbytes - done, offset + done, to + done)
            if count <= 0:
                raise ConversionError(
                    f"{what} is truncated: it ends inside the {nbytes} bytes at offset {offset}"
                )
            done += count
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
            raise
    for piece in _chunks(src, offset + done, nbytes - done, what):
        pwrite_all(fd, piece, to + done)
        done += len(piece)


def write_placed(fd: int, jobs: Sequence[Placed], *, want_crc: bool = False,
                 workers: int = WORKERS) -> list[int]:
    """Write each job's bytes at its offset; with `want_crc`, return each one's zlib CRC-32 (what a
    zip entry records).

    Worker threads produce (read, transpose, cast, CRC) up to AHEAD_BYTES ahead (at least
    `workers` + 1 tensors); this thread writes them, in file order. One writer, because a
    filesystem serialises buffered writes to one file anyway (ext4 holds the inode lock), and
    spinning on that lock only burns CPU. A job whose bytes lie unchanged in an input file is
    copied file to file, never produced, while a worker computes its CRC over a mapping of the
    input."""
    output = _Output(fd, want_crc)
    try:
        if workers > 1:
            return _write_ahead(output, jobs, workers)
        return _write_in_turn(output, jobs)
    finally:
        output.close()


class _Output:
    """The file being written, and the input files that jobs are copied from (each opened once, by
    whichever thread needs it first)."""

    def __init__(self, fd: int, want_crc: bool):
        self.fd = fd
        self.want_crc = want_crc
        self._sources: dict[Path, int] = {}
        self._lock = threading.Lock()

    def source(self, path: Path) -> int:
        with self._lock:
            if path not in self._sources:
                self._sources[path] = os.open(path, os.O_RDONLY)
            return self._sources[path]

    def prepare(self, job: Placed) -> tuple[memoryview | None, int]:
        """The job's bytes (None for a copy) and their CRC (0 unless wanted)."""
        if job.region is not None:
            path, offset = job.region
            if not self.want_crc:
                return None, 0
            # mapped, not read: the CRC runs over the page cache itself, with no copy
            mapped = map_array(self.source(path), offset, np.dtype(np.uint8), (job.nbytes,), what=str(path))
            return None, crc32(memoryview(mapped))
        raw = bytes_of(job.produce())
        if len(raw) != job.nbytes:
            raise ConversionError(f"a tensor produced {len(raw)} bytes where {job.nbytes} were planned")
        return raw, (crc32(raw) if self.want_crc else 0)

    def write(self, job: Placed, raw: memoryview | None) -> None:
        if raw is None:
            path, offset = job.region  # type: ignore[misc]
            _copy(self.source(path), offset, self.fd, job.offset, job.nbytes, str(path))
        else:
            pwrite_all(self.fd, raw, job.offset)

    def close(self) -> None:
        for opened in self._sources.values():
            os.close(opened)


def _write_in_turn(output: _Output, jobs: Sequence[Placed]) -> list[int]:
    """One thread produces and writes each job in turn."""
    crcs = []
    for job in jobs:
        raw, crc = output.prepare(job)
        output.write(job, raw)
        crcs.append(crc)
        del raw
    return crcs


def _write_ahead(output: _Output, jobs: Sequence[Placed], workers: int) -> list[int]:
    """`workers` threads produce the jobs ahead of this one, which writes them in file order."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bertvault-produce")
    pending: deque[Future] = deque()
    crcs: list[int | Future] = []
    submitted, ahead = 0, 0  # jobs handed to the workers; bytes of those not yet written
    try:
        for k, job in enumerate(jobs):
            # ahead by bytes, not by count: a window of a few jobs fills with biases and
            # LayerNorms, and a worker would idle beside the next big kernel
            while submitted < len(jobs) and (submitted - k <= workers or ahead < AHEAD_BYTES):
                pending.append(pool.submit(output.prepare, jobs[submitted]))
                ahead += jobs[submitted].nbytes
                submitted += 1
            ahead -= job.nbytes
            if job.region is not None:  # a copy needs nothing produced: it runs while its CRC does
                crcs.append(pending.popleft())
                output.write(job, None)
                continue
            raw, crc = pending.popleft().result()
            output.write(job, raw)
            crcs.append(crc)
            del raw
        return [crc if isinstance(crc, int) else crc.result()[1] for crc in crcs]
    finally:  # on an error or an interrupt, drop the jobs not started; running ones finish
        pool.shutdown(wait=True, cancel_futures=True)
