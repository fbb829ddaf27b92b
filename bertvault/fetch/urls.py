"""Pulling a URL that no manifest names: `--from gs://bucket/ckpt`, `--data gs://bucket/tfrecords`.

The URL becomes an artifact built on the spot (named after its hash) and goes through the same
verified, resumable, cached pull as a registered one. A gs:// URL that names no single object is
a prefix: every object under it is pulled, keeping the folder structure.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pydantic import ValidationError

from bertvault.cache import layout
from bertvault.errors import DownloadError, UnsafeInput
from bertvault.registry.schema import Artifact, FileSpec

log = logging.getLogger(__name__)


def _gcs_files(url: str) -> list[FileSpec]:
    from bertvault.fetch.remote import TransferError
    from bertvault.fetch.transports.gcs import list_objects, split

    bucket, name = split(url) if urlsplit(url).path.strip("/") else (urlsplit(url).netloc, "")
    try:
        objects = list_objects(bucket, name.rstrip("/"))
    except TransferError as exc:  # unavailable, or a refused connection or a reset (not retried here)
        raise DownloadError(f"cannot list {url}: {exc}") from None
    exact = [(n, size) for n, size in objects if n == name]
    if exact:
        return [FileSpec(path=PurePosixPath(name).name, urls=[url], size=exact[0][1])]
    folder = name.rstrip("/") + "/" if name else ""
    inside = [(n, size) for n, size in objects if n.startswith(folder) and not n.endswith("/")]
    if not inside:
        raise DownloadError(f"{url}: no object has that name or lies under that prefix")
    return _specs(url, bucket, folder, inside)


def _specs(url: str, bucket: str, folder: str, objects: list[tuple[str, int]]) -> list[FileSpec]:
    """A file per object, at its path under the prefix; a name that is no plain relative path
    ('..', an empty part, a leading '/') would place a file outside the artifact's folder: refused."""
    specs, bad = [], []
    for name, size in objects:
        try:
            specs.append(FileSpec(path=name[len(folder):], urls=[f"gs://{bucket}/{name}"], size=size))
        except ValidationError:
            bad.append(name)
    if bad:
        shown = ", ".join(repr(n) for n in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise UnsafeInput(f"{url}: objects whose names are not plain paths under the prefix ({shown}) would "
                          f"land outside the download's folder; refused")
    return specs


def artifact_for(url: str) -> Artifact:
    name = "url-" + hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    if urlsplit(url).scheme == "gs":
        files = _gcs_files(url)
    else:
        files = [FileSpec(path=PurePosixPath(urlsplit(url).path).name or "download", urls=[url])]
    return Artifact(name=name, kind="dataset", format="text", description=f"pulled from {url}", files=files)


def pull_url(url: str) -> Path:
    """The local copy of `url`: a file for one object, a folder for a gs:// prefix."""
    from bertvault.fetch.options import PullOptions
    from bertvault.fetch.pull import pull

    artifact = artifact_for(url)
    report = pull(artifact, PullOptions())
    error = report.error()
    if error is not None:
        raise error
    view = layout.artifact_dir(artifact.name)
    single = len(artifact.files) == 1 and artifact.files[0].urls[0].rstrip("/") == url.rstrip("/")
    log.info("pulled %s into %s", url, view)
    return view / artifact.files[0].path if single else view
