"""Provenance: every artifact bertvault writes carries a record of where it came from.

`provenance.json` sits inside an output folder (or beside an output file as `<file>.provenance.json`):
the sources with their sha256, the bertvault version, the command line, when, and step-specific
details (conversion check, training settings). `bertvault info PATH` shows it.
"""

from __future__ import annotations

import glob
import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from bertvault import __version__
from bertvault.io.atomic import write_file
from bertvault.sources import Source

RECORD = "provenance.json"


def record_path(output: Path) -> Path:
    return output / RECORD if output.is_dir() else output.with_name(output.name + ".provenance.json")


HASH_LIMIT = 8 << 30  # sources larger than this (a whole corpus) are listed by size, not re-hashed


def describe_source(source: str | Path, artifact: str | None = None, root: Path | None = None, *,
                    stop: threading.Event | None = None) -> dict:
    """A source as the record lists it: name or path, and the sha256 of each of its files.
    `root` is where a registered name or URL was found locally (the cache view). Setting `stop`
    abandons the hashing (see `start_describe`)."""
    from bertvault.cache import digests

    path = Path(root or source)
    entry: dict = {"source": str(source)}
    if artifact:
        entry["artifact"] = artifact
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.is_file() and f.name != RECORD and not f.name.startswith(".")
    ) if path.is_dir() else []
    base = path.parent if path.is_file() else path
    if sum(f.stat().st_size for f in files) <= HASH_LIMIT:
        entry["files"] = {str(f.relative_to(base)): digests.sha256_of(f, stop) for f in files}
    else:
        entry["sizes"] = {str(f.relative_to(base)): f.stat().st_size for f in files}
    return entry


class Describing:
    """`describe_source` running in a background thread: hashing reads the source while the caller
    converts it (file reads and hashlib release the GIL)."""

    def __init__(self, source: str | Path, artifact: str | None = None, root: Path | None = None):
        self._stop = threading.Event()
        self._value: dict | None = None
        self._error: BaseException | None = None
        # daemon: a command that fails and drops its record does not wait at exit for the hashing
        self._thread = threading.Thread(target=self._run, args=(source, artifact, root),
                                        name="provenance-hash", daemon=True)
        self._thread.start()

    def _run(self, source: str | Path, artifact: str | None, root: Path | None) -> None:
        try:
            self._value = describe_source(source, artifact, root, stop=self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result, in its thread
            self._error = exc

    def result(self) -> dict:
        """What `describe_source` returns (or raises)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def cancel(self) -> None:
        """The result is not wanted: stop reading soon."""
        self._stop.set()


def start_describe(source: str | Path, artifact: str | None = None, root: Path | None = None) -> Describing:
    """Start `describe_source(source, artifact, root)` in the background; `.result()` gives its dict."""
    return Describing(source, artifact, root)


def located(source: Source, read: Path | None = None) -> tuple[str, str | None, Path]:
    """(what the user typed, the registered name, what to hash) for a resolved source; `read` is
    the file, TF prefix or folder a reader took (a TF prefix names no file: its folder is hashed)."""
    root = source.path if read is None else read if read.exists() else read.parent
    return source.text, source.artifact.name if source.artifact else None, root


def describe(source: Source | str | None) -> dict:
    """describe_source for a resolved source (a glob of data files: every match); a bare string
    is a source with nothing to hash (`scratch`)."""
    if not isinstance(source, Source):
        return {"source": source or "none"}
    if source.is_pattern:
        entry: dict = {"source": source.text, "files": {}}
        for match in sorted(Path(p) for p in glob.glob(str(source.path))):
            entry["files"].update(describe_source(match).get("files", {}))
        return entry
    return describe_source(*located(source))


def write_record(output: Path, step: str, sources: list[dict], **details: object) -> Path:
    """Write the record for `output` atomically; `step` is convert, pretrain, finetune, prepare..."""
    record = {
        "step": step,
        "bertvault_version": __version__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": sources,
        **details,
    }
    return write_file(record_path(output), json.dumps(record, indent=2, default=str))


def read_record(output: Path) -> dict | None:
    """The record of an output bertvault wrote; None when there is none or it is not a JSON object."""
    try:
        record = json.loads(record_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
