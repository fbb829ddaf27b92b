"""What a failed request means, in one short line.

Errors no retry can fix fail their mirror at once: a host name that does not resolve, a TLS
failure, a malformed URL. A refused connection is tried a few times only (a server restarting
refuses for a moment; one that is down refuses for good). Resets and timeouts are retried with the
usual budget (see retry.py). Works on the exceptions of requests/urllib3 and of the httpx stack
under huggingface_hub alike, by looking through what each one wraps.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from bertvault.fetch.remote import Retryable, TransferError, Unavailable

REFUSED_ATTEMPTS = 3  # tries of a refused connection before its mirror is given up
_MESSAGE_CHARS = 200


def short(exc: BaseException) -> str:
    """`Type: first line of the message`, at most a couple of hundred characters."""
    text = (str(exc).strip().splitlines() or [""])[0]
    text = f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps: causes, contexts, urllib3's `reason`, exceptions in args."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]


def _named(exc: BaseException, *names: str) -> bool:
    """True when the class or a base is one of `names` (the httpx and urllib3 URL errors, without
    importing either)."""
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def _where(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return url


_URL_ERRORS = ("InvalidURL", "InvalidSchema", "MissingSchema", "URLRequired", "LocationParseError",
               "LocationValueError", "UnsupportedProtocol")


def classify(exc: BaseException, url: str, stall: float) -> TransferError:
    """The TransferError for a request to `url` that raised `exc`."""
    chain = list(causes(exc))
    if any(isinstance(e, socket.gaierror) or _named(e, "NameResolutionError") for e in chain):
        host = urlsplit(url).hostname
        return Unavailable(f"cannot resolve the host name ({host}); no network, or a wrong URL")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Retryable(f"connection refused by {_where(url)}", attempts=REFUSED_ATTEMPTS)
    if any(isinstance(e, ssl.SSLError) or _named(e, "SSLError") for e in chain):
        return Unavailable(f"TLS error with {_where(url)}: {short(exc)}")
    if any(_named(e, *_URL_ERRORS) for e in chain):
        return Unavailable(f"malformed or unsupported URL: {short(exc)}")
    if any(isinstance(e, TimeoutError) or _named(e, "Timeout", "TimeoutException") for e in chain):
        return Retryable(f"stalled: no data for {stall:g} s")
    return Retryable(f"connection failed: {short(exc)}")
