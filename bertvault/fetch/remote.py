"""What a probe learns about a remote file, and the ways a transfer can go wrong."""

from __future__ import annotations

from dataclasses import dataclass, field


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
