"""The files that travel with the weights: configs, vocab.txt and the tokenizer files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bertvault.convert import config as configs
from bertvault.errors import ConversionError

SPECIAL_TOKENS = {
    "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def _json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_hf_config(folder: Path, config: dict) -> None:
    _json(folder / "config.json", config)


def write_google_config(folder: Path, config: dict) -> None:
    _json(folder / "bert_config.json", configs.to_google(config))


def copy_vocab(folder: Path, vocab: Path | None, *, required: bool, fmt: str) -> None:
    if vocab is None:
        if required:
            raise ConversionError(
                f"a {fmt} output needs vocab.txt and none was found beside the source; pass --vocab FILE"
            )
        return
    shutil.copyfile(vocab, folder / "vocab.txt")


def write_tokenizer(folder: Path, vocab: Path, lowercase: bool, max_length: int) -> None:
    """tokenizer.json (the `tokenizers` WordPiece pipeline) and the configs transformers reads with it:
    the one writer of every HF folder bertvault makes (convert --to hf, pretrain, finetune)."""
    from bertvault.data.tokenizer import build_tokenizer

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
