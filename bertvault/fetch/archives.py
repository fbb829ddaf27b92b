"""Extraction of zip and tar.gz archives into a folder, safe by construction.

Refused as `UnsafeInput` (exit 6), naming the archive and the member, is whatever an archive asks
for that would be unsafe or ambiguous:
- a name that is absolute, climbs with `..`, holds NUL or another control character, or is too long
  (the rules of `bertvault.relpath`);
- a device file, fifo or socket;
- two entries at one path (a file twice, a file and a folder, a file and a link; on a
  case-insensitive filesystem `A` and `a` too), and any write or read through a link made earlier:
  paths are walked without following links (`fetch.safetree`);
- a link whose target, resolved on the real extracted tree, leaves the folder, dangles or loops; a
  hardlink to anything but a file extracted earlier from the same archive (it is copied, never
  linked, so no inode is shared with anything outside);
- more bytes than the cap (a zip bomb: counted as written, hardlink copies included) or more
  entries than `max_entries` (a bomb of empty files or folders).

What cannot be read is a `DownloadError` (exit 3): a damaged or truncated stream, a bad CRC (a
tar.gz is read to its very end, where gzip keeps its CRC), an encrypted member, a compression method
Python cannot decode. Nothing in such bytes is dangerous; they are not a usable archive, and a fresh
download (or the publisher) is the fix. Every message is one line that names the member.

tarfile's `data_filter` is not used: it checks each member's name and target against the tree as it
is at that moment, which a later member can change; the rules above cover what it refuses, for zip
too. An `archive_root` folder inside the archive is stripped: its contents land at the folder's
root and members outside it are skipped. Each file is hashed as it is written.
"""

from __future__ import annotations

import hashlib
import lzma
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bertvault import relpath
from bertvault.errors import DownloadError, UnsafeInput
from bertvault.fetch.safetree import MAX_LINK, Tree

BLOCK = 1 << 20
MAX_ENTRIES = 100_000  # members read, and files, folders and links made, per archive
TRAILER_LIMIT = 64 << 20  # bytes after a tar's end marker (padding: 10 KiB at most, usually)

# What the decompressors and archive readers raise on bytes they cannot read.
UNREADABLE = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error,
              lzma.LZMAError, NotImplementedError, RuntimeError, ValueError, struct.error, OSError)
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass
class Member:
    name: str                      # path inside the archive
    kind: str                      # a key of WRITERS: file | dir | symlink | hardlink | special
    open: Callable[[], IO[bytes]] | None = None
    link: str | None = None
    mode: int = 0o644


