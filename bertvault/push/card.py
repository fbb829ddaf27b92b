"""The model card pushed with an HF folder, written from the manifest and the provenance records."""

from __future__ import annotations

import json
from pathlib import Path

from bertvault import __version__
from bertvault.provenance import read_record
from bertvault.registry.schema import Artifact


def _architecture(folder: Path, artifact: Artifact | None) -> dict:
    config = folder / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size",
                "max_position_embeddings")
        return {k: data[k] for k in keys if k in data}
    return artifact.architecture.model_dump() if artifact and artifact.architecture else {}


def model_card(folder: Path, repo_id: str, artifact: Artifact | None = None) -> str:
    record = read_record(folder) or {}
    license_ = artifact.license.lower() if artifact and artifact.license else None
    front = ["---", "library_name: transformers", "tags:", "- bert", "- bertvault"]
    if license_:
        front.append(f"license: {license_}")
    front.append("---")
    lines = [*front, "", f"# {repo_id}", ""]
    if artifact:
        lines += [
            f"Source: **{artifact.name}** ({artifact.format}) — {artifact.description}",
            f"Publisher: {artifact.publisher or 'unknown'}"
            + (f", {artifact.homepage}" if artifact.homepage else ""),
            f"License: {artifact.license or 'not stated by the publisher'}",
            "",
        ]
    arch = _architecture(folder, artifact)
    if arch:
        lines += ["## Architecture", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in arch.items()]
        lines.append("")
    if record:
        lines += ["## Provenance", "", f"Made by bertvault {record.get('bertvault_version', '?')} "
                  f"(`{record.get('step', '?')}`): `{record.get('command', '')}` "
                  f"on {record.get('created', '?')}.", ""]
        for source in record.get("sources", []):
            lines.append(f"- source `{source.get('artifact') or source.get('source')}`")
            for name, digest in sorted((source.get("files") or {}).items()):
                lines.append(f"  - `{name}` sha256 `{digest}`")
        told = {"step", "bertvault_version", "command", "created", "sources"}
        details = {k: v for k, v in record.items() if k not in told}
        if details:
            lines += ["", "```json", json.dumps(details, indent=2, default=str), "```"]
        lines.append("")
    lines.append(f"Pushed with bertvault {__version__}.")
    return "\n".join(lines) + "\n"
