"""file:// URLs: local mirrors, air-gapped clusters, tests. Read with pread into the caller's buffer."""

from __future__ import annotations

import email.utils
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import Remote, Reprobe, Retryable, Unavailable


def path_of(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise Unavailable(f"{url!r}: file:// URLs must name a local path (file:///abs/path)")
    return Path(unquote(parts.path))


class FileBody:
    length = None  # a local file says nothing about its length but its size, which the probe read

    def __init__(self, fd: int, start: int, end: int | None) -> None:
        self._fd, self._pos, self._end = fd, start, end

    def readinto(self, buffer: memoryview) -> int:
        want = len(buffer) if self._end is None else min(len(buffer), self._end - self._pos)
        if want <= 0:
            return 0
        try:
            n = os.preadv(self._fd, [buffer[:want]], self._pos)
        except OSError as exc:
            raise Retryable(f"read failed: {exc}") from exc
        self._pos += n
        return n

    def close(self, *, reuse: bool = False) -> None:
        os.close(self._fd)

    def abort(self) -> None:
        self._end = self._pos  # local reads never block for long; the next readinto returns 0


class FileTransport:
    parallel = False

    def __init__(self, options: PullOptions) -> None:
        self.options = options

    def session(self) -> None:
        return None

    def probe(self, url: str, session: None) -> Remote:
        path = path_of(url)
        try:
            st = path.stat()
        except OSError as exc:
            raise Unavailable(f"{path}: {exc.strerror}") from exc
        if not path.is_file():
            raise Unavailable(f"{path} is not a regular file")
        stamp = f"{st.st_mtime_ns:x}-{st.st_size:x}"
        return Remote(url=url, get_url=str(path), size=st.st_size, ranges=True, etag=stamp,
                      last_modified=email.utils.formatdate(st.st_mtime, usegmt=True), if_range=stamp)

    def open(self, remote: Remote, session: None, start: int, end: int | None) -> FileBody:
        try:
            fd = os.open(remote.get_url, os.O_RDONLY)
        except OSError as exc:
            raise Unavailable(f"{remote.get_url}: {exc.strerror}") from exc
        st = os.fstat(fd)
        if f"{st.st_mtime_ns:x}-{st.st_size:x}" != remote.if_range:
            os.close(fd)
            raise Reprobe(f"{remote.get_url} changed while being read")
        return FileBody(fd, start, end)
