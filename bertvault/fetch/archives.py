"""Safe extraction of zip and tar.gz archives into a folder.

Refused, with the member named: absolute paths, `..`, links that point outside the folder, device
files and fifos, and archives whose extracted bytes pass a cap (zip bombs: counted as written, not
trusted from headers). Tar members go through tarfile's own `data_filter` (PEP 706) first.
An `archive_root` folder inside the archive is stripped: its contents land at the folder's root and
members outside it are skipped. Each member is hashed as it is written.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bertvault.errors import UnsafeInput

BLOCK = 1 << 20


@dataclass
class Member:
    name: str                      # path inside the archive
    kind: str                      # file | dir | symlink
    open: Callable[[], IO[bytes]] | None = None
    link: str | None = None
    mode: int = 0o644


def _relative(name: str, root: str | None) -> str | None:
    """The member's path inside the destination, None to skip it; raises on unsafe names."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise UnsafeInput(f"archive member {name!r} has an absolute path")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeInput(f"archive member {name!r} climbs out of the folder with '..'")
    if root:
        root_parts = [p for p in root.strip("/").split("/") if p]
        if parts[: len(root_parts)] != root_parts:
            return None
        parts = parts[len(root_parts):]
    return "/".join(parts)


def _zip_members(path: Path) -> Iterator[Member]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            mode = info.external_attr >> 16
            kind_bits = stat.S_IFMT(mode)
            if info.is_dir():
                yield Member(info.filename, "dir")
            elif kind_bits == stat.S_IFLNK:
                yield Member(info.filename, "symlink", link=archive.read(info).decode("utf-8", "replace"))
            elif kind_bits in (0, stat.S_IFREG):
                yield Member(info.filename, "file", open=lambda info=info: archive.open(info),
                             mode=(mode & 0o755) | 0o644)
            else:
                raise UnsafeInput(f"archive member {info.filename!r} is a device file, fifo or socket")


def _tar_members(path: Path, dest: Path) -> Iterator[Member]:
    with tarfile.open(path, "r:*") as archive:
        for info in archive:
            try:
                tarfile.data_filter(info, str(dest))
            except tarfile.FilterError as exc:
                raise UnsafeInput(f"archive member {info.name!r} refused: {exc}") from None
            if info.isdir():
                yield Member(info.name, "dir")
            elif info.issym():
                yield Member(info.name, "symlink", link=info.linkname)
            elif info.islnk():
                yield Member(info.name, "hardlink", link=info.linkname)
            elif info.isfile():
                yield Member(info.name, "file", open=lambda info=info: archive.extractfile(info),
                             mode=(info.mode & 0o755) | 0o644)
            else:
                raise UnsafeInput(f"archive member {info.name!r} is a device file, fifo or socket")


READERS: dict[str, Callable[[Path, Path], Iterator[Member]]] = {
    "zip": lambda path, dest: _zip_members(path),
    "tar.gz": _tar_members,
}


def _inside(dest: Path, rel: str, link: str) -> bool:
    target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
    return not link.startswith("/") and target != ".." and not target.startswith("../")


def extract(archive: Path, kind: str, dest: Path, root: str | None, cap: int) -> dict[str, dict]:
    """Extract into `dest` (which must exist); return {path: {size, sha256}} of the regular files."""
    if kind not in READERS:
        raise UnsafeInput(f"unknown archive type {kind!r}; expected one of {', '.join(READERS)}")
    written = 0
    files: dict[str, dict] = {}
    links: list[tuple[str, str, str]] = []
    try:
        for member in READERS[kind](archive, dest):
            rel = _relative(member.name, root)
            if not rel:
                continue
            target = dest / rel
            if member.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
            elif member.kind in ("symlink", "hardlink"):
                link = member.link or ""
                if member.kind == "hardlink":
                    link = _relative(link, root) or ""
                    if not link:
                        raise UnsafeInput(f"archive member {member.name!r} links outside {root or 'the archive'}")
                elif not _inside(dest, rel, link):
                    raise UnsafeInput(f"archive member {member.name!r} links outside the folder (to {link!r})")
                links.append((member.kind, rel, link))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, size = hashlib.sha256(), 0
                with member.open() as source, open(target, "wb") as out:  # type: ignore[misc]
                    while block := source.read(BLOCK):
                        size += len(block)
                        written += len(block)
                        if written > cap:
                            raise UnsafeInput(f"{archive.name} expands past {cap} bytes (at {member.name!r}); "
                                              "refusing a possible zip bomb")
                        digest.update(block)
                        out.write(block)
                os.chmod(target, member.mode)
                files[rel] = {"size": size, "sha256": digest.hexdigest()}
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise UnsafeInput(f"{archive.name} is not a readable {kind} archive: {exc}") from None
    for how, rel, link in links:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if how == "symlink":
            target.symlink_to(link)
        else:
            if (dest / link).is_symlink() or not (dest / link).is_file():
                raise UnsafeInput(f"archive member {rel!r} hardlinks to {link!r}, which is not a file in it")
            shutil.copyfile(dest / link, target)
            files[rel] = dict(files.get(link) or {"size": target.stat().st_size})
    if root and not files:
        raise UnsafeInput(f"{archive.name} has no files under {root!r}; check archive_root in the manifest")
    return files


def uncompressed_size(archive: Path, kind: str) -> int | None:
    """What the headers declare (zip only; known without reading the data)."""
    if kind != "zip":
        return None
    try:
        with zipfile.ZipFile(archive) as z:
            return sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile:
        return None
