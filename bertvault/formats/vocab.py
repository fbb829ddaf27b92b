"""vocab.txt: a checkpoint's WordPiece vocabulary, one token per line, the line number its id."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bertvault.errors import DataError

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# A vocab counts as cased when this share of its ordinary tokens holds an upper-case letter:
# Google's uncased vocab has 2 in 30522 ('ℝ', '##ℝ'), a cased one has thousands.
CASED_SHARE = 0.01


def vocab_tokens(path: Path) -> list[str]:
    """The tokens of a vocab.txt in id order (one per line; '\\r\\n' endings tolerated)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read vocab {path}: {exc}") from None
    # split("\n"), not splitlines(): a token may legally hold characters like U+2028.
    tokens = [line.removesuffix("\r") for line in text.split("\n")]
    if tokens and tokens[-1] == "":
        tokens.pop()
    return tokens


def read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt: one token per line, the line number is its id. Special tokens must be present."""
    vocab: dict[str, int] = {}
    for index, token in enumerate(vocab_tokens(path)):
        vocab.setdefault(token, index)
    missing = [t for t in SPECIAL if t not in vocab]
    if missing:
        raise DataError(f"vocab {path} lacks {', '.join(missing)}; use a BERT vocab.txt")
    return vocab


def vocab_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def looks_cased(tokens: list[str]) -> bool:
    """Heuristic for a vocab without a config: do ordinary tokens carry upper-case letters?"""
    ordinary = [t for t in tokens if not (t.startswith("[") and t.endswith("]"))]
    upper = sum(1 for t in ordinary if any(c.isupper() for c in t))
    return bool(ordinary) and upper / len(ordinary) >= CASED_SHARE
