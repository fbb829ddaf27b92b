"""`--vocab-from NAME|PATH`: the vocab.txt, whether its text is lower-cased, and the model's length.

The vocab and its case come from `sources.resolve(..., "vocab")` (one rule for every command; see
sources.py). Maximum positions: the registered architecture (of the artifact or the one it takes
its vocab from), else `max_position_embeddings` in a config.json / bert_config.json next to the
vocab; unknown otherwise (then only the lower bound of --seq-len is checked).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bertvault import sources
from bertvault.formats.vocab import read_vocab, vocab_sha256, vocab_tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VocabInfo:
    path: Path
    size: int
    sha256: str
    lowercase: bool
    case_from: str  # where the lower-casing default came from, for the log and the header
    max_positions: int | None


def locate(spec: str, lowercase: bool | None = None) -> VocabInfo:
    """Resolve --vocab-from (path to vocab.txt, a folder holding one, or a registered name)."""
    source = sources.resolve(spec, "vocab", lowercase=lowercase)
    vocab_path = source.vocab
    assert vocab_path is not None
    tokens = vocab_tokens(vocab_path)
    read_vocab(vocab_path)  # checks the special tokens
    architecture = source.architecture()
    positions = architecture.max_positions if architecture is not None else None
    if positions is None:
        configured = sources.case_files(vocab_path.parent).get("max_position_embeddings")
        positions = configured if isinstance(configured, int) else None
    case = "uncased" if source.lowercase else "cased"
    log.info("vocab %s: %d tokens, %s (%s)", vocab_path, len(tokens), case, source.case_from)
    return VocabInfo(vocab_path, len(tokens), vocab_sha256(vocab_path), bool(source.lowercase),
                     source.case_from, positions)
