"""What a probe learns about a remote file, and the ways a transfer can go wrong."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bertvault.errors import DownloadError
from bertvault.io.space import is_full, lacking, no_space


@dataclass
class Remote:
    url: str                       # as written in the manifest
    get_url: str                   # where the bytes are read from (after redirects, with pins)
    size: int | None
    ranges: bool                   # byte ranges may be asked for
    etag: str | None = None
    last_modified: str | None = None
    version: str | None = None     # GCS generation, Hub commit: pinned in get_url where possible
    if_range: str | None = None    # validator sent with ranged requests
    headers: dict[str, str] = field(default_factory=dict)  # credentials only for get_url's own host
    digests: dict[str, tuple[str, str]] = field(default_factory=dict)  # algo -> (hex, where from)
    info: dict[str, str] = field(default_factory=dict)
    # Response headers every answer for the bytes must repeat (ETag, Last-Modified): a store that
    # ignores If-Range would otherwise splice two versions of a file replaced mid-download.
    validators: dict[str, str] = field(default_factory=dict)


class TransferError(Exception):
    """A transfer failed; the subclass says what to do next."""


class Retryable(TransferError):
    """Try the same request again after a wait (connection lost, stall, 5xx, 429). `attempts` caps
    the tries of an error that rarely passes (a refused connection), so its mirror fails in seconds."""

    def __init__(self, message: str, retry_after: float | None = None, attempts: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.attempts = attempts


class Reprobe(TransferError):
    """The remote is not what the probe said (changed, range ignored, URL expired): probe again and
    resume only if the validators still match. `changed`: an answer proved the file is another one."""

    def __init__(self, message: str, *, no_ranges: bool = False, changed: bool = False):
        super().__init__(message)
        self.no_ranges = no_ranges
        self.changed = changed


class Unavailable(TransferError):
    """This mirror cannot serve the file (404, 403 after a re-probe, offline): try the next one."""


class Mismatch(Unavailable):
    """This mirror serves another file than the manifest pins (its size says so): try the next one."""


class Interrupted(Exception):
    """The pull was stopped (Ctrl-C)."""


class DiskFull(DownloadError):
    """No space left while writing: the partial file is kept for a resume, nothing is installed."""


_FIX = "free some space (or point BERTVAULT_HOME at a larger disk) and pull again"


def disk_full(folder: Path, need: int | None = None, *, resumable: bool = True) -> DiskFull:
    """`resumable`: False for a server that sends the file only whole (no ranges): its partial
    download cannot be resumed, and is removed to give the space back."""
    after = ("the bytes already fetched are kept" if resumable
             else "this server sends the file only whole, so it is fetched again from the start")
    return DiskFull(f"{no_space(folder, need)}; {_FIX}: {after}")


@contextmanager
def disk_full_is_an_error(folder: Path, label: str = "") -> Iterator[None]:
    """Turn a full disk met inside the block into DiskFull (prefixed `label: `), the bytes kept."""
    try:
        yield
    except OSError as exc:
        if not is_full(exc):
            raise
        error = disk_full(folder)
        raise DiskFull([f"{label}: {p}" if label else p for p in error.problems]) from None


def ensure_free(folder: Path, need: int) -> None:
    """Refuse before any byte is fetched when the file cannot fit."""
    short = lacking(folder, need)
    if short is not None:
        raise DiskFull(f"not enough free space: {need} more bytes needed, {need - short} free in {folder}; "
                       f"{_FIX}")
