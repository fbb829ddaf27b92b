"""`bertvault pin`: write the hashes observed at pull time into a manifest, so they can be published
and every later pull and `verify` holds the files to them."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import tomli_w

from bertvault import paths
from bertvault.cache import metadata
from bertvault.cache.owners import new_tag
from bertvault.errors import ManifestError
from bertvault.registry.loader import read_manifest


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


def write_table(target: Path, table: dict) -> None:
    """Replace the artifact's table in `target` (or append it), atomically, and check the result."""
    data: dict = {"artifact": []}
    if target.exists():
        try:
            data = tomllib.loads(target.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"{target}: invalid TOML: {exc}; fix it before pinning into it") from None
    tables = [t for t in data.get("artifact", []) if t.get("name") != table["name"]]
    data["artifact"] = [*tables, table]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{new_tag()}.tmp")
    try:
        with open(tmp, "wb") as out:
            tomli_w.dump(data, out)
        read_manifest(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


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
    write_table(target, table)
    pinned = [f["path"] for f in table["files"] if f["path"] not in unpinned]
    return target, pinned, unpinned
