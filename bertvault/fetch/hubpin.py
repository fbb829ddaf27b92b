"""`bertvault pin --refresh`: move an artifact's Hugging Face files to the current commit of their
branch, with the sha256 and size the Hub states there, and say what changed.

Built-in Hub artifacts are pinned to the commit their published hashes belong to
(`hf://org/repo@<commit>/file`), so a repository that moves on cannot change what a pull accepts.
When it has moved on on purpose (new weights, a fixed config), this asks the Hub (huggingface_hub's
API, honouring HF_ENDPOINT and HF_TOKEN) for the branch's commit and each file's metadata there, and
writes a `[[pin]]` that moves the files to it: LFS files with the sha256 the Hub keeps for them;
small (non-LFS) files, for which the Hub states only a git blob id, are read once and hashed, and
the bytes are held to that blob id. A file pinned to a commit follows the default branch; one that
names a branch or tag follows it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from bertvault import hfuri, paths
from bertvault.cache import metadata
from bertvault.errors import DownloadError, UsageError, raise_if
from bertvault.registry.schema import Artifact, FileSpec
from bertvault.registry.user import write_pin

COMMIT = re.compile(r"[0-9a-f]{40}")
SMALL_LIMIT = 16 << 20  # the Hub keeps files above 10 MB in LFS; a bigger "small" file is refused
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True)
class Change:
    """One file before and after the refresh (old_commit None: the URL followed a branch)."""

    path: str
    old_commit: str | None
    new_commit: str
    old_sha256: str | None
    new_sha256: str
    old_size: int | None
    new_size: int

    @property
    def changed(self) -> bool:
        before = (self.old_commit, self.old_sha256, self.old_size)
        return before != (self.new_commit, self.new_sha256, self.new_size)

    def describe(self) -> str:
        facts = [("commit", self.old_commit or "(branch head)", self.new_commit),
                 ("sha256", self.old_sha256 or "(none)", self.new_sha256),
                 ("size", "(none)" if self.old_size is None else str(self.old_size), str(self.new_size))]
        said = [f"{what} {old} -> {new}" for what, old, new in facts if old != new]
        return f"{self.path}: " + ("; ".join(said) if said else "unchanged")


@dataclass
class RefreshReport:
    artifact: str
    target: Path | None  # None: nothing changed, nothing written
    changes: list[Change]

    def lines(self) -> list[str]:
        if self.target is None:
            return [f"{self.artifact}: already at the current commit; nothing written"]
        moved = sum(c.changed for c in self.changes)
        return [f"{self.artifact}: {moved} of {len(self.changes)} Hub files changed; pin written to "
                f"{self.target}", *(c.describe() for c in self.changes)]


@dataclass(frozen=True)
class _HubFile:
    spec: FileSpec
    url: str
    uri: hfuri.HfUri

    @property
    def branch(self) -> str | None:
        """What to ask the Hub about: the named branch or tag; None (the default branch) for a commit."""
        revision = self.uri.revision
        return None if revision is None or COMMIT.fullmatch(revision) else revision

    def at(self, commit: str) -> str:
        return f"hf://{_PREFIX[self.uri.repo_type]}{self.uri.repo_id}@{commit}/{self.uri.path}"


def _hub_files(artifact: Artifact) -> list[_HubFile]:
    found = []
    for spec in artifact.files:
        url = next((u for u in spec.urls if u.startswith("hf://")), None)
        if url is not None:
            found.append(_HubFile(spec, url, hfuri.parse(url)))
    if not found:
        raise UsageError(f"{artifact.name} has no hf:// file; --refresh moves Hugging Face Hub pins only")
    return found


def _check_online() -> None:
    from bertvault.fetch.transports.hub import hub_offline

    if paths.offline() or hub_offline():
        raise DownloadError("pin --refresh asks the Hugging Face Hub for the current commit, but offline "
                            "mode is on (BERTVAULT_OFFLINE or HF_HUB_OFFLINE); unset it and run again")


def _api():
    from huggingface_hub import HfApi

    from bertvault.fetch.transports.hub import endpoint, token

    return HfApi(endpoint=endpoint(), token=token() or False)


def _repo_state(api, where: _HubFile) -> tuple[str, dict]:
    """(commit, {path: RepoSibling}) of the branch `where` follows."""
    from huggingface_hub.errors import HfHubHTTPError

    from bertvault.fetch.transports.hub import endpoint

    try:
        info = api.repo_info(where.uri.repo_id, repo_type=where.uri.repo_type, revision=where.branch,
                             files_metadata=True, timeout=30)
    except HfHubHTTPError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DownloadError(f"the Hub at {endpoint()} cannot tell the commit of {where.uri.repo_id} "
                            f"({where.branch or 'default branch'}): {reason}") from None
    except Exception as exc:  # httpx network errors and timeouts: huggingface_hub's transport is not ours
        raise DownloadError(f"cannot reach the Hub at {endpoint()} for {where.uri.repo_id}: "
                            f"{type(exc).__name__}: {exc}") from None
    if not info.sha or not COMMIT.fullmatch(info.sha):
        raise DownloadError(f"the Hub at {endpoint()} named no commit for {where.uri.repo_id} ({info.sha!r})")
    return info.sha, {s.rfilename: s for s in info.siblings or []}


def _small_file_sha256(where: _HubFile, commit: str, sibling) -> str:
    """Read a non-LFS file at `commit` and hash it; its bytes must match the git blob id the Hub gave."""
    import requests
    from huggingface_hub import hf_hub_url

    from bertvault.fetch.transports.hub import endpoint, token

    url = hf_hub_url(where.uri.repo_id, where.uri.path, repo_type=where.uri.repo_type, revision=commit,
                     endpoint=endpoint())
    secret = token()
    try:  # requests drops the Authorization header when a redirect leaves the Hub's host
        with requests.get(url, headers={"Authorization": f"Bearer {secret}"} if secret else {}, stream=True,
                          timeout=30) as response:
            response.raise_for_status()
            data = response.raw.read(SMALL_LIMIT + 1, decode_content=True)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot read {where.url} at commit {commit}: {exc}") from None
    if len(data) > SMALL_LIMIT:
        raise DownloadError(f"{where.url}: the Hub stores it outside LFS but it is over {SMALL_LIMIT} bytes")
    blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if sibling.blob_id and blob_id != sibling.blob_id:
        raise DownloadError(f"{where.url} at commit {commit}: the bytes read have git blob id {blob_id}, "
                            f"but the Hub's listing says {sibling.blob_id}; run again")
    return hashlib.sha256(data).hexdigest()


def _change(where: _HubFile, commit: str, siblings: dict) -> Change:
    sibling = siblings.get(where.uri.path)
    if sibling is None:
        raise DownloadError(f"{where.uri.path} is no longer in {where.uri.repo_id} at commit {commit}; "
                            "the repository dropped it, so the manifest needs editing, not a refresh")
    if sibling.lfs is not None:
        sha, size = sibling.lfs.sha256, sibling.lfs.size
    else:
        sha, size = _small_file_sha256(where, commit, sibling), sibling.size
    old = where.uri.revision if where.uri.revision and COMMIT.fullmatch(where.uri.revision) else None
    return Change(where.spec.path, old, commit, where.spec.sha256, sha, where.spec.size, size)


def refresh(name: str, write: Path | None = None) -> RefreshReport:
    """Move `name`'s Hub files to the current commit; write the pin where `pin` writes (or to `write`)."""
    from bertvault.registry import load_registry

    artifact = load_registry().get(name)
    hub_files = _hub_files(artifact)
    _check_online()
    api = _api()
    states: dict[tuple, tuple[str, dict]] = {}
    changes, pins, problems = [], [], []
    for where in hub_files:
        key = (where.uri.repo_type, where.uri.repo_id, where.branch)
        if key not in states:
            states[key] = _repo_state(api, where)
        commit, siblings = states[key]
        try:
            change = _change(where, commit, siblings)
        except DownloadError as exc:
            problems.extend(exc.problems)
            continue
        changes.append(change)
        urls = [where.at(commit) if u == where.url else u for u in where.spec.urls]
        pins.append({"path": change.path, "urls": urls, "sha256": change.new_sha256, "size": change.new_size})
    raise_if(problems, DownloadError)
    if not any(c.changed for c in changes):
        return RefreshReport(artifact.name, None, changes)
    target = write or paths.default_user_manifest()
    commits = ", ".join(sorted({c.new_commit for c in changes}))
    write_pin(target, artifact.name, pins,
              note=f"moved to Hub commit {commits} by `bertvault pin --refresh` on {metadata.now()}")
    return RefreshReport(artifact.name, target, changes)
