"""The tokens `prepare` produces equal the pure-Python BERT tokenizer's (google's algorithm)."""

from __future__ import annotations

import pytest
from data_samples import MULTILINGUAL, SAMPLE_TEXT
from transformers import BertTokenizerLegacy

from bertvault.data.tokenizer import LineEncoder
from bertvault.errors import DataError
from bertvault.formats.tokenizer import build_tokenizer
from bertvault.formats.vocab import looks_cased, read_vocab, vocab_tokens

CHINESE = ["自然语言处理是人工智能的一个分支。", "他说：“我们明天去上海吧！”", "混合 text 和中文，还有 English words。"]


def _lines() -> list[str]:
    return [line.strip() for line in SAMPLE_TEXT.read_text(encoding="utf-8").split("\n")] + MULTILINGUAL + CHINESE


def _reference(vocab, lowercase: bool, lines: list[str]) -> list[list[int]]:
    # transformers 5's BertTokenizer is backed by `tokenizers` itself; BertTokenizerLegacy is the
    # pure-Python port of google-research/bert's tokenizer, an independent reference.
    slow = BertTokenizerLegacy(str(vocab), do_lower_case=lowercase)
    return [slow.convert_tokens_to_ids(slow.tokenize(line)) for line in lines]


@pytest.mark.parametrize("case", ["uncased", "cased"])
def test_line_encoder_matches_reference_tokenizer(case, uncased_vocab, cased_vocab):
    vocab, lowercase = (uncased_vocab, True) if case == "uncased" else (cased_vocab, False)
    lines = _lines()
    ids, counts = LineEncoder(vocab, lowercase).encode_lines(lines)
    assert counts.sum() == len(ids)
    got, at = [], 0
    for count in counts.tolist():
        got.append(ids[at : at + count].tolist())
        at += count
    expected = _reference(vocab, lowercase, lines)
    mismatches = [(line, g, e) for line, g, e in zip(lines, got, expected) if g != e]
    assert not mismatches, mismatches[:3]
    assert sum(map(len, expected)) > 1000  # the comparison covered real text


@pytest.mark.parametrize("case", ["uncased", "cased"])
def test_memo_gives_the_same_ids_on_a_second_pass(case, uncased_vocab, cased_vocab):
    vocab, lowercase = (uncased_vocab, True) if case == "uncased" else (cased_vocab, False)
    encoder = LineEncoder(vocab, lowercase)
    first = encoder.encode_lines(_lines())
    second = encoder.encode_lines(_lines())
    assert first[0].tolist() == second[0].tolist() and first[1].tolist() == second[1].tolist()


def test_build_tokenizer_matches_reference_apart_from_final_sigma(uncased_vocab):
    lines = [line for line in _lines() if "Σ" not in line]
    tokenizer = build_tokenizer(uncased_vocab, True)
    got = [e.ids for e in tokenizer.encode_batch(lines, add_special_tokens=False)]
    assert got == _reference(uncased_vocab, True, lines)


def test_cased_and_uncased_differ_where_they_should(cased_vocab):
    cased = LineEncoder(cased_vocab, False).tokenizer
    uncased = LineEncoder(cased_vocab, True).tokenizer
    assert cased.encode("Straße", add_special_tokens=False).tokens != uncased.encode("Straße", add_special_tokens=False).tokens


def test_case_heuristic(uncased_vocab, cased_vocab):
    assert not looks_cased(vocab_tokens(uncased_vocab))
    assert looks_cased(vocab_tokens(cased_vocab))


def test_vocab_without_special_tokens_is_refused(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nhello\nworld\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"lacks \[CLS\], \[SEP\], \[MASK\]"):
        read_vocab(vocab)


def test_vocab_with_crlf_line_ends(tmp_path, uncased_vocab):
    crlf = tmp_path / "vocab.txt"
    crlf.write_bytes(uncased_vocab.read_bytes().replace(b"\n", b"\r\n"))
    assert read_vocab(crlf) == read_vocab(uncased_vocab)


@pytest.mark.parametrize("case", ["uncased", "cased"])
def test_many_new_words_at_once(case, uncased_vocab, cased_vocab):
    """Hundreds of never-seen words per call go to the tokenizer in groups and come back apart."""
    import random

    vocab, lowercase = (uncased_vocab, True) if case == "uncased" else (cased_vocab, False)
    rng = random.Random(4)
    alphabet = "".join(sorted(set("".join(MULTILINGUAL) + "abcdefghijklmnopqrstuvwxyzABCDEFGH,.;:!?'\"()-")))
    lines = [" ".join("".join(rng.choices(alphabet, k=rng.randint(1, 14))) for _ in range(rng.randint(1, 30)))
             for _ in range(300)]
    ids, counts = LineEncoder(vocab, lowercase).encode_lines(lines)
    got, at = [], 0
    for count in counts.tolist():
        got.append(ids[at : at + count].tolist())
        at += count
    assert got == _reference(vocab, lowercase, lines)
