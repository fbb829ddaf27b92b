"""Uploads to gs://bucket/prefix with Cloud Storage resumable uploads, verified after upload.

Each file goes up in chunks (multiples of 256 KiB) to one upload session. The session URI and the
bytes the server acknowledged are kept in a small journal under the cache, so an interrupted push
sends only the rest. When the last chunk lands, the object's
md5Hash and crc32c, as the server computed them, must equal what was read locally.
A file already present with the same md5 and crc32c is skipped.

STORAGE_EMULATOR_HOST points at an emulator (fake-gcs-server), as Google's libraries do;
Credentials are google-auth's Application Default Credentials, or GOOGLE_OAUTH_ACCESS_TOKEN
(gcs_auth.py): the same for every gs:// request, read or write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

import requests

from bertvault.cache import layout
from bertvault.errors import UploadError
from bertvault.fetch import gcs_auth
from bertvault.fetch.digests import _b64_hex
from bertvault.fetch.transports.gcs import endpoint
from bertvault.io.hashing import HASHERS

log = logging.getLogger(__name__)

CHUNK = 8 << 20  # a multiple of 256 KiB, as the protocol requires for every chunk but the last
ATTEMPTS = 5


def split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path.strip("/")


class _Session(requests.Session):
    """Every request to the Cloud Storage endpoint carries fresh credentials (gcs_auth.py)."""

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        try:
            credentials = gcs_auth.headers(url)
        except gcs_auth.CredentialsProblem as exc:
            raise UploadError(f"gs:// credentials: {exc}") from None
        kwargs["headers"] = {**(kwargs.get("headers") or {}), **credentials}
        return super().request(method, url, *args, **kwargs)


def _session() -> requests.Session:
    return _Session()


def local_digests(path: Path) -> dict[str, str]:
    hashers = {"md5": HASHERS["md5"](), "crc32c": HASHERS["crc32c"]()}
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {algo: h.hexdigest() for algo, h in hashers.items()}


def _remote_digests(meta: dict) -> dict[str, str]:
    found: dict[str, str] = {}
    for field, algo in (("md5Hash", "md5"), ("crc32c", "crc32c")):
        if meta.get(field):
            found.update(_b64_hex(meta[field], algo))
    return found


def object_metadata(session: requests.Session, bucket: str, name: str) -> dict | None:
    url = f"{endpoint()}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
    response = session.get(url, timeout=60)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise UploadError(f"gs://{bucket}/{name}: metadata request answered HTTP {response.status_code}")
    return response.json()


def _journal(bucket: str, name: str, path: Path) -> Path:
    stat = path.stat()
    identity = f"{bucket}/{name}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    key = hashlib.sha256(identity.encode()).hexdigest()
    return layout.partial_dir() / "uploads" / f"{key[:32]}.json"


def _start_session(session: requests.Session, bucket: str, name: str, size: int) -> str:
    response = session.post(
        f"{endpoint()}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
        params={"uploadType": "resumable", "name": name},
        headers={"X-Upload-Content-Length": str(size), "Content-Type": "application/json"},
        data=json.dumps({"name": name}), timeout=60,
    )
    if response.status_code not in (200, 201) or "Location" not in response.headers:
        raise UploadError(
            f"gs://{bucket}/{name}: could not start an upload session (HTTP {response.status_code}); "
            "check the bucket exists and GOOGLE_OAUTH_ACCESS_TOKEN grants write access"
        )
    location = response.headers["Location"]
    return location if "://" in location else endpoint() + location


def _save(journal: Path, uri: str, offset: int) -> None:
    """The session and the bytes the server acknowledged: all a later run needs to go on."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    tmp = journal.with_suffix(".tmp")
    tmp.write_text(json.dumps({"uri": uri, "offset": offset}))
    os.replace(tmp, journal)


def _committed(response: requests.Response) -> int:
    """Bytes the server holds, from a 308's Range header (`bytes=0-N`)."""
    held = response.headers.get("Range")
    return int(held.rsplit("-", 1)[1]) + 1 if held else 0


