"""Uploads of an HF model folder to the Hugging Face Hub (hf://org/repo[@revision])."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bertvault import hfuri
from bertvault.errors import UploadError, UsageError

log = logging.getLogger(__name__)


def split(url: str) -> hfuri.HfUri:
    """The repository (and revision) to push to: an hf:// address without a path in it."""
    try:
        where = hfuri.parse(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if where.path:
        raise UsageError(f"{url!r}: push uploads a whole model folder to a repository; drop {where.path!r} "
                         "(hf://ORG/REPO[@REVISION])")
    return where


def upload_folder(folder: Path, url: str, card: str, *, token: str | None = None,
                  private: bool = False) -> str:
    """Create the repo if needed and commit every file of `folder` plus the model card; return the
    commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    where = split(url)
    repo = where.repo_id
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or os.environ.get("HF_TOKEN"))
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))
    operations = [CommitOperationAdd(path_in_repo=str(f.relative_to(folder)), path_or_fileobj=str(f))
                  for f in files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    try:
        api.create_repo(repo, repo_type=where.repo_type, exist_ok=True, private=private)
        info = api.create_commit(repo, operations=operations, revision=where.revision,
                                 repo_type=where.repo_type,
                                 commit_message=f"Upload {folder.name} with bertvault")
    except HfHubHTTPError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise UploadError(
            f"push to {url} failed: {reason}; check HF_TOKEN and that you may write to {repo}"
        ) from None
    log.info("pushed %d files to %s", len(operations), url)
    return info.commit_url
