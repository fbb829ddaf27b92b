"""The files that travel with the weights: config.json, bert_config.json and vocab.txt (the tokenizer's
files are written by formats.tokenizer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bertvault.errors import ConversionError
from bertvault.formats import google_config


def _json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_hf_config(folder: Path, config: dict) -> None:
    _json(folder / "config.json", config)


def write_google_config(folder: Path, config: dict) -> None:
    _json(folder / "bert_config.json", google_config.from_hf(config))


def copy_vocab(folder: Path, vocab: Path | None, *, required: bool, fmt: str) -> None:
    if vocab is None:
        if required:
            raise ConversionError(
                f"a {fmt} output needs vocab.txt and none was found beside the source; pass --vocab FILE"
            )
        return
    shutil.copyfile(vocab, folder / "vocab.txt")
