"""gs://bucket/object through the Cloud Storage JSON API, with Application Default Credentials where
there are some (gcs_auth.py), anonymous otherwise (public objects).

Like Google's client libraries, STORAGE_EMULATOR_HOST replaces the endpoint (so fake-gcs-server
stands in for GCS in tests). The probe reads the object's metadata (size, md5Hash, crc32c,
generation); byte reads pin that generation, so a rewritten object can never be spliced into a
resumed download: the old generation is simply gone (404) and the file is probed again.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

import requests

from bertvault.fetch import digests, gcs_auth
from bertvault.fetch.neterrors import classify
from bertvault.fetch.remote import Remote, Unavailable
from bertvault.fetch.transports.http import HttpTransport, status_error

PUBLIC_ENDPOINT = "https://storage.googleapis.com"


def endpoint() -> str:
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
    if not host:
        return PUBLIC_ENDPOINT
    return host if "://" in host else f"http://{host}"


def split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    bucket, name = parts.netloc, parts.path.lstrip("/")
    if not bucket or not name:
        raise Unavailable(f"{url!r} is not gs://BUCKET/OBJECT")
    return bucket, name


def auth(url: str) -> dict[str, str]:
    """Credentials for a request to `url` (none for other hosts); unusable ones fail the mirror."""
    try:
        return gcs_auth.headers(url)
    except gcs_auth.CredentialsProblem as exc:
        raise Unavailable(f"gs:// credentials: {exc}") from None


class GcsTransport(HttpTransport):
    def auth_headers(self, url: str) -> dict[str, str]:
        return auth(url)

    def probe(self, url: str, session: requests.Session) -> Remote:
        bucket, name = split(url)
        base = f"{endpoint()}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        response = self._request(session, "GET", base, self.auth_headers(base), url)
        with response:
            if response.status_code != 200:
                raise status_error(response, url)
            try:
                meta = response.json()
                size = int(meta["size"])
            except (ValueError, KeyError, TypeError) as exc:
                raise Unavailable(f"unexpected object metadata for {url}: {exc}") from exc
        found: dict[str, tuple[str, str]] = {}
        for field, algo in (("md5Hash", "md5"), ("crc32c", "crc32c")):
            if meta.get(field):
                for key, value in digests._b64_hex(meta[field], algo).items():
                    found[key] = (value, f"GCS {field}")
        generation = str(meta.get("generation") or "")
        media = f"{base}?alt=media" + (f"&generation={generation}" if generation else "")
        return Remote(
            url=url, get_url=media, size=size, ranges=True, etag=meta.get("etag"),
            last_modified=meta.get("updated"), version=generation or None, if_range=None,
            digests=found, info={"generation": generation} if generation else {},
        )


def list_objects(bucket: str, prefix: str, session: requests.Session | None = None) -> list[tuple[str, int]]:
    """(name, size) of every object whose name starts with `prefix`, following pagination."""
    session = session or requests.Session()
    url = f"{endpoint()}/storage/v1/b/{quote(bucket, safe='')}/o"
    found: list[tuple[str, int]] = []
    params = {"prefix": prefix, "fields": "items(name,size),nextPageToken"}
    while True:
        try:
            response = session.get(url, params=params, headers=auth(url), timeout=60)
        except (requests.RequestException, ValueError) as exc:
            raise classify(exc, url, 60) from exc
        if response.status_code != 200:
            raise Unavailable(f"listing gs://{bucket}/{prefix} answered HTTP {response.status_code}")
        try:
            page = response.json()
            found += [(str(item["name"]), int(item["size"])) for item in page.get("items", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Unavailable(f"listing gs://{bucket}/{prefix} answered something that is not a listing: "
                              f"{exc!r}") from None
        if not page.get("nextPageToken"):
            return found
        params["pageToken"] = page["nextPageToken"]
