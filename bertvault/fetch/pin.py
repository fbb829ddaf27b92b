"""`bertvault pin`: write the hashes observed at pull time into a manifest, so they can be published
and every later pull and `verify` holds the files to them."""

from __future__ import annotations

from pathlib import Path

from bertvault import paths
from bertvault.cache import metadata
from bertvault.errors import ManifestError
from bertvault.registry.user import write_artifact


def pinned_table(artifact, records: dict[str, dict]) -> tuple[dict, list[str]]:
    """The artifact's manifest table with sha256 and size filled in from the records; and the paths
    that stay unpinned because they were never pulled."""
    table = artifact.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    table.update(name=artifact.name, kind=artifact.kind, format=artifact.format)
    problems, unpinned = [], []
    for spec in table["files"]:
        record = records.get(spec["path"])
        if not record or not record.get("sha256"):
            unpinned.append(spec["path"])
            continue
        if spec.get("sha256") not in (None, record["sha256"]):
            problems.append(f"{spec['path']}: the manifest pins sha256 {spec['sha256']} but the cache holds "
                            f"{record['sha256']}; run `bertvault verify {artifact.name}`")
        spec["sha256"] = record["sha256"]
        spec["size"] = record["size"]
    if problems:
        raise ManifestError(problems)
    return table, unpinned


def pin(name: str, write: Path | None = None) -> tuple[Path, list[str], list[str]]:
    """Pin `name`; return (manifest written, pinned paths, unpinned paths)."""
    from bertvault.registry import load_registry

    entry = load_registry().entry(name)
    artifact = entry.artifact
    records = metadata.read(artifact.name)["files"]
    if not records:
        raise ManifestError(f"{artifact.name} has not been pulled, so there is nothing to pin; "
                            f"run `bertvault pull {artifact.name}` first")
    table, unpinned = pinned_table(artifact, records)
    target = write or (entry.origin if not entry.builtin else paths.default_user_manifest())
    write_artifact(target, table, replace=True)
    pinned = [f["path"] for f in table["files"] if f["path"] not in unpinned]
    return target, pinned, unpinned
