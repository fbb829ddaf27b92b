"""A tiny BERT (2 layers, hidden 32) saved as a Hugging Face folder, with a vocab built from the sample
text."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
REPO = Path(__file__).resolve().parents[2]


def small_vocab(text: str, words: int = 400) -> list[str]:
    """Specials, every character (alone and as '##' piece), then the most frequent lower-cased words."""
    lowered = text.lower()
    chars = sorted({c for c in lowered if not c.isspace()})
    counts = collections.Counter(re.findall(r"[a-z]+", lowered))
    common = [w for w, _ in counts.most_common(words) if len(w) > 1]
    tokens = SPECIALS + chars + [f"##{c}" for c in chars] + common
    return list(dict.fromkeys(tokens))


def write_tiny_bert(folder: Path, vocab: list[str], seed: int = 0, dropout: float = 0.1,
                    max_positions: int = 128) -> Path:
    import torch
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    model = BertForPreTraining(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true}', encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def vocab_tokens(tmp_path_factory) -> list[str]:
    text = (REPO / "bertvault" / "resources" / "sample_text.txt").read_text(encoding="utf-8")
    return small_vocab(text)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, vocab_tokens) -> Path:
    """Heads included, dropout 0.1."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny") / "tiny-bert", vocab_tokens)


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory, tiny_bert) -> Path:
    """sample_text.txt prepared once as native shards with the tiny vocab (seq 64)."""
    from bertvault.data import prepare

    out = tmp_path_factory.mktemp("prepared") / "sample"
    options = prepare.Options(seq_len=64, max_predictions=10, seed=1, dupe_factor=4)
    plan = prepare.plan([str(REPO / "bertvault" / "resources" / "sample_text.txt")],
                        str(tiny_bert / "vocab.txt"), str(out), options, lowercase=True)
    prepare.run(plan)
    return out


def _bertvault(*args: str, env: dict | None = None, timeout: int = 300, check: bool = True):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run([sys.executable, "-m", "bertvault", *map(str, args)], capture_output=True,
                            text=True, check=False, env=full_env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"bertvault {' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stderr[-4000:]}")
    return result


@pytest.fixture
def bertvault():
    """Runs the real CLI in a subprocess, as a user would: bertvault("pretrain", "--from", ...)."""
    return _bertvault


@pytest.fixture
def read_metrics():
    def read(out: Path) -> list[dict]:
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    return read
