"""`bertvault push NAME|PATH DEST`: upload a checkpoint or prepared data where users share them.

    gs://bucket/prefix    any file or folder as it is (a TF1 checkpoint for a TPU, TFRecords)
    hf://org/repo[@rev]   an HF model folder with a model card; other checkpoints are converted first
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bertvault.errors import UsageError
from bertvault.sources import Source, resolve

log = logging.getLogger(__name__)


@dataclass
class PushResult:
    destination: str
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    link: str | None = None


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(f for f in root.rglob("*") if f.is_file() and not f.name.startswith("."))


def _to_gcs(source: Source, dest: str, on_bytes: Callable[[int], None]) -> PushResult:
    from bertvault.push.gcs import upload_file

    prefix = dest.rstrip("/")
    result = PushResult(dest)
    base = source.path if source.path.is_dir() else source.path.parent
    for file in _files(source.path):
        url = f"{prefix}/{file.relative_to(base).as_posix()}"
        upload_file(file, url, on_bytes=on_bytes)
        result.files.append(url)
        result.bytes += file.stat().st_size
    return result


def _is_hf_folder(path: Path) -> bool:
    from bertvault.formats.hf import weights_in

    return path.is_dir() and (path / "config.json").is_file() and weights_in(path) is not None


def _to_hub(source: Source, dest: str, on_bytes: Callable[[int], None]) -> PushResult:
    from bertvault.push.card import model_card
    from bertvault.push.hub import split, upload_folder

    repo = split(dest).repo_id
    with tempfile.TemporaryDirectory(prefix="bertvault-push-") as scratch:
        folder = source.path
        if not _is_hf_folder(folder):
            from bertvault.convert import convert

            log.info("%s is not an HF folder: converting it first", source.path)
            folder = convert(resolve(str(source.path), "checkpoint"), "hf", out=Path(scratch) / "hf").out
        card = model_card(folder, repo, source.artifact)
        link = upload_folder(folder, dest, card)
        files = _files(folder)
        size = sum(f.stat().st_size for f in files)
        on_bytes(size)
        return PushResult(dest, [f.relative_to(folder).as_posix() for f in files] + ["README.md"], size, link)


DESTINATIONS: dict[str, Callable[[Source, str, Callable[[int], None]], PushResult]] = {
    "gs": _to_gcs,
    "hf": _to_hub,
}


def push(source: Source | str, dest: str, on_bytes: Callable[[int], None] = lambda n: None) -> PushResult:
    scheme = urlsplit(dest).scheme
    if scheme not in DESTINATIONS:
        raise UsageError(f"cannot push to {dest!r}: use gs://BUCKET/PREFIX or hf://ORG/REPO")
    return DESTINATIONS[scheme](source if isinstance(source, Source) else resolve(source), dest, on_bytes)
