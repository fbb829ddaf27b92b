"""What `prepare` was given: expand folders and globs, recognise each file by its first bytes.

Kinds: `text` (UTF-8, optionally gzip-compressed; one sentence per line, blank line between
documents; told from binary data by UTF-8 validity and few control bytes, not by a stray NUL),
`azureml` (a pickle: AzureML-BERT's .bin shards), `tfrecord` (a valid first record header).
Anything else, an empty file, or a missing path is reported, all at once.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bertvault.data import tfrecord
from bertvault.errors import DataError

HEAD = 64 * 1024
# C0 controls other than whitespace, and DEL: at most this share of a text file's first bytes.
_CONTROLS = bytes(c for c in range(32) if c not in b"\t\n\v\f\r") + b"\x7f"
CONTROL_SHARE = 0.1


@dataclass(frozen=True)
class InputFile:
    path: Path
    kind: str  # text | azureml | tfrecord
    size: int  # bytes on disk
    compressed: bool = False


def expand(specs: list[str], problems: list[str]) -> list[Path]:
    """Files named by paths, folders (every non-hidden file below, sorted) and glob patterns."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            if not files:
                problems.append(f"{spec}: folder holds no files")
            found.extend(files)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(spec):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True) if Path(m).is_file())
            if not matches:
                problems.append(f"{spec}: pattern matches no file")
            found.extend(matches)
        else:
            problems.append(f"{spec}: no such file or folder")
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _is_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_text(head: bytes) -> bool:
    """Valid UTF-8 (a character cut by the end of the head allowed) that is not mostly control bytes.
    A stray NUL or other control character is text's (the tokenizer drops it, as google's does);
    a file of them (zero-filled, a binary format of small numbers) is not."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    controls = len(head) - len(head.translate(None, _CONTROLS))
    return controls <= CONTROL_SHARE * len(head)


def _describe(head: bytes) -> str:
    return " ".join(f"{b:02x}" for b in head[:8]) or "nothing"


def detect(path: Path, problems: list[str]) -> InputFile | None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(HEAD)
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror})")
        return None
    if size == 0:
        problems.append(f"{path}: empty file (0 bytes); remove it from the inputs")
        return None
    if tfrecord.is_tfrecord(head):
        return InputFile(path, "tfrecord", size)
    if _is_pickle(head):
        return InputFile(path, "azureml", size)
    compressed = head[:2] == b"\x1f\x8b"
    if compressed:
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(HEAD)
        except (OSError, EOFError, zlib.error) as exc:
            problems.append(f"{path}: gzip file cannot be read ({exc})")
            return None
        if not head:
            problems.append(f"{path}: empty once decompressed; remove it from the inputs")
            return None
    if _is_text(head):
        return InputFile(path, "text", size, compressed)
    problems.append(
        f"{path}: not UTF-8 text, an AzureML .bin shard or a TFRecord file (starts with {_describe(head)}); "
        "expected one sentence per line with blank lines between documents"
    )
    return None


def classify(specs: list[str], problems: list[str] | None = None) -> list[InputFile]:
    """Every input file, recognised; raises once with every problem (those given included)."""
    problems = list(problems or [])
    files = [f for p in expand(specs, problems) if (f := detect(p, problems)) is not None]
    if problems:
        raise DataError(problems)
    if not files:
        raise DataError("no input files; give text files, folders, globs, AzureML .bin shards or TFRecords")
    return files


@dataclass
class TextChunk:
    """Whole documents from one or more text files, cut at a blank line."""

    data: bytes
    bytes_read: int  # on-disk bytes consumed since the previous chunk (for progress)
    forced_cut: bool  # cut inside a document because no blank line came in time


def text_chunks(files: list[InputFile], chunk_bytes: int, warn) -> Iterator[TextChunk]:
    """Concatenate text files (each file ends a document) and cut them into chunks of whole
    documents of about `chunk_bytes`. A document longer than 4 chunks is cut anyway. `warn(path,
    lines, cuts)` hears about every file without a blank line (one document)."""
    lines: list[bytes] = []
    size = pending = 0
    for item in files:
        blank_seen, count, cuts, reported = False, 0, 0, 0
        try:
            with open(item.path, "rb") as raw, (gzip.open(raw, "rb") if item.compressed else raw) as handle:
                for line in handle:
                    count += 1
                    lines.append(line)
                    size += len(line)
                    is_blank = not line.strip()
                    blank_seen |= is_blank
                    if size >= chunk_bytes and (is_blank or size >= 4 * chunk_bytes):
                        cuts += not is_blank
                        position = raw.tell()
                        yield TextChunk(b"".join(lines), pending + position - reported, not is_blank)
                        lines, size, pending, reported = [], 0, 0, position
                pending += raw.tell() - reported
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{item.path}: read failed ({exc})") from None
        if lines and not lines[-1].endswith(b"\n"):
            lines.append(b"\n")
        lines.append(b"\n")  # a file ends its last document
        if not blank_seen and count > 1:
            warn(item.path, count, cuts)
    if any(line.strip() for line in lines):
        yield TextChunk(b"".join(lines), pending, False)
