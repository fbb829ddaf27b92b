"""`bertvault pin`: write what pulls learned (each file's sha256 and size) into a manifest, so later
pulls and `verify` hold the files to it, and it can be published.

A built-in artifact is never copied: what was learned goes into a `[[pin]]` table (in the user
manifest, or the file given) that the registry lays over the built-in entry, so `list` still shows
it as built-in and later changes to the built-in still reach the user. An artifact the user declared
is updated in its own manifest, or written whole to the file given (to publish it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bertvault import paths
from bertvault.cache import metadata
from bertvault.errors import ManifestError, raise_if
from bertvault.registry.schema import Artifact
from bertvault.registry.user import write_artifact, write_pin


@dataclass
class PinReport:
    artifact: str
    target: Path | None                                # None: nothing new was learned, nothing written
    pinned: list[str] = field(default_factory=list)    # files whose hashes were written
    already: list[str] = field(default_factory=list)   # files the manifest already pins to these values
    unpinned: list[str] = field(default_factory=list)  # never pulled

    def lines(self) -> list[str]:
        said = [f"pinned {len(self.pinned)} files of {self.artifact} in {self.target}" if self.target else
                f"nothing new to pin for {self.artifact}: its manifest already pins every pulled file"]
        if self.unpinned:
            said.append(f"not pulled, so not pinned: {', '.join(self.unpinned)}")
        return said


def _disagreement(artifact: Artifact, path: str, declared: str, held: str) -> str:
    return (f"{path}: the manifest pins sha256 {declared} but the cache holds {held}; "
            f"run `bertvault verify {artifact.name}`")


def learned(artifact: Artifact, records: dict[str, dict]) -> tuple[list[dict], list[str], list[str]]:
    """(what the records add to the manifest, one table per file; paths already pinned to the same
    values; paths never pulled)."""
    files, already, unpinned, problems = [], [], [], []
    for spec in artifact.files:
        record = records.get(spec.path) or {}
        sha, size = record.get("sha256"), record.get("size")
        if not sha:
            unpinned.append(spec.path)
            continue
        if spec.sha256 not in (None, sha):
            problems.append(_disagreement(artifact, spec.path, spec.sha256, sha))
            continue
        new = {key: value for key, value in (("sha256", sha), ("size", size))
               if value is not None and getattr(spec, key) != value}
        if new:
            files.append({"path": spec.path, **new})
        else:
            already.append(spec.path)
    raise_if(problems)
    return files, already, unpinned


def pinned_table(artifact: Artifact, records: dict[str, dict]) -> tuple[dict, list[str]]:
    """The artifact's whole manifest table with sha256 and size filled in from the records (for an
    artifact the user declared); and the paths that stay unpinned because they were never pulled."""
    table = artifact.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    table.update(name=artifact.name, kind=artifact.kind, format=artifact.format)
    problems, unpinned = [], []
    for spec in table["files"]:
        record = records.get(spec["path"])
        if not record or not record.get("sha256"):
            unpinned.append(spec["path"])
            continue
        if spec.get("sha256") not in (None, record["sha256"]):
            problems.append(_disagreement(artifact, spec["path"], spec["sha256"], record["sha256"]))
        spec["sha256"] = record["sha256"]
        spec["size"] = record["size"]
        spec.pop("approx_size", None)
    raise_if(problems)
    return table, unpinned


def pin(name: str, write: Path | None = None) -> PinReport:
    """Pin what the pulls of `name` learned; see the module's docstring for where it goes."""
    from bertvault.registry import load_registry

    entry = load_registry().entry(name)
    artifact = entry.artifact
    records = metadata.read(artifact.name)["files"]
    if not records:
        raise ManifestError(f"{artifact.name} has not been pulled, so there is nothing to pin; "
                            f"run `bertvault pull {artifact.name}` first")
    if not entry.builtin:
        table, unpinned = pinned_table(artifact, records)
        target = write or entry.origin
        write_artifact(target, table, replace=True)
        pinned = [f["path"] for f in table["files"] if f["path"] not in unpinned]
        return PinReport(artifact.name, target, pinned, unpinned=unpinned)
    files, already, unpinned = learned(artifact, records)
    target = write or paths.default_user_manifest()
    if files:
        write_pin(target, artifact.name, files,
                  note=f"hashes first seen at pull time, written by `bertvault pin` on {metadata.now()}")
    return PinReport(artifact.name, target if files else None, [f["path"] for f in files], already, unpinned)
