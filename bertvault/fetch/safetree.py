"""Writing a tree of files into a folder so that nothing lands, or is read, outside it.

Safe by construction rather than by checking names: every path is walked from the folder's own
descriptor one segment at a time with O_NOFOLLOW, so a link made earlier (by the same archive or
another one) is never followed when writing or copying; files are created with O_EXCL, so nothing
made earlier is overwritten. Links are created as asked (a relative target that does not climb out
on paper) and checked once the tree is complete: each must resolve, on the real tree, to something
inside the folder. A dangling link is refused too, because an entry added later could make it
resolve outside. The number of entries created is capped (a bomb of empty files or folders).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from bertvault.errors import UnsafeInput

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINK = 1024  # bytes of a link's target

# What an entry found in the way is called in a message.
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFREG: "a file", stat.S_IFLNK: "a link"}

# Write errors that the names or shapes in the input cause; anything else (a full disk) is raised as is.
_REFUSED = {
    errno.ENAMETOOLONG: "has a name too long for this filesystem",
    errno.EILSEQ: "has a name this filesystem cannot store",
    errno.EINVAL: "has a name this filesystem cannot store",
}


class Tree:
    """The destination folder, written only through descriptors of folders inside it."""

    def __init__(self, root: Path, max_entries: int) -> None:
        self.root = root
        self.max_entries = max_entries
        self.entries = 0
        self.links: list[tuple[str, str, str]] = []  # (path, target, who) of the links made here
        self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, who: str) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise UnsafeInput(f"{who}: more than {self.max_entries} files, folders and links; "
                              "refusing a possible bomb of many small entries")

    @staticmethod
    def _in_the_way(fd: int, name: str, rel: str, who: str, wanted: str, through: bool) -> UnsafeInput:
        found = _KINDS.get(stat.S_IFMT(os.lstat(name, dir_fd=fd).st_mode), "something else")
        how = "passes through" if through else "clashes with"
        return UnsafeInput(f"{who} {how} {found} at {rel!r} made by an earlier entry (needs {wanted} there)")

    def _descend(self, fd: int, name: str, rel: str, who: str, create: bool, through: bool = True) -> int:
        """The folder `name` in `fd`, opened without following a link; made when missing and `create`."""
        try:
            return os.open(name, _DIR, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise UnsafeInput(f"{who}: {rel!r} is not in the archive") from None
        except NotADirectoryError:
            raise self._in_the_way(fd, name, rel, who, "a folder", through) from None
        self._count(who)
        os.mkdir(name, 0o755, dir_fd=fd)
        return os.open(name, _DIR, dir_fd=fd)

    @contextmanager
    def _parent(self, rel: str, who: str, create: bool = True) -> Iterator[tuple[int, str]]:
        """The descriptor of `rel`'s folder (made as needed, never through a link) and its last name."""
        *folders, name = rel.split("/")
        fd = os.dup(self._fd)
        try:
            with _refusing(who):
                for depth, folder in enumerate(folders):
                    inner = self._descend(fd, folder, "/".join(folders[: depth + 1]), who, create)
                    os.close(fd)
                    fd = inner
            yield fd, name
        finally:
            os.close(fd)

    def mkdir(self, rel: str, who: str) -> None:
        with self._parent(rel, who) as (fd, name), _refusing(who):
            os.close(self._descend(fd, name, rel, who, create=True, through=False))

    @contextmanager
    def create(self, rel: str, who: str, mode: int) -> Iterator[IO[bytes]]:
        """A new regular file, open for writing; an entry already there is a clash."""
        with self._parent(rel, who) as (fd, name):
            with _refusing(who):
                try:
                    out = os.open(name, _NEW, 0o600, dir_fd=fd)
                except FileExistsError:
                    raise self._in_the_way(fd, name, rel, who, "a new file", through=False) from None
            self._count(who)
            with os.fdopen(out, "wb") as file:
                yield file
                os.fchmod(file.fileno(), mode)

    def read(self, rel: str, who: str) -> IO[bytes]:
        """A regular file made earlier, opened without following any link."""
        with self._parent(rel, who, create=False) as (fd, name), _refusing(who):
            try:
                source = os.open(name, _READ, dir_fd=fd)
            except FileNotFoundError:
                raise UnsafeInput(f"{who}: {rel!r} is not in the archive") from None
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise UnsafeInput(f"{who} points at a link ({rel!r}), not a file") from None
        file = os.fdopen(source, "rb")
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            file.close()
            raise UnsafeInput(f"{who} points at {rel!r}, which is not a file")
        return file

    def symlink(self, rel: str, target: str, who: str) -> None:
        if not target or "\0" in target or len(os.fsencode(target)) > MAX_LINK:
            raise UnsafeInput(f"{who} is a link with an empty, NUL-holding or overlong target")
        lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        if target.startswith("/") or lexical == ".." or lexical.startswith("../"):
            raise UnsafeInput(f"{who} links outside the folder (to {target!r})")
        with self._parent(rel, who) as (fd, name), _refusing(who):
            try:
                os.symlink(target, name, dir_fd=fd)
            except FileExistsError:
                raise self._in_the_way(fd, name, rel, who, "a new link", through=False) from None
        self._count(who)
        self.links.append((rel, target, who))

    def check_links(self) -> None:
        """Every link made here resolves, on the tree as it now is, to an entry inside the folder.

        On a refusal every link made here is removed first, so the folder points nowhere outside.
        """
        home = os.path.realpath(self.root)
        for rel, target, who in self.links:
            reason = _escape(home, self.root / rel, target)
            if reason:
                self.remove_links()
                raise UnsafeInput(f"{who} {reason}")

    def remove_links(self) -> None:
        """Remove the links made here (an extraction that failed leaves nothing that points out)."""
        for rel, _, _ in self.links:
            with suppress(OSError):  # each sits at a real path made here, so unlink removes the link itself
                os.unlink(self.root / rel)
        self.links.clear()


def _escape(home: str, link: Path, target: str) -> str | None:
    """Why the link at `link` is refused, or None when it resolves inside `home`."""
    try:
        resolved = os.path.realpath(link, strict=True)
    except FileNotFoundError:
        return f"points to {target!r}, which is not in the archive (dangling links are refused)"
    except NotADirectoryError:
        return f"points to {target!r}, which passes through a file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"is part of a loop of links (to {target!r})"
        return f"cannot be resolved (to {target!r}): {exc.strerror}"
    if os.path.commonpath([home, resolved]) != home:
        return f"links outside the folder (to {target!r}, which resolves through earlier links to outside it)"
    return None


@contextmanager
def _refusing(who: str) -> Iterator[None]:
    """Turn the write errors a hostile name causes into UnsafeInput; let the rest (ENOSPC) through."""
    try:
        yield
    except OSError as exc:
        reason = _REFUSED.get(exc.errno or 0)
        if reason is None:
            raise
        raise UnsafeInput(f"{who} {reason}") from None
