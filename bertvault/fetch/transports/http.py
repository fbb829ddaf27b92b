"""HTTP(S): a requests Session per connection (keep-alive), raw bytes straight from the socket.

Every request asks for `Accept-Encoding: identity` and is never decoded: a body encoded anyway is
refused (its bytes are not the file's), unless the file is itself stored compressed that way (a
`.gz` labelled gzip). Every answer for the bytes must repeat the validators of the probe (ETag,
Last-Modified), whatever the server does with If-Range, and say the length it then sends.
Redirects are followed only to well-formed HTTP(S) URLs, never from HTTPS down to HTTP.
Credentials go only to the host they were given for: requests drops Authorization on a cross-host
redirect, and ranged reads of a redirected file carry no credentials unless they go back to the
original host.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import socket
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from urllib3.util.retry import Retry

from bertvault import __version__
from bertvault.fetch import digests
from bertvault.fetch.neterrors import classify
from bertvault.fetch.options import PullOptions
from bertvault.fetch.remote import Remote, Reprobe, Retryable, Unavailable

log = logging.getLogger(__name__)

USER_AGENT = f"bertvault/{__version__}"
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# requests' exceptions are OSErrors; a malformed URL met on the way (a redirect) is a ValueError
_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException,
                   OSError, ValueError)
_VALIDATORS = ("ETag", "Last-Modified")
# A body labelled with its own file's compression is that file, stored compressed (Apache's
# `AddEncoding x-gzip .gz`); any other encoding is the server compressing on the fly.
_STORED_ENCODED = {"gzip": (".gz", ".tgz"), "x-gzip": (".gz", ".tgz"), "br": (".br",), "zstd": (".zst",),
                   "compress": (".z",), "x-compress": (".z",)}


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return Retry().parse_retry_after(value)
    except urllib3.exceptions.InvalidHeader:
        return None


def status_error(response: requests.Response, what: str) -> Exception:
    """The TransferError for an unusable status code."""
    code = response.status_code
    text = f"HTTP {code} {response.reason or ''}".strip() + f" for {what}"
    if code in RETRY_STATUS or code >= 500:
        return Retryable(text, retry_after(response))
    if code == 416:
        return Reprobe(f"{text}: the file is no longer as long as the probe said")
    if code in (401, 403):
        return Reprobe(f"{text}: access denied (a signed URL may have expired, or credentials are needed)")
    return Unavailable(text)


def redirect_problem(source: str, location: str) -> str | None:
    """Why a redirect from `source` to `location` must not be followed, or None."""
    shown = location if len(location) <= 200 else location[:197] + "..."
    try:
        parts = urlsplit(urljoin(source, location))
        parts.port  # noqa: B018 - a port that is not a number, or out of range, raises here
    except ValueError as exc:
        return f"the server redirects to a malformed URL {shown!r} ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"the server redirects to {shown!r}, which is not an HTTP(S) URL with a host"
    if urlsplit(source).scheme == "https" and parts.scheme == "http":
        return (f"the server redirects from HTTPS to plain HTTP ({shown}): refused, the bytes could be "
                f"altered on the way")
    return None


def validator_change(headers: Mapping[str, str], expected: dict[str, str]) -> str | None:
    """How an answer's validators differ from the probe's, or None."""
    for name, value in expected.items():
        got = headers.get(name)
        if got != value:
            return f"{name} {value} → {got or '(none)'}"
    return None


def encoding_problem(headers: Mapping[str, str], *urls: str) -> str | None:
    encoding = headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if any(urlsplit(u).path.lower().endswith(_STORED_ENCODED.get(encoding, ())) for u in urls):
        return None
    return (f"the server sent the body with Content-Encoding: {encoding} though identity was asked for: "
            f"those bytes are not the file")


def content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


class _Session(requests.Session):
    """A Session that follows a redirect only where `redirect_problem` sees none."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        location = super().get_redirect_target(resp)
        if location is not None:
            problem = redirect_problem(resp.url, location)
            if problem is not None:
                resp.close()
                raise Unavailable(problem)
        return location


