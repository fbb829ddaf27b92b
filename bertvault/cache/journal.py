"""The journal beside a partial file: which remote it holds and which byte ranges are written.

Line 1 is a JSON header with what identifies the remote's bytes (fetch/journal.py's validators) and
the boot id. Later lines are appended, each the full set of finished ranges at one moment:
  {"w": [[start, end], ...]}   written (in the page cache): valid after a kill -9, since the kernel
                               keeps what a dead process wrote, as long as the machine did not reboot
  {"s": [[start, end], ...]}   synced: the data file was fdatasync'ed first; valid after a power loss
On load, the last line counts if the boot id is unchanged, else the last "s" line. A line torn
by a crash is ignored; the journal only ever under-states what is on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bertvault.io.ranges import RangeSet

_COMPACT_AFTER = 2000  # lines


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _ranges(entry: object) -> RangeSet:
    return RangeSet([(int(s), int(e)) for s, e in entry])  # type: ignore[union-attr]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = None
        self._header: dict = {}
        self._lines = 0
        self._last: dict[str, list] = {}

    def load(self) -> tuple[dict, RangeSet] | None:
        """(header, finished ranges) from disk, or None if there is no usable journal."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            header = json.loads(lines[0])
        except (OSError, UnicodeDecodeError, IndexError, ValueError):
            return None
        same_boot = bool(header.get("boot")) and header.get("boot") == boot_id()
        kinds = ("w", "s") if same_boot else ("s",)
        for line in reversed(lines[1:]):
            try:
                entry = json.loads(line)
                kind = next((k for k in kinds if k in entry), None)
                if kind:
                    return header, _ranges(entry[kind])
            except (ValueError, TypeError, AttributeError):
                continue  # torn by a crash mid-write
        return header, RangeSet()

    def start(self, header: dict, done: RangeSet | None = None, *, synced: bool = False) -> None:
        """Begin a journal whose header is `header` (what identifies the remote's bytes), keeping
        `done` when resuming (synced: its data is on disk)."""
        self.close()
        self._header = {**header, "boot": boot_id()}
        self._last = {}
        if done is not None and done.total():
            self._last = {"w": done.pairs(), **({"s": done.pairs()} if synced else {})}
        self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".new")
        lines = [json.dumps(self._header)] + [json.dumps({k: v}) for k, v in self._last.items()]
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
        self._lines = len(lines)

    def commit(self, done: RangeSet, *, synced: bool) -> None:
        """Append the finished ranges. With synced=True the caller has fdatasync'ed the data."""
        kind = "s" if synced else "w"
        pairs = done.pairs()
        if self._last.get(kind) == pairs:
            return
        self._last[kind] = pairs
        if self._lines >= _COMPACT_AFTER:
            self.close()
            self._rewrite()
            return
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._file.write(json.dumps({kind: pairs}) + "\n")
        self._file.flush()
        self._lines += 1
        if synced:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
