"""BERT's tokenizer built with the `tokenizers` library from a checkpoint's vocab.txt."""

from __future__ import annotations

from pathlib import Path

from bertvault.errors import DataError

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt: one token per line, the line number is its id. Special tokens must be present."""
    try:
        tokens = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read vocab {path}: {exc}") from None
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)
    missing = [t for t in SPECIAL if t not in vocab]
    if missing:
        raise DataError(f"vocab {path} lacks {', '.join(missing)}; use a BERT vocab.txt")
    return vocab


def build_tokenizer(vocab_path: Path, lowercase: bool):
    """WordPiece with BERT's normalizer (lower-casing and accent stripping when uncased, CJK split)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = read_vocab(vocab_path)
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer
