"""The domain exceptions. The CLI maps each to one line on stderr and its exit code.

Messages say what failed, expected vs got, and how to fix it. Code that validates several things
collects every problem first and raises once (`raise_if`).
"""

from __future__ import annotations

from collections.abc import Iterable


class BertvaultError(Exception):
    """Base of every error bertvault reports to a user (never a traceback)."""

    exit_code = 1

    def __init__(self, message: str | Iterable[str]):
        problems = [message] if isinstance(message, str) else list(message)
        self.problems = problems
        super().__init__("; ".join(problems))


class ManifestError(BertvaultError):
    """A manifest is malformed, or a name is unknown or ambiguous."""

    exit_code = 2


class UsageError(BertvaultError):
    """The command line asks for something that cannot be done as given (a bad option value)."""

    exit_code = 2


class DownloadError(BertvaultError):
    """A file could not be fetched from any of its mirrors."""

    exit_code = 3


class ChecksumMismatch(DownloadError):
    """Bytes on disk or on the wire do not match a known digest."""

    exit_code = 4


class ConversionError(BertvaultError):
    """A checkpoint cannot be converted without guessing or losing something."""

    exit_code = 5


class UnsafeInput(BertvaultError):
    """Input that would run code or escape its folder (a pickle with a reduce, a `..` in a zip)."""

    exit_code = 6


class DataError(BertvaultError):
    """Training or pretraining data that cannot be read or used as asked."""

    exit_code = 7


class TrainingError(BertvaultError):
    """A training or finetuning run cannot start or continue as configured."""

    exit_code = 8


class UploadError(BertvaultError):
    """A push to a bucket or the Hub did not complete (what was uploaded is resumed next time)."""

    exit_code = 9


def raise_if(problems: list[str], error: type[BertvaultError] = ManifestError) -> None:
    """Raise `error` once with every collected problem, or do nothing if there are none."""
    if problems:
        raise error(problems)
