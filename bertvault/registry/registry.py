"""The registry: built-in manifests plus the user's, merged, cross-checked and looked up by name."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator
from pathlib import Path

from bertvault import paths
from bertvault.errors import ManifestError
from bertvault.registry.loader import Entry, ManifestFile, PinEntry, manifest_files, read_manifest_file
from bertvault.registry.schema import Artifact


def _index(entries: list[Entry], problems: list[str]) -> dict[str, Entry]:
    """Entries by name; a name declared twice in the same group is a problem."""
    by_name: dict[str, Entry] = {}
    for entry in entries:
        name = entry.artifact.name
        if name in by_name:
            problems.append(f"artifact {name!r} is declared twice: "
                            f"in {by_name[name].origin} and {entry.origin}")
        else:
            by_name[name] = entry
    return by_name


class Registry:
    """Every known artifact. User entries override built-ins of the same name; pins add what was
    learned later (hashes, sizes, a commit) onto an entry without replacing it."""

    def __init__(self, builtin: list[Entry], user: list[Entry] = (),  # type: ignore[assignment]
                 pins: list[PinEntry] = ()):  # type: ignore[assignment]
        problems: list[str] = []
        merged = _index(builtin, problems)
        user_index = _index(list(user), problems)
        self.overridden = {name for name in user_index if name in merged}
        merged.update(user_index)
        self._entries = dict(sorted(merged.items()))

        self._lookup: dict[str, str] = {name: name for name in self._entries}
        for name, entry in self._entries.items():
            for alias in entry.artifact.aliases:
                owner = self._lookup.get(alias)
                if owner is not None and owner != name:
                    problems.append(
                        f"{alias!r} names both {owner!r} ({self._entries[owner].origin}) "
                        f"and {name!r} ({entry.origin}); rename one"
                    )
                self._lookup.setdefault(alias, name)
        self.pinned_by: dict[str, list[Path]] = {}
        self._apply_pins(list(pins), problems)

        for name, entry in self._entries.items():
            artifact = entry.artifact
            for ref in [artifact.vocab_from or "", *artifact.same_weights_as]:
                if ref and ref not in self._lookup:
                    problems.append(f"{entry.origin}: artifact {name!r} refers to unknown artifact {ref!r}")
        if problems:
            raise ManifestError(problems)

    def _apply_pins(self, pins: list[PinEntry], problems: list[str]) -> None:
        """Lay each pin over its artifact; a file pinned by two manifests, or a pin of an unknown
        artifact or file, is a problem (no manifest silently wins over another)."""
        seen: dict[tuple[str, str], Path] = {}
        for item in pins:
            name = self._lookup.get(item.pin.name)
            if name is None:
                problems.append(f"{item.origin}: pin of unknown artifact {item.pin.name!r}"
                                f"{self.suggest(item.pin.name)}")
                continue
            for f in item.pin.files:
                other = seen.setdefault((name, f.path), item.origin)
                if other != item.origin:
                    problems.append(f"{name}/{f.path} is pinned in both {other} and {item.origin}; keep one")
            entry = self._entries[name]
            try:
                artifact = item.pin.apply(entry.artifact)
            except ValueError as exc:
                problems.append(f"{item.origin}: pin of {name!r}: {exc}")
                continue
            self._entries[name] = Entry(artifact, entry.origin, entry.builtin)
            self.pinned_by.setdefault(name, []).append(item.origin)

    def __iter__(self) -> Iterator[Artifact]:
        return (entry.artifact for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._lookup

    def suggest(self, name: str) -> str:
        """'; did you mean ...?' naming each close artifact once (by its name, however many of its
        aliases are close), or a pointer to `bertvault list`."""
        close = difflib.get_close_matches(name, self._lookup, n=12, cutoff=0.6)
        spelling: dict[str, str] = {}  # owner -> its closest spelling (name or alias), best first
        for candidate in close:
            spelling.setdefault(self._lookup[candidate], candidate)
        shown = list(spelling.values())[:3]
        return f"; did you mean {', '.join(repr(c) for c in shown)}?" if shown else "; see `bertvault list`"

    def entry(self, name: str) -> Entry:
        """The entry for a name or alias; an unknown name raises with close suggestions."""
        try:
            return self._entries[self._lookup[name]]
        except KeyError:
            raise ManifestError(f"unknown artifact {name!r}{self.suggest(name)}") from None

    def get(self, name: str) -> Artifact:
        return self.entry(name).artifact

    def same_weights(self, name: str) -> list[str]:
        """Every artifact linked to `name` by same_weights_as, in either direction, transitively."""
        start = self.get(name).name
        links: dict[str, set[str]] = {}
        for artifact in self:
            for ref in artifact.same_weights_as:
                other = self.get(ref).name
                links.setdefault(artifact.name, set()).add(other)
                links.setdefault(other, set()).add(artifact.name)
        seen, todo = {start}, [start]
        while todo:
            for other in links.get(todo.pop(), ()):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return sorted(seen - {start})


def load_builtin_entries() -> list[Entry]:
    directory = paths.builtin_manifests_dir()
    if not directory.is_dir():
        raise ManifestError(f"built-in manifests not found at {directory}; reinstall bertvault")
    return _read_all(manifest_files([directory]), builtin=True).entries


def _stamp(file: Path) -> tuple:
    stat = file.stat()
    return str(file.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino


@functools.lru_cache(maxsize=256)
def _parsed(stamp: tuple, builtin: bool) -> ManifestFile:
    """One manifest file, parsed once per process for as long as it is unchanged on disk."""
    return read_manifest_file(Path(stamp[0]), builtin=builtin)


def _read_all(files: list[Path], *, builtin: bool) -> ManifestFile:
    entries: list[Entry] = []
    pins: list[PinEntry] = []
    problems: list[str] = []
    for file in files:
        try:
            parsed = _parsed(_stamp(file), builtin)
            entries.extend(parsed.entries)
            pins.extend(parsed.pins)
        except OSError as exc:
            problems.append(f"{file}: cannot read manifest: {exc.strerror or exc}")
        except ManifestError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    return ManifestFile(entries, pins)


def _build(builtin: list[Path], user: list[Path]) -> Registry:
    ours, theirs = _read_all(builtin, builtin=True), _read_all(user, builtin=False)
    return Registry(ours.entries, theirs.entries, [*ours.pins, *theirs.pins])


@functools.lru_cache(maxsize=16)
def _registry(builtin: tuple[tuple, ...], user: tuple[tuple, ...]) -> Registry:
    return _build([Path(s[0]) for s in builtin], [Path(s[0]) for s in user])


def load_registry(extra: list[Path] = ()) -> Registry:  # type: ignore[assignment]
    """Built-in manifests, then $BERTVAULT_MANIFESTS and the user's config folder, then `extra`.

    Built once per process for a given set of unchanged manifest files: a command that looks up
    several names (or one many times) reads and validates each manifest once."""
    directory = paths.builtin_manifests_dir()
    if not directory.is_dir():
        raise ManifestError(f"built-in manifests not found at {directory}; reinstall bertvault")
    builtin = manifest_files([directory])
    user = manifest_files([*paths.user_manifest_sources(), *extra])
    try:
        return _registry(tuple(_stamp(f) for f in builtin), tuple(_stamp(f) for f in user))
    except OSError:  # a file vanished between listing and reading: read what is there now
        return _build(builtin, user)
