"""What makes a slash-separated relative path safe to create under a folder on any common filesystem.

One rule set for every path that comes from outside and becomes a file in the cache: a manifest's
file paths (and its shard-series templates, once expanded), `archive_root`, and archive members.
A path is refused, not repaired: `.` and empty segments, `..`, absolute paths and drive letters, NUL
and other control characters (which also break one-line messages and logs), backslashes (a folder
separator on Windows), segments longer than a filesystem allows (255 bytes) and paths long enough
that the folder holding them would pass PATH_MAX once the cache root is in front.
"""

from __future__ import annotations

import re

MAX_SEGMENT = 255     # bytes: NAME_MAX of ext4, xfs, btrfs, APFS and NTFS (in UTF-16 units there)
MAX_PATH = 1024       # bytes: leaves room under PATH_MAX (4096) for the cache root and the view's name

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _size(text: str) -> int:
    """Bytes on disk; lone surrogates (undecodable names that tarfile kept) count as three."""
    return len(text.encode("utf-8", "surrogatepass"))


def _segment_problem(segment: str) -> str | None:
    if segment in ("", "."):
        return "has an empty or '.' segment"
    if segment == "..":
        return "climbs out of its folder with '..'"
    if _size(segment) > MAX_SEGMENT:
        return f"has a segment longer than {MAX_SEGMENT} bytes ({segment[:24]!r}...)"
    return None


def problem(path: str) -> str | None:
    """Why `path` is not a safe relative path (a phrase to follow the path in a message), or None."""
    if not path:
        return "is empty"
    if _CONTROL.search(path):
        return "holds a NUL or another control character"
    if "\\" in path:
        return "holds a backslash; separate folders with '/'"
    if path.startswith("/") or _DRIVE.match(path):
        return "is absolute; give a path relative to the artifact's folder"
    size = _size(path)
    if size > MAX_PATH:
        return f"is {size} bytes long; at most {MAX_PATH} are allowed"
    return next(filter(None, map(_segment_problem, path.split("/"))), None)
