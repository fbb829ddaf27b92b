"""Transports: how bytes are read for each URL scheme. Every transport probes a URL into a `Remote`
and opens byte ranges of it as a `Body` (readinto + close); the engine does the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import Remote


class Body(Protocol):
    length: int | None  # the bytes the answer says it carries (its Content-Length), where it says

    def readinto(self, buffer: memoryview) -> int: ...

    def close(self, *, reuse: bool = False) -> None: ...

    def abort(self) -> None:
        """Called from another thread: make a blocked readinto return or raise at once."""


class Transport(Protocol):
    parallel: bool  # several connections help

    def session(self) -> object: ...

    def probe(self, url: str, session: object) -> Remote: ...

    def open(self, remote: Remote, session: object, start: int, end: int | None) -> Body: ...


def _http(options: PullOptions) -> Transport:
    from bertvault.fetch.transports.http import HttpTransport

    return HttpTransport(options)


def _gcs(options: PullOptions) -> Transport:
    from bertvault.fetch.transports.gcs import GcsTransport

    return GcsTransport(options)


def _hub(options: PullOptions) -> Transport:
    from bertvault.fetch.transports.hub import HubTransport

    return HubTransport(options)


def _file(options: PullOptions) -> Transport:
    from bertvault.fetch.transports.local import FileTransport

    return FileTransport(options)


TRANSPORTS: dict[str, Callable[[PullOptions], Transport]] = {
    "https": _http,
    "http": _http,
    "gs": _gcs,
    "hf": _hub,
    "file": _file,
}


def scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def for_url(url: str, options: PullOptions) -> Transport:
    try:
        return TRANSPORTS[scheme(url)](options)
    except KeyError:
        raise ValueError(f"no transport for {url!r}; supported schemes: {', '.join(TRANSPORTS)}") from None


def is_network(url: str) -> bool:
    return scheme(url) != "file"