class _StrictInfo(tarfile.TarInfo):
    """tarfile ends its listing quietly at a damaged header after the first; here that is damage."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):  # type: ignore[override]
        try:
            return super().frombuf(buf, encoding, errors)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:  # type: ignore[attr-defined]
            raise tarfile.SubsequentHeaderError(f"damaged header ({exc})") from None  # type: ignore[attr-defined]


def _zip_unreadable(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "is encrypted; bertvault extracts no password-protected archive"
    if info.compress_type not in _ZIP_METHODS:
        method = zipfile.compressor_names.get(info.compress_type, f"method {info.compress_type}")
        return (f"uses the compression {method!r}, which Python cannot decode "
                "(it reads stored, deflate, bzip2 and lzma)")
    return None


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16
    kind_bits = stat.S_IFMT(mode)
    if info.is_dir() or kind_bits == stat.S_IFDIR:
        return Member(info.filename, "dir")
    if kind_bits == stat.S_IFLNK:
        with archive.open(info) as source:
            target = source.read(MAX_LINK + 1).decode("utf-8", "surrogateescape")
        return Member(info.filename, "symlink", link=target)
    if kind_bits in (0, stat.S_IFREG):
        return Member(info.filename, "file", open=lambda: archive.open(info), mode=(mode & 0o755) | 0o644)
    return Member(info.filename, "special")


def _zip_members(path: Path, label: str, max_entries: int) -> Iterator[Member]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise UnsafeInput(f"{label} lists {len(infos)} members, more than {max_entries}; "
                              "refusing a possible bomb of many small entries")
        for info in infos:
            why = None if info.is_dir() else _zip_unreadable(info)
            if why:
                raise DownloadError(f"{label}: archive member {info.filename!r} {why}; unpack it yourself "
                                    "and register the folder (file: URLs)")
            yield _zip_member(archive, info)


def _tar_members(path: Path, label: str, max_entries: int) -> Iterator[Member]:
    with tarfile.open(path, "r:*", tarinfo=_StrictInfo) as archive:
        for count, info in enumerate(archive, 1):
            if count > max_entries:
                raise UnsafeInput(f"{label} holds more than {max_entries} members; "
                                  "refusing a possible bomb of many small entries")
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
                yield Member(info.name, "special")
        _drain(archive.fileobj, label)  # type: ignore[arg-type]


def _drain(stream: IO[bytes], label: str) -> None:
    """Read past the tar's end marker to the end of the stream: only there does gzip check its CRC,
    which is all that vouches for bytes no sha256 pins."""
    left = TRAILER_LIMIT
    while block := stream.read(BLOCK):
        left -= len(block)
        if left < 0:
            raise UnsafeInput(f"{label} holds more than {TRAILER_LIMIT} bytes after the end of its tar; "
                              "refusing a possible bomb")


READERS: dict[str, Callable[[Path, str, int], Iterator[Member]]] = {
    "zip": _zip_members,
    "tar.gz": _tar_members,
}


@dataclass
class _Job:
    """One extraction: what the archive is called in messages, its root, the byte cap, the files."""

    label: str
    kind: str
    root: str | None
    cap: int
    written: int = 0
    files: dict[str, dict] = field(default_factory=dict)

    @contextmanager
    def reading(self, where: str) -> Iterator[None]:
        """Turn what a damaged archive makes the readers raise into one DownloadError line."""
        try:
            yield
        except UNREADABLE as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise DownloadError(
                f"{self.label}: cannot extract {where}: {why}; the download is not a readable {self.kind} "
                "archive (damaged in transit or at the source): `bertvault cache rm` it and pull again, "
                "and if that fails the same way, tell the publisher") from None

    def relative(self, name: str, who: str) -> str | None:
        """The member's path inside the destination, None to skip it; raises on unsafe names."""
        clean = name.replace("\\", "/")
        if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
            raise UnsafeInput(f"{who} has an absolute path")
        parts = [p for p in clean.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafeInput(f"{who} climbs out of the folder with '..'")
        if self.root:
            root_parts = [p for p in self.root.strip("/").split("/") if p]
            if parts[: len(root_parts)] != root_parts:
                return None
            parts = parts[len(root_parts):]
        rel = "/".join(parts)
        why = rel and relpath.problem(rel)
        if why:
            raise UnsafeInput(f"{who} {why}")
        return rel

    def copy(self, source: IO[bytes], out: IO[bytes], name: str, *, from_archive: bool) -> dict:
        """Copy, hash and count one file's bytes; a read from the archive reports damage as such."""
        digest, size = hashlib.sha256(), 0
        while True:
            if from_archive:
                with self.reading(f"member {name!r}"):
                    block = source.read(BLOCK)
            else:
                block = source.read(BLOCK)
            if not block:
                return {"size": size, "sha256": digest.hexdigest()}
            size += len(block)
            self.written += len(block)
            if self.written > self.cap:
                raise UnsafeInput(f"{self.label} expands past {self.cap} bytes (at {name!r}); "
                                  "refusing a possible zip bomb")
            digest.update(block)
            out.write(block)


def _write_file(job: _Job, tree: Tree, member: Member, rel: str, who: str) -> None:
    with tree.create(rel, who, member.mode) as out:
        with job.reading(f"member {member.name!r}"):
            source = member.open()  # type: ignore[misc]
        with source:
            job.files[rel] = job.copy(source, out, member.name, from_archive=True)


def _copy_hardlink(job: _Job, tree: Tree, member: Member, rel: str, who: str) -> None:
    """A tar hardlink names an earlier member: that file is copied from the tree, read without links."""
    source_rel = job.relative(member.link, f"{who} (a hardlink to {member.link!r})") if member.link else None
    if not source_rel or source_rel not in job.files:
        raise UnsafeInput(f"{who} is a hardlink to {member.link!r}, which is not a file extracted before it")
    with tree.read(source_rel, who) as source, tree.create(rel, who, member.mode) as out:
        job.files[rel] = job.copy(source, out, member.name, from_archive=False)


def _refuse_special(job: _Job, tree: Tree, member: Member, rel: str, who: str) -> None:
    raise UnsafeInput(f"{who} is a device file, fifo or socket")


WRITERS: dict[str, Callable[[_Job, Tree, Member, str, str], None]] = {
    "dir": lambda job, tree, member, rel, who: tree.mkdir(rel, who),
    "file": _write_file,
    "symlink": lambda job, tree, member, rel, who: tree.symlink(rel, member.link or "", who),
    "hardlink": _copy_hardlink,
    "special": _refuse_special,
}


def _members(job: _Job, archive: Path, max_entries: int) -> Iterator[Member]:
    """The archive's members in order; damage found while listing them (or after the last, in a
    stream's checksum) names the last member read."""
    members = READERS[job.kind](archive, job.label, max_entries)
    where = "its first member"
    try:
        while True:
            with job.reading(where):
                member = next(members, None)
            if member is None:
                return
            where = f"what follows member {member.name!r}"
            yield member
    finally:
        members.close()


def extract(archive: Path, kind: str, dest: Path, root: str | None, cap: int, *, label: str | None = None,
            max_entries: int = MAX_ENTRIES) -> dict[str, dict]:
    """Extract into `dest` (which must exist); return {path: {size, sha256}} of the regular files.

    `label` names the archive in messages (default: its file name).
    """
    if kind not in READERS:
        raise UnsafeInput(f"unknown archive type {kind!r}; expected one of {', '.join(READERS)}")
    job = _Job(label or archive.name, kind, root, cap)
    with Tree(dest, max_entries) as tree, closing(_members(job, archive, max_entries)) as members:
        try:
            for member in members:
                who = f"{job.label}: archive member {member.name!r}"
                rel = job.relative(member.name, who)
                if rel:
                    WRITERS[member.kind](job, tree, member, rel, who)
            tree.check_links()
        except BaseException:
            tree.remove_links()  # whoever keeps `dest` after a failure finds no link out of it
            raise
    if root and not job.files:
        raise UnsafeInput(f"{job.label} has no files under {root!r}; check archive_root in the manifest")
    return job.files


def uncompressed_size(archive: Path, kind: str) -> int | None:
    """What the headers declare (zip only; known without reading the data); None when unknown."""
    if kind != "zip":
        return None
    try:
        with zipfile.ZipFile(archive) as z:
            return sum(i.file_size for i in z.infolist())
    except UNREADABLE:
        return None