class HttpBody:
    """A response body read with readinto, straight into the caller's buffer."""

    def __init__(self, response: requests.Response, stall: float) -> None:
        self._response = response
        self._stall = stall
        self.url = response.url
        self.length = content_length(response.headers)  # what the answer says it sends
        # http.client's readinto reads from the socket into our buffer with no intermediate copy;
        # urllib3's own readinto reads into a new bytes object first.
        self._fp = getattr(response.raw, "_fp", None)

    def readinto(self, buffer: memoryview) -> int:
        try:
            if self._fp is not None and hasattr(self._fp, "readinto"):
                return self._fp.readinto(buffer) or 0
            data = self._response.raw.read(len(buffer), decode_content=False)
            buffer[: len(data)] = data
            return len(data)
        except _NETWORK_ERRORS as exc:
            raise classify(exc, self.url, self._stall) from exc

    def close(self, *, reuse: bool = False) -> None:
        if reuse:
            self._response.raw.release_conn()
        else:
            self._response.close()

    def abort(self) -> None:
        # close() alone does not wake a thread blocked in recv on Linux; shutdown() does.
        sock = getattr(getattr(self._response.raw, "_connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)) + 1, total


class HttpTransport:
    parallel = True

    def __init__(self, options: PullOptions) -> None:
        self.options = options

    @property
    def timeout(self) -> tuple[float, float]:
        return self.options.connect_timeout, self.options.stall_timeout

    def session(self) -> requests.Session:
        session = _Session()
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        return session

    def auth_headers(self, url: str) -> dict[str, str]:
        """Credentials for this URL's host (none for plain HTTP(S); subclasses add theirs)."""
        return {}

    def _request(self, session: requests.Session, method: str, url: str, headers: dict, what: str
                 ) -> requests.Response:
        try:
            return session.request(method, url, headers=headers, stream=method != "HEAD",
                                   timeout=self.timeout, allow_redirects=True)
        except requests.TooManyRedirects as exc:
            raise Unavailable(f"too many redirects for {what}") from exc
        except _NETWORK_ERRORS as exc:
            raise classify(exc, url, self.options.stall_timeout) from exc

    def probe(self, url: str, session: requests.Session) -> Remote:
        """HEAD the URL (a one-byte ranged GET where HEAD is refused) and read size, range support,
        validators and every digest header."""
        headers = self.auth_headers(url)
        response = self._request(session, "HEAD", url, headers, url)
        partial = False
        if response.status_code in (400, 403, 405, 501):  # some signed URLs allow GET only
            response.close()
            response = self._request(session, "GET", url, {**headers, "Range": "bytes=0-0"}, url)
            partial = response.status_code == 206
        with response:
            if response.status_code not in (200, 206):
                raise status_error(response, url)
            return self.remote_from(url, response, headers, partial)

    def remote_from(self, url: str, response: requests.Response, headers: dict, partial: bool) -> Remote:
        h = response.headers
        if partial:
            parsed = parse_content_range(h.get("Content-Range"))
            size = parsed[2] if parsed else None
            ranges = size is not None
        else:
            size = int(h["Content-Length"]) if h.get("Content-Length", "").isdigit() else None
            ranges = "bytes" in h.get("Accept-Ranges", "").lower() and size is not None
        final = response.url or url
        etag = h.get("ETag")
        last_modified = h.get("Last-Modified")
        strong_etag = etag if etag and not etag.startswith("W/") else None
        return Remote(
            url=url, get_url=final, size=size, ranges=ranges, etag=etag, last_modified=last_modified,
            if_range=strong_etag or last_modified,
            headers=headers if origin(final) == origin(url) else {},
            digests=digests.from_headers(h, partial=partial),
            validators={name: h[name] for name in _VALIDATORS if h.get(name)},
        )

    def open(self, remote: Remote, session: requests.Session, start: int, end: int | None) -> HttpBody:
        """GET [start, end) (the whole file when end is None) and check the answer is exactly that."""
        headers = {**remote.headers, **self.auth_headers(remote.get_url)}  # fresh: tokens expire
        ranged = end is not None
        if ranged:
            headers["Range"] = f"bytes={start}-{end - 1}"
            if remote.if_range:
                headers["If-Range"] = remote.if_range
        what = f"{remote.url} bytes {start}-{end - 1}" if ranged else remote.url
        response = self._request(session, "GET", remote.get_url, headers, what)
        try:
            self._check(response, remote, start, end)
        except BaseException:
            response.close()
            raise
        return HttpBody(response, self.options.stall_timeout)

    def _check(self, response: requests.Response, remote: Remote, start: int, end: int | None) -> None:
        code = response.status_code
        if code not in (200, 206):
            raise status_error(response, remote.url)
        changed = validator_change(response.headers, remote.validators)
        if changed is not None:
            raise Reprobe(f"the file changed during the download ({changed})", changed=True)
        problem = encoding_problem(response.headers, remote.url, remote.get_url)
        if problem is not None:
            raise Unavailable(problem)
        if code == 206:
            if end is None:  # a range we did not ask for
                raise Reprobe("server answered 206 to a request for the whole file")
            self._check_range(response, remote, start, end)
        elif end is not None:
            raise Reprobe("server answered a range request with the whole file (200)", no_ranges=True)
        else:
            length = content_length(response.headers)
            if remote.size is not None and length is not None and length != remote.size:
                raise Reprobe(f"the file is now {length} bytes; the probe said {remote.size}")

    @staticmethod
    def _check_range(response: requests.Response, remote: Remote, start: int, end: int) -> None:
        """The range answered is the one asked for (or its start: the engine asks again for the
        rest), of a file of the probed size, and the Content-Length agrees with it."""
        header = response.headers.get("Content-Range")
        got = parse_content_range(header)
        if got is None or got[0] != start or got[1] > end or (got[2] is not None and got[2] != remote.size):
            raise Reprobe(f"asked for bytes {start}-{end - 1} of {remote.size}, got Content-Range {header!r}")
        length = content_length(response.headers)
        if length is not None and length != got[1] - got[0]:
            raise Unavailable(f"the server's Content-Length {length} disagrees with its Content-Range "
                              f"{header!r}")