def upload_file(path: Path, url: str, *, on_bytes: Callable[[int], None] = lambda n: None) -> dict:
    """Upload one file to gs://bucket/name; return the object's metadata after verifying it."""
    bucket, name = split(url)
    session = _session()
    size = path.stat().st_size
    want = local_digests(path)
    existing = object_metadata(session, bucket, name)
    if existing is not None and _remote_digests(existing) == want and int(existing.get("size", -1)) == size:
        log.info("%s already holds %s with the same md5 and crc32c; skipped", url, path.name)
        on_bytes(size)
        return existing

    journal = _journal(bucket, name, path)
    uri, offset = _resume_or_start(journal, session, bucket, name, path, size)
    _save(journal, uri, offset)
    on_bytes(offset)
    meta = _Upload(path, url, session, journal, uri, offset, size, on_bytes).send()
    journal.unlink(missing_ok=True)
    _verify(meta, want, size, path, url)
    return meta


def _resume_or_start(journal: Path, session: requests.Session, bucket: str, name: str, path: Path,
                     size: int) -> tuple[str, int]:
    """The session URI and the bytes it holds: from the journal of an interrupted push, or a new one."""
    if journal.exists():
        saved = json.loads(journal.read_text())
        log.info("resuming upload of %s at byte %d of %d", path.name, saved["offset"], size)
        return saved["uri"], saved["offset"]
    return _start_session(session, bucket, name, size), 0


@dataclass
class _Upload:
    """One file going up a resumable session, from `offset` on."""

    path: Path
    url: str
    session: requests.Session
    journal: Path
    uri: str
    offset: int
    size: int
    on_bytes: Callable[[int], None]

    def send(self) -> dict:
        """Chunk after chunk until the server holds every byte; the object's metadata."""
        failures = 0
        with self.path.open("rb") as stream:
            while True:
                response, error = self._put(stream)
                status = None if response is None else response.status_code
                if status in (200, 201):
                    self.on_bytes(self.size - self.offset)
                    return response.json()  # type: ignore[union-attr]
                if status == 308:
                    self._advance(_committed(response))  # type: ignore[arg-type]
                    failures = 0
                elif status in (404, 410):
                    self._expired()
                else:
                    failures += 1
                    self._back_off(failures, error)

    def _put(self, stream: BinaryIO) -> tuple[requests.Response | None, str]:
        """The next chunk (none at the end: a status query); the response, or None and what went wrong."""
        offset, size = self.offset, self.size
        stream.seek(offset)
        chunk = stream.read(CHUNK)
        content_range = f"bytes {offset}-{offset + len(chunk) - 1}/{size}" if chunk else f"bytes */{size}"
        try:
            response = self.session.put(self.uri, data=chunk, headers={"Content-Range": content_range},
                                        timeout=300)
        except requests.RequestException as exc:
            return None, str(exc)
        return response, f"HTTP {response.status_code}"

    def _advance(self, committed: int) -> None:
        held = max(committed, self.offset)
        _save(self.journal, self.uri, held)
        self.on_bytes(held - self.offset)
        self.offset = held

    def _expired(self) -> None:
        self.journal.unlink(missing_ok=True)  # the session expired (a week on GCS): start over
        raise UploadError(f"the upload session for {self.url} has expired; run the push again to start over")

    def _back_off(self, failures: int, error: str) -> None:
        if failures >= ATTEMPTS:
            raise UploadError(f"upload of {self.path} to {self.url} failed {failures} times ({error}); "
                              "run the push again to resume")
        time.sleep(min(2 ** failures, 30) * random.uniform(0.5, 1.0))  # backoff with jitter


def _verify(meta: dict, want: dict[str, str], size: int, path: Path, url: str) -> None:
    """The object's md5, crc32c and size, as the server reports them, must be what was read locally."""
    got = _remote_digests(meta)
    bad = {algo: (value, got.get(algo)) for algo, value in want.items()
           if algo in got and got[algo] != value}
    if bad or int(meta.get("size", -1)) != size:
        detail = (", ".join(f"{a}: expected {e}, got {g}" for a, (e, g) in bad.items())
                  or f"size {meta.get('size')} != {size}")
        raise UploadError(f"{url}: the uploaded object does not match {path} ({detail}); push again")
    if not got:
        raise UploadError(f"{url}: the server reported no md5 or crc32c, so the upload cannot be verified")
