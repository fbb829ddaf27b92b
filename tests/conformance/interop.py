"""Shared by the conformance tests (a module of its own: `conftest` is a name every test folder uses).

Conformance: bertvault's outputs, made by the main install (.venv, transformers 5), taken to the
tools users take them to next. This suite runs in .venv-conformance (`make test-conformance`):
google-research/bert's own code under tensorflow.compat.v1 and transformers 4; transformers 5 is
reached by running tests/conformance/hf_probe.py with the main .venv's interpreter.

Every output is made once per session by the real `bertvault` command: conversions of a real
checkpoint (all-MiniLM-L6-v2), and a pretrain and a finetune run from a tiny BERT that has MiniLM's
vocab (so real text tokenizes into real words).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SAMPLE_TEXT = REPO / "bertvault" / "resources" / "sample_text.txt"

# Real text in several scripts: accents, CJK, Cyrillic, punctuation, digits. (Greek final sigma and
# words over 100 characters are left out on purpose: there transformers' BertTokenizer, fast and slow,
# differs from google's FullTokenizer, whatever bertvault writes; see test_transformers.py.)
PARAGRAPH = [
    "The quick brown fox jumps over the lazy dog, and the dog does not mind at all.",
    "Größe, Straße und Äpfel: Ärger über Öl im Büro! L'élève à l'école, ça va? Noël et crème brûlée.",
    "Привет, как дела? Ёжик в тумане идёт домой.",
    "我爱自然语言处理。北京是中国的首都。日本語のテキスト、カタカナとひらがな。",
    "Dvořák, Łódź, Kraków, Øresund and Ångström; naïve café résumé in São Paulo and Zürich.",
    "Numbers 3.14159 and 1,000,000 (sixty-four percent) were written on 2019-07-01 at 10:45.",
]


def main_python() -> str:
    """The main environment's interpreter: $BERTVAULT_MAIN_PYTHON, else the repository's .venv."""
    python = os.environ.get("BERTVAULT_MAIN_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    if not Path(python).is_file():
        pytest.fail(f"the main environment's python ({python}) is missing: run `make install` first "
                    "(`make test-conformance` does) or set BERTVAULT_MAIN_PYTHON")
    return python


def env(home: Path) -> dict[str, str]:
    """bertvault from this checkout, an isolated cache, no network."""
    return {**os.environ, "PYTHONPATH": str(REPO), "BERTVAULT_HOME": str(home / "bv-home"),
            "XDG_CONFIG_HOME": str(home / "config"), "HF_HOME": str(home / "hf"), "HF_HUB_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def google_batch(tokenization, vocab: Path, pairs: list[tuple[str, str]], length: int) -> dict[str, list]:
    """[CLS] A [SEP] B [SEP] by google's FullTokenizer, padded to `length` (the last pair is shortened
    to leave padding)."""
    tokenizer = tokenization.FullTokenizer(str(vocab), do_lower_case=True)
    batch: dict[str, list] = {"input_ids": [], "attention_mask": [], "token_type_ids": []}
    for n, (a, b) in enumerate(pairs):
        tokens_a, tokens_b = tokenizer.tokenize(a), tokenizer.tokenize(b)
        room = length - 3 - (length // 4 if n == len(pairs) - 1 else 0)
        while len(tokens_a) + len(tokens_b) > room:
            (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()
        tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
        pad = length - len(tokens)
        batch["input_ids"].append(tokenizer.convert_tokens_to_ids(tokens) + [0] * pad)
        batch["attention_mask"].append([1] * len(tokens) + [0] * pad)
        batch["token_type_ids"].append([0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1) + [0] * pad)
    return batch


class Probes:
    """hf_probe.py's results, by transformers major version and item name."""

    def __init__(self, folder: Path):
        self.folder = folder

    def outputs(self, version: int, name: str) -> dict:
        import numpy as np

        with np.load(self.folder / f"t{version}" / f"{name}.npz") as data:
            return {k: data[k] for k in data.files}

    def record(self, version: int, name: str) -> dict:
        return json.loads((self.folder / f"t{version}" / f"{name}.json").read_text(encoding="utf-8"))
