"""`--vocab-from NAME|PATH`: find the vocab.txt, and what the checkpoint says about case and length.

Case (lower-casing or not), first answer wins:
  1. the registry artifact's `architecture.cased` (a name, or the artifact it takes its vocab from);
  2. `do_lower_case` in a tokenizer_config.json / config.json next to the vocab;
  3. the vocab itself: cased when at least 1% of its ordinary tokens hold an upper-case letter
     (Google's uncased vocab has 2 such tokens in 30522).
Maximum positions: the artifact's architecture, else `max_position_embeddings` in a config.json /
bert_config.json next to the vocab; unknown otherwise (then only the lower bound of --seq-len is checked).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from bertvault.data.tokenizer import looks_cased, read_vocab, vocab_sha256, vocab_tokens
from bertvault.errors import DataError, ManifestError

log = logging.getLogger(__name__)

CONFIG_FILES = ("tokenizer_config.json", "config.json", "bert_config.json")


@dataclass(frozen=True)
class VocabInfo:
    path: Path
    size: int
    sha256: str
    lowercase: bool
    case_from: str  # where the lower-casing default came from, for the log and the header
    max_positions: int | None


def _configs(folder: Path) -> dict:
    merged: dict = {}
    for name in reversed(CONFIG_FILES):  # tokenizer_config.json wins on do_lower_case
        try:
            merged.update(json.loads((folder / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return merged


def _vocab_in(folder: Path) -> Path:
    direct = folder / "vocab.txt"
    if direct.is_file():
        return direct
    found = sorted(folder.rglob("vocab.txt"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"no vocab.txt in {folder}; pass the vocab file itself or a checkpoint folder holding one")
    listed = ", ".join(str(p) for p in found[:5])
    raise DataError(f"{folder} holds {len(found)} vocab.txt files ({listed}); pass the one you mean")


def _from_registry(spec: str) -> tuple[Path, bool | None, int | None, str]:
    """(vocab path, cased, max positions, artifact that told the case) for a registered name, following vocab_from
    (only the artifact that holds the vocab must be pulled)."""
    from bertvault.registry import load_registry
    from bertvault.sources import resolve

    registry = load_registry()
    if spec not in registry:
        resolve(spec)  # raises the registry's "neither a path nor a registered artifact"
    artifact = registry.get(spec)
    cased = positions = None
    case_name = ""
    seen: set[str] = set()
    while True:
        seen.add(artifact.name)
        if artifact.architecture is not None:
            if cased is None:
                cased, case_name = artifact.architecture.cased, artifact.name
            positions = artifact.architecture.max_positions if positions is None else positions
        if not artifact.vocab_from:
            break
        if registry.get(artifact.vocab_from).name in seen:
            raise ManifestError(f"vocab_from of {artifact.name!r} loops back to {artifact.vocab_from!r}")
        artifact = registry.get(artifact.vocab_from)
    return _vocab_in(resolve(artifact.name).path), cased, positions, case_name


def locate(spec: str, lowercase: bool | None = None) -> VocabInfo:
    """Resolve --vocab-from (path to vocab.txt, a folder holding one, or a registered name)."""
    path = Path(spec).expanduser()
    cased, positions, name = None, None, ""
    if path.is_file():
        vocab_path = path
    elif path.is_dir():
        vocab_path = _vocab_in(path)
    elif path.exists():
        raise DataError(f"--vocab-from {spec}: not a file or folder")
    else:
        vocab_path, cased, positions, name = _from_registry(spec)

    tokens = vocab_tokens(vocab_path)
    read_vocab(vocab_path)  # checks the special tokens
    config = _configs(vocab_path.parent)
    if positions is None and isinstance(config.get("max_position_embeddings"), int):
        positions = config["max_position_embeddings"]

    if lowercase is not None:
        case_from = "command line"
    elif cased is not None:
        lowercase, case_from = not cased, f"registry entry {name}"
    elif isinstance(config.get("do_lower_case"), bool):
        lowercase, case_from = config["do_lower_case"], f"do_lower_case in {vocab_path.parent}"
    else:
        lowercase, case_from = not looks_cased(tokens), "vocab heuristic (upper-case tokens)"
    log.info("vocab %s: %d tokens, %s (%s)", vocab_path, len(tokens), "uncased" if lowercase else "cased", case_from)
    return VocabInfo(vocab_path, len(tokens), vocab_sha256(vocab_path), lowercase, case_from, positions)
