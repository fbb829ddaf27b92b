"""Building an artifact's view from its blobs: hardlinks for plain files, safe extraction for
archives (reusing what the current view already extracted from the same blob), staged beside the
view and swapped in at once. What an archive extracts is held to its published member hashes
before anything is swapped in."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

from bertvault import relpath
from bertvault.cache import layout, store, view
from bertvault.errors import DownloadError, UnsafeInput
from bertvault.fetch import archives
from bertvault.fetch import members as published
from bertvault.registry.schema import Artifact, FileSpec

log = logging.getLogger(__name__)


def _reusable(current: Path, record: dict) -> dict[str, dict] | None:
    """The members the current view holds from this very archive blob, if all are still there."""
    extracted = record.get("archive") or {}
    members = extracted.get("members")
    if extracted.get("sha256") != record.get("sha256") or not members:
        return None
    home = os.path.realpath(current)
    for rel, info in members.items():
        path = current / rel
        # The member itself, at a real path inside the view: a record (old, or edited) that names a
        # path through a link, or with '..', would otherwise carry a file from elsewhere into the view.
        if relpath.problem(rel) or os.path.realpath(path) != os.path.join(home, rel) or path.is_symlink() \
                or not path.is_file() or path.stat().st_size != info.get("size"):
            return None
    return members


def _unpack(name: str, spec: FileSpec, record: dict, current: Path, stage: Path, ratio: float) -> dict:
    blob = layout.blob_path(record["sha256"])
    members = _reusable(current, record)
    if members is not None:
        for rel in members:
            store.place(current / rel, stage / rel)
    else:
        declared = archives.uncompressed_size(blob, spec.archive)  # type: ignore[arg-type]
        free = shutil.disk_usage(stage).free
        if declared is not None and declared > free:
            raise DownloadError(f"not enough free space to extract {spec.path}: {declared} bytes needed, "
                                f"{free} free in {stage.parent}; free some space and pull again "
                                "(the archive is kept)")
        cap = int(max(blob.stat().st_size, 1 << 20) * ratio)
        members = archives.extract(blob, spec.archive, stage, spec.archive_root, cap,  # type: ignore[arg-type]
                                   label=f"{name}/{spec.path}")
    unpacked = {"type": spec.archive, "root": spec.archive_root, "sha256": record["sha256"],
                "members": members}
    verdict = published.check(name, spec, members)
    if verdict is not None:
        unpacked.update(verified=verdict.trust, unlisted=verdict.unlisted)
    return unpacked


def _place(name: str, path: str, sha256: str, stage: Path) -> None:
    """A plain file into the stage; an archive of the same artifact may have put something there."""
    try:
        store.place(layout.blob_path(sha256), stage / path)
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        raise UnsafeInput(f"{name}/{path} clashes with what an archive of {name} extracted ({exc.strerror}); "
                          "the manifest and the archive disagree on this path") from None


def _difference(current: Path, spec: FileSpec, record: dict) -> str | None:
    """Why the view does not show this recorded file exactly, or None."""
    if spec.archive:
        reusable = _reusable(current, record) is not None
        return None if reusable else f"files extracted from {spec.path} are missing or changed"
    try:
        entry = (current / spec.path).stat()
    except OSError:
        return f"{spec.path} is missing"
    if not os.path.samestat(entry, layout.blob_path(record["sha256"]).stat()):
        return f"{spec.path} is not the cached file (changed or replaced since it was pulled)"
    return None


def differences(artifact: Artifact, records: dict[str, dict]) -> list[tuple[str, str]]:
    """(path, why) for every recorded file the current view does not show exactly."""
    current = layout.artifact_dir(artifact.name)
    found = []
    for spec in artifact.files:
        record = records.get(spec.path)
        why = _difference(current, spec, record) if record is not None else None
        if why is not None:
            found.append((spec.path, why))
    return found


def build(artifact: Artifact, records: dict[str, dict], ratio: float) -> dict[str, dict]:
    """Publish a view holding every recorded file whose blob is present; return archive records."""
    current = layout.artifact_dir(artifact.name)
    unpacked: dict[str, dict] = {}
    try:
        with view.staging(artifact.name) as stage:
            for spec in artifact.files:
                record = records.get(spec.path)
                if record is None or not store.has(record.get("sha256")):
                    continue
                if spec.archive:
                    unpacked[spec.path] = _unpack(artifact.name, spec, record, current, stage, ratio)
                else:
                    _place(artifact.name, spec.path, record["sha256"], stage)
            view.publish(stage, artifact.name)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(f"no space left building the view of {artifact.name} in {current.parent}: "
                                f"{exc.strerror}; free some space and pull again (downloaded files are kept)"
                                ) from None
        raise
    return unpacked
