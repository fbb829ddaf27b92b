"""Credentials for every gs:// request, read or write: google-auth's Application Default Credentials.

Where they come from, first found wins (what Google's own client libraries do, plus a bare token):
  1. GOOGLE_OAUTH_ACCESS_TOKEN: a bearer token as it is (`gcloud auth print-access-token`);
  2. GOOGLE_APPLICATION_CREDENTIALS: a service-account (or user) JSON key file;
  3. the file `gcloud auth application-default login` writes;
  4. the GCE / TPU-VM metadata server (GCE_METADATA_HOST moves it), asked only on a Google Cloud VM
     or when GCE_METADATA_HOST says where it is, so elsewhere a public download never waits for it.
None of them: requests go out anonymous, which public buckets (google-research's) accept. Tokens
are refreshed shortly before they expire, under a lock (several connections share them). The
credentials go only to the Cloud Storage endpoint's own host, never to a host it redirects to.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
_DMI_PRODUCT = Path("/sys/class/dmi/id/product_name")


class CredentialsProblem(Exception):
    """Credentials were configured but cannot be used (unreadable key, refused refresh)."""


def _on_google_cloud() -> bool:
    if os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP"):
        return True
    try:
        return _DMI_PRODUCT.read_text().strip().startswith("Google")
    except OSError:
        return False


def _gcloud_file() -> Path | None:
    from google.auth import _cloud_sdk

    path = Path(_cloud_sdk.get_application_default_credentials_path())
    return path if path.is_file() else None


class _Shared:
    """google-auth credentials behind a lock, refreshed when they are about to expire."""

    def __init__(self, credentials, origin: str) -> None:
        self.credentials, self.origin = credentials, origin
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request

        with self._lock:
            try:
                if not self.credentials.valid:
                    self.credentials.refresh(Request())
            except GoogleAuthError as exc:
                raise CredentialsProblem(f"{self.origin}: cannot get an access token ({_first_line(exc)})"
                                         ) from None
            found: dict[str, str] = {}
            self.credentials.apply(found)
            return found


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@functools.lru_cache(maxsize=8)
def _credentials(token: str | None, key_file: str | None, metadata_host: str | None) -> _Shared | None:
    """The credentials for this environment (cached per process for as long as it does not change)."""
    if token:
        from google.oauth2.credentials import Credentials

        return _Shared(Credentials(token), "GOOGLE_OAUTH_ACCESS_TOKEN")
    gcloud = _gcloud_file()
    file = key_file or (str(gcloud) if gcloud is not None else None)
    if file is not None:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.load_credentials_from_file(file, scopes=SCOPES)
        except DefaultCredentialsError as exc:
            where = f"GOOGLE_APPLICATION_CREDENTIALS={file}" if key_file else file
            raise CredentialsProblem(f"{where}: not usable credentials ({_first_line(exc)})") from None
        log.info("gs:// requests carry credentials from %s", file)
        return _Shared(credentials, file)
    if _on_google_cloud():
        from google.auth import compute_engine

        log.info("gs:// requests carry the credentials of this VM's service account (metadata server)")
        return _Shared(compute_engine.Credentials(scopes=SCOPES), "the metadata server")
    return None


def _storage_host() -> str:
    from bertvault.fetch.transports.gcs import endpoint

    return urlsplit(endpoint()).netloc


def headers(url: str) -> dict[str, str]:
    """The Authorization header for `url` when it is the Cloud Storage endpoint's and credentials
    exist; {} otherwise. Raises CredentialsProblem when configured credentials cannot be used."""
    if urlsplit(url).netloc != _storage_host():
        return {}
    shared = _credentials(os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN") or None,
                          os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
                          os.environ.get("GCE_METADATA_HOST") or None)
    return shared.headers() if shared is not None else {}
