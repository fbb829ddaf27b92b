"""Builders of hostile archives: any sequence of files, folders, links and hardlinks as zip or tar.gz,
and the ways a stream gets damaged (a bad deflate block, a bad CRC, an encrypted member, an unknown
compression method, a truncation, a damaged tar header)."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import stat
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class E:
    """One archive entry: kind is file, dir, sym (target in `arg`) or hard (tar only; earlier member)."""

    kind: str
    name: str
    arg: bytes | str = b""


def F(name: str, data: bytes = b"x") -> E:
    return E("file", name, data)


def D(name: str) -> E:
    return E("dir", name)


def S(name: str, target: str) -> E:
    return E("sym", name, target)


def H(name: str, target: str) -> E:
    return E("hard", name, target)


_TAR_TYPES = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}


def tar_bytes(entries: list[E], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            if fmt == tarfile.PAX_FORMAT:  # a pax record carries a name exactly: NUL, 300 bytes, any
                info.pax_headers = {"path": entry.name}
                if entry.kind == "sym":
                    info.pax_headers["linkpath"] = str(entry.arg)
            if entry.kind == "file":
                info.size = len(entry.arg)
                tar.addfile(info, io.BytesIO(entry.arg))  # type: ignore[arg-type]
            else:
                info.type, info.linkname = _TAR_TYPES[entry.kind], str(entry.arg)
                info.mode = 0o755 if entry.kind == "dir" else 0o777
                tar.addfile(info)
    return buffer.getvalue()


def make_tar(path: Path, entries: list[E]) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(entries), mtime=0))
    return path


def make_zip(path: Path, entries: list[E], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name + ("/" if entry.kind == "dir" else ""))
            info.create_system = 3
            info.compress_type = compression
            if entry.kind == "file":
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                archive.writestr(info, entry.arg)
            elif entry.kind == "dir":
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                archive.writestr(info, b"")
            elif entry.kind == "sym":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, str(entry.arg))
            else:
                raise ValueError("zip has no hardlinks")
    return path


BUILD = {"zip": make_zip, "tar.gz": make_tar}


def build(kind: str, folder: Path, entries: list[E]) -> Path:
    return BUILD[kind](folder / f"archive.{kind}", entries)


# --- damage -------------------------------------------------------------------------------------

def _zip_offsets(path: Path, name: str) -> tuple[int, int, int]:
    """(local header offset, data offset, central directory entry offset) of member `name`."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    local = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[local + 26: local + 30])
    central = data.index(b"PK\x01\x02")
    while data[central + 46: central + 46 + len(name.encode())] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    return local, local + 30 + name_len + extra_len, central


def _patch(path: Path, offset: int, new: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[offset: offset + len(new)] = new
    path.write_bytes(bytes(data))
    return path


def bad_deflate(folder: Path) -> Path:
    """A deflated member whose first block has the reserved block type 3: zlib refuses it."""
    path = make_zip(folder / "bad-deflate.zip", [F("weights.bin", b"abc" * 5000)])
    _, start, _ = _zip_offsets(path, "weights.bin")
    return _patch(path, start, b"\xff")


def bad_crc(folder: Path) -> Path:
    path = make_zip(folder / "bad-crc.zip", [F("vocab.txt", b"[PAD]\n[UNK]\n")],
                    compression=zipfile.ZIP_STORED)
    _, start, _ = _zip_offsets(path, "vocab.txt")
    return _patch(path, start, b"[BAD]")


def encrypted(folder: Path) -> Path:
    """Bit 0 of the flags says "encrypted" in the local header and the central directory."""
    path = make_zip(folder / "encrypted.zip", [F("a.txt", b"secret")], compression=zipfile.ZIP_STORED)
    local, _, central = _zip_offsets(path, "a.txt")
    _patch(path, local + 6, b"\x01\x00")
    return _patch(path, central + 8, b"\x01\x00")


def unknown_method(folder: Path, method: int = 99) -> Path:
    path = make_zip(folder / "method.zip", [F("a.txt", b"data")], compression=zipfile.ZIP_STORED)
    local, _, central = _zip_offsets(path, "a.txt")
    _patch(path, local + 8, struct.pack("<H", method))
    return _patch(path, central + 10, struct.pack("<H", method))


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut-" + path.name)
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def damaged_tar_header(folder: Path) -> Path:
    """The second member's header checksum is wrong; the gzip stream around it is intact."""
    raw = bytearray(tar_bytes([F("one.txt", b"1" * 10), F("two.txt", b"2" * 10), F("three.txt", b"3")],
                              fmt=tarfile.USTAR_FORMAT))
    second = 512 + 512  # header + one data block of the first member
    raw[second + 148: second + 156] = b"0000000\0"
    path = folder / "bad-header.tar.gz"
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))
    return path


def corrupt_gzip(folder: Path) -> Path:
    """A byte of a member's data flipped inside the gzip stream: every tar header still reads, and only
    gzip's CRC at the end of the stream tells."""
    noise = random.Random(14).randbytes(2000)
    raw = tar_bytes([F("f0.bin", b"0" * 100), F("f1.bin", noise), F("f2.bin"), F("f3.bin")])
    data = bytearray(gzip.compress(raw, compresslevel=0, mtime=0))  # stored blocks: the bytes appear as is
    where = data.index(noise[1000:1016])
    data[where] ^= 0x5A
    out = folder / "corrupt.tar.gz"
    out.write_bytes(bytes(data))
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
