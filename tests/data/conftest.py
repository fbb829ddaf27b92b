"""Fixtures for the pretraining-data tests: real BERT vocabs and small corpora in the google layout."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from data_samples import MINILM, MULTILINGUAL, SAMPLE_TEXT


@pytest.fixture(scope="session")
def uncased_vocab() -> Path:
    """Google's uncased English vocab (30522 tokens), as shipped with a real MiniLM checkpoint."""
    return MINILM / "vocab.txt"


@pytest.fixture(scope="session")
def cased_vocab(tmp_path_factory) -> Path:
    """A cased multilingual WordPiece vocab trained here with the tokenizers library."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    corpus = SAMPLE_TEXT.read_text(encoding="utf-8").split("\n") + MULTILINGUAL
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=1500, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], min_frequency=1
    )
    tokenizer.train_from_iterator(corpus * 3, trainer)
    folder = tmp_path_factory.mktemp("cased-vocab")
    tokenizer.model.save(str(folder))
    return folder / "vocab.txt"


def _sentences() -> list[str]:
    return [line.strip() for line in SAMPLE_TEXT.read_text(encoding="utf-8").split("\n") if line.strip()]


def write_corpus(path: Path, documents: list[list[str]]) -> Path:
    path.write_text("\n\n".join("\n".join(doc) for doc in documents) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def make_corpus(tmp_path):
    """make_corpus(name, documents, seed) writes that many documents of 5-30 real English sentences
    (sample_text.txt's, drawn at random) in the google layout."""

    def make(name: str = "corpus.txt", documents: int = 120, seed: int = 7) -> Path:
        rng = random.Random(seed)
        pool = _sentences()
        docs = [[rng.choice(pool) for _ in range(rng.randint(5, 30))] for _ in range(documents)]
        return write_corpus(tmp_path / name, docs)

    return make


@pytest.fixture
def corpus(make_corpus) -> Path:
    return make_corpus()


def topic_words(vocab_path: Path, documents: int, per_document: int) -> list[list[str]]:
    """Disjoint sets of whole-word vocab entries, one set per document: a token tells its document."""
    tokens = vocab_path.read_text(encoding="utf-8").split("\n")
    words = [t for t in tokens[2000:] if t.isascii() and t.isalpha() and t.islower() and len(t) >= 4]
    assert len(words) >= documents * per_document
    return [words[i * per_document : (i + 1) * per_document] for i in range(documents)]


@pytest.fixture
def topic_corpus(tmp_path, uncased_vocab) -> tuple[Path, dict[str, int]]:
    """150 documents whose words never appear in another document; returns (file, word -> document)."""
    rng = random.Random(11)
    topics = topic_words(uncased_vocab, 150, 30)
    docs = [[" ".join(rng.choices(words, k=rng.randint(4, 25))) for _ in range(rng.randint(3, 40))]
            for words in topics]
    owner = {w: d for d, words in enumerate(topics) for w in words}
    return write_corpus(tmp_path / "topics.txt", docs), owner
