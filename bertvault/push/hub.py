"""Uploads of an HF model folder to the Hugging Face Hub (hf://org/repo[@revision])."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bertvault.errors import DownloadError

log = logging.getLogger(__name__)


def split(url: str) -> tuple[str, str | None]:
    rest = url.removeprefix("hf://").strip("/")
    repo, _, revision = rest.partition("@")
    if repo.count("/") != 1:
        raise DownloadError(f"{url!r}: expected hf://ORG/REPO[@REVISION]")
    return repo, revision or None


def upload_folder(folder: Path, url: str, card: str, *, token: str | None = None, private: bool = False) -> str:
    """Create the repo if needed and commit every file of `folder` plus the model card; return the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    repo, revision = split(url)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or os.environ.get("HF_TOKEN"))
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))
    operations = [CommitOperationAdd(path_in_repo=str(f.relative_to(folder)), path_or_fileobj=str(f)) for f in files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    try:
        api.create_repo(repo, exist_ok=True, private=private)
        info = api.create_commit(repo, operations=operations, revision=revision,
                                 commit_message=f"Upload {folder.name} with bertvault")
    except HfHubHTTPError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise DownloadError(f"push to {url} failed: {reason}; check HF_TOKEN and that you may write to {repo}") from None
    log.info("pushed %d files to %s", len(operations), url)
    return info.commit_url
