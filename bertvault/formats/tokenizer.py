"""BERT's tokenizer, built with the `tokenizers` library from a vocab.txt, and the files that carry it.

`build_tokenizer` is the one tokenizer of bertvault: `prepare`, `pretrain` (raw text), `finetune`
and every HF export use it, and `write_files` writes it for `AutoTokenizer` (tokenizer.json,
tokenizer_config.json, special_tokens_map.json, vocab.txt), so a model tokenizes the same text
into the same ids wherever it goes next.

It is google-research/bert's algorithm (BERT normalizer: control characters removed, CJK characters
split, lower-casing and accent stripping when uncased; punctuation and whitespace split; greedy
longest-match WordPiece, words of up to 200 characters as google's, where transformers' slow
tokenizer stops at 100). Where it departs from google's FullTokenizer, the README's
"Tokenization" section lists each case with an example, and tests/data/test_tokenizer.py pins them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bertvault.formats.vocab import read_vocab

MAX_WORD = 200  # characters; a longer word is [UNK] (google's limit)
SPECIAL_TOKENS = {
    "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def build_tokenizer(vocab_path: Path, lowercase: bool):
    """WordPiece with BERT's normalizer (lower-casing and accent stripping when uncased, CJK split)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = read_vocab(vocab_path)
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_WORD))
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


def _json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_files(folder: Path, vocab: Path, lowercase: bool, max_length: int) -> None:
    """vocab.txt, tokenizer.json and the configs `AutoTokenizer.from_pretrained(folder)` reads."""
    if vocab.resolve() != (folder / "vocab.txt").resolve():
        shutil.copyfile(vocab, folder / "vocab.txt")
    build_tokenizer(vocab, lowercase).save(str(folder / "tokenizer.json"))
    _json(folder / "tokenizer_config.json", {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": lowercase,
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "model_max_length": max_length,
        **SPECIAL_TOKENS,
    })
    _json(folder / "special_tokens_map.json", SPECIAL_TOKENS)
