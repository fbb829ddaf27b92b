"""hf://[datasets/|spaces/]org/repo[@revision]/path through huggingface_hub (hfuri.py parses it).

The Hub's HEAD answer (read by `huggingface_hub.get_hf_file_metadata`, honouring HF_ENDPOINT and
HF_TOKEN) gives the commit, the size and, for LFS files, the sha256 (X-Linked-Etag); the bytes are
then read in ranges from where the Hub redirects (usually a CDN on another host, which never sees
the token). HF_HUB_OFFLINE=1 makes this mirror unavailable without a request.
"""

from __future__ import annotations

import os
import re

import requests

from bertvault import hfuri
from bertvault.fetch.neterrors import classify, short
from bertvault.fetch.remote import Remote, Retryable, Unavailable
from bertvault.fetch.transports.http import HttpTransport, origin, redirect_problem

DEFAULT_ENDPOINT = "https://huggingface.co"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def token() -> str | None:
    value = os.environ.get("HF_TOKEN")
    if value:
        return value
    from huggingface_hub import get_token

    return get_token()


class HubTransport(HttpTransport):
    def auth_headers(self, url: str) -> dict[str, str]:
        """The token, for the Hub's own host only."""
        secret = token()
        return {"Authorization": f"Bearer {secret}"} if secret and origin(url) == origin(endpoint()) else {}

    def probe(self, url: str, session: requests.Session) -> Remote:
        if hub_offline():
            raise Unavailable("HF_HUB_OFFLINE is set: no request to the Hugging Face Hub")
        resolve = _resolve_url(url)
        meta = self._metadata(url, resolve)
        # The bytes live at `location` (a CDN, usually); auth_headers keeps the token off other hosts.
        problem = redirect_problem(resolve, meta.location) if meta.location else None
        if problem is not None:
            raise Unavailable(f"Hub: {problem}")
        remote = super().probe(meta.location or resolve, session)
        remote.url = url
        if meta.size is not None:
            remote.size = remote.size if remote.size is not None else meta.size
        if meta.etag and re.fullmatch(r"[0-9a-f]{64}", meta.etag):
            remote.digests["sha256"] = (meta.etag, "Hub X-Linked-Etag")
        remote.version = meta.etag  # content identity (LFS sha256 or git blob id), not the commit
        where = hfuri.parse(url)
        remote.info = {"commit": meta.commit_hash or "", "repo": where.repo_id,
                       "revision": where.revision or "main"}
        return remote

    def _metadata(self, url: str, resolve: str):
        """The Hub's answer about the file (size, ETag, commit, where its bytes are), errors sorted
        into this mirror failing now and a retry."""
        from huggingface_hub import get_hf_file_metadata
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

        base = endpoint()
        try:
            return get_hf_file_metadata(resolve, token=token() or False, timeout=self.options.connect_timeout,
                                        endpoint=base)
        except (EntryNotFoundError, RepositoryNotFoundError) as exc:
            raise Unavailable(f"{url}: {exc.__class__.__name__}: not on the Hub at {base}") from exc
        except HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status is not None and (status >= 500 or status == 429):
                raise Retryable(f"Hub answered HTTP {status} for {url}") from exc
            raise Unavailable(f"Hub: {short(exc)}") from exc
        except Exception as exc:  # httpx network errors, timeouts: huggingface_hub's transport is not ours
            raise classify(exc, resolve, self.options.connect_timeout) from exc


def _resolve_url(url: str) -> str:
    """The Hub's resolve/ URL of an hf:// file."""
    from huggingface_hub import hf_hub_url

    try:
        where = hfuri.parse(url)
    except ValueError as exc:
        raise Unavailable(str(exc)) from None
    if not where.path:
        raise Unavailable(f"{url!r} names a repository, not a file in it; expected {hfuri.FORM}")
    return hf_hub_url(where.repo_id, where.path, repo_type=where.repo_type, revision=where.revision,
                      endpoint=endpoint())
