"""One tokenizer: `prepare`'s fast path gives exactly the ids of the tokenizer every export ships
(tokenizer.json), and both follow google-research/bert's algorithm except where the README says."""

from __future__ import annotations

import unicodedata

import pytest
from data_samples import MULTILINGUAL, SAMPLE_TEXT
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertTokenizerLegacy

from bertvault.data.tokenizer import LineEncoder
from bertvault.errors import DataError
from bertvault.formats.tokenizer import build_tokenizer
from bertvault.formats.vocab import looks_cased, read_vocab, vocab_tokens

CHINESE = ["自然语言处理是人工智能的一个分支。", "他说：“我们明天去上海吧！”",
           "混合 text 和中文，还有 English words。"]
# The cases where bertvault's tokenizer departs from google's FullTokenizer (README, "Tokenization").
EDGES = ["ΟΔΟΣ ΠΑΣ ΣΟΦΙΑ", "ΠΑΣ\x00X", "ab\ue000cd", "x\u089dy \U000110cd", "cafe\u0301 Cafe\u0301",
         "a" * 150, "supercalifragilistic" * 9, "İstanbul ıi ẞ ǅ", "tab\tand\u00a0nbsp\u200bzw"]


def _lines() -> list[str]:
    sample = [line.strip() for line in SAMPLE_TEXT.read_text(encoding="utf-8").split("\n")]
    return sample + MULTILINGUAL + CHINESE


def _reference(vocab, lowercase: bool, lines: list[str]) -> list[list[int]]:
    # BertTokenizerLegacy is transformers' pure-Python port of google-research/bert's tokenizer,
    # given google's word limit (the port's default is 100 characters).
    slow = BertTokenizerLegacy(str(vocab), do_lower_case=lowercase)
    slow.wordpiece_tokenizer.max_input_chars_per_word = 200
    return [slow.convert_tokens_to_ids(slow.tokenize(line)) for line in lines]


def _split(ids, counts) -> list[list[int]]:
    got, at = [], 0
    for count in counts.tolist():
        got.append(ids[at : at + count].tolist())
        at += count
    return got


def _shipped(vocab, lowercase: bool, lines: list[str]) -> list[list[int]]:
    """What the exported tokenizer.json gives (the tokenizer every consumer loads)."""
    tokenizer = build_tokenizer(vocab, lowercase)
    return [e.ids for e in tokenizer.encode_batch(lines, add_special_tokens=False)]


@pytest.mark.parametrize("case", ["uncased", "cased"])
def test_prepare_tokenizes_exactly_as_the_shipped_tokenizer(case, uncased_vocab, cased_vocab):
    vocab, lowercase = (uncased_vocab, True) if case == "uncased" else (cased_vocab, False)
    lines = _lines() + EDGES
    ids, counts = LineEncoder(vocab, lowercase).encode_lines(lines)
    assert counts.sum() == len(ids)
    got, expected = _split(ids, counts), _shipped(vocab, lowercase, lines)
    mismatches = [(line, g, e) for line, g, e in zip(lines, got, expected) if g != e]
    assert not mismatches, mismatches[:3]
    assert sum(map(len, expected)) > 1000  # the comparison covered real text


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_TEXT, min_size=1, max_size=8))
def test_prepare_matches_the_shipped_tokenizer_on_any_text(lines, uncased_vocab):
    """Random text from every Unicode block (the memo, the ASCII-space split and the pre-lowering
    must never change an id)."""
    for lowercase in (True, False):
        ids, counts = LineEncoder(uncased_vocab, lowercase).encode_lines(lines)
        assert _split(ids, counts) == _shipped(uncased_vocab, lowercase, lines)


@pytest.mark.parametrize("case", ["uncased", "cased"])
def test_memo_gives_the_same_ids_on_a_second_pass(case, uncased_vocab, cased_vocab):
    vocab, lowercase = (uncased_vocab, True) if case == "uncased" else (cased_vocab, False)
    encoder = LineEncoder(vocab, lowercase)
    first = encoder.encode_lines(_lines())
    second = encoder.encode_lines(_lines())
    assert first[0].tolist() == second[0].tolist() and first[1].tolist() == second[1].tolist()


@pytest.mark.parametrize("case", ["uncased", "cased"])
def test_the_tokenizer_is_googles_on_ordinary_text(case, uncased_vocab, cased_vocab):
    vocab, lowercase = (uncased_vocab, True) if case == "uncased" else (cased_vocab, False)
    # (transformers' port composes text to NFC first, which google's tokenizer does not do)
    lines = [line for line in _lines() if "Σ" not in line and unicodedata.is_normalized("NFC", line)]
    assert len(lines) > 40
    assert _shipped(vocab, lowercase, lines) == _reference(vocab, lowercase, lines)


def _tokens(vocab, lowercase: bool, text: str) -> list[str]:
    return build_tokenizer(vocab, lowercase).encode(text, add_special_tokens=False).tokens


def test_the_documented_departures_from_google(uncased_vocab):
    """Each example the README gives, bertvault's side (google's own tokenization.py, run in the
    conformance suite, gives the other side: ς, [UNK], [UNK], [UNK])."""
    slow = BertTokenizerLegacy(str(uncased_vocab), do_lower_case=True)
    # a word-final capital sigma lower-cases to σ, as every character alone would (google: ς)
    assert _tokens(uncased_vocab, True, "ΟΔΟΣ") == ["ο", "##δ", "##ο", "##σ"]
    assert slow.tokenize("ΟΔΟΣ") == ["ο", "##δ", "##ος"]
    # private-use characters are dropped like control characters (google keeps them: [UNK])
    assert _tokens(uncased_vocab, True, "ab\ue000cd") == ["abc", "##d"]
    # characters the tokenizers library's Unicode tables do not know yet, which Python 3.11's (Unicode
    # 14) do: an Arabic mark (U+089D) google strips as an accent, a format character (U+13430) it
    # drops; bertvault keeps both, and the word becomes [UNK]
    assert _tokens(uncased_vocab, True, "x\u089dy") == ["[UNK]"]
    assert _tokens(uncased_vocab, True, "x\U00013430y") == ["[UNK]"]


def test_words_up_to_200_characters_are_tokenized_as_google_does(uncased_vocab):
    word = "supercalifragilistic" * 9  # 180 characters
    assert _tokens(uncased_vocab, True, word)[0] == "super" and len(_tokens(uncased_vocab, True, word)) > 9
    assert _tokens(uncased_vocab, True, "a" * 201) == ["[UNK]"]


def test_decomposed_accents_stay_decomposed_in_cased_text(cased_vocab):
    """As google's tokenizer (no NFC); transformers' slow tokenizer composes them first."""
    decomposed = _tokens(cased_vocab, False, "Cafe\u0301")
    assert decomposed != _tokens(cased_vocab, False, "Café")


def test_cased_and_uncased_differ_where_they_should(cased_vocab):
    cased = LineEncoder(cased_vocab, False).tokenizer
    uncased = LineEncoder(cased_vocab, True).tokenizer
    tokens = [t.encode("Straße", add_special_tokens=False).tokens for t in (cased, uncased)]
    assert tokens[0] != tokens[1]


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
    assert _split(ids, counts) == _shipped(vocab, lowercase, lines)



# Words the memo has not seen are cut at ASCII punctuation: text dense in punctuation next to what
# could carry across a cut (combining marks NFD might reorder, final sigma, whitespace other than the
# space, control characters, CJK, a 60-character run that WordPiece must still see whole).
_PIECES = [*"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "\u0301", "\u0308\u0323", "Σ", "ς", "\t", "\u00a0",
           "\u3000", "\x00", "\x1c", "\x85", "\r", "中", "İ", "ﬁ", "é", "e\u0301", "ab", "Word", "x" * 60,
           "\ufffd", "–", "“", " "]
_DENSE = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_DENSE, min_size=1, max_size=8), more=st.lists(_DENSE, min_size=1, max_size=8))
def test_cuts_at_punctuation_never_change_an_id(lines, more, uncased_vocab):
    for lowercase in (True, False):
        encoder = LineEncoder(uncased_vocab, lowercase)
        for batch in (lines, more, lines + more):  # later calls meet words and units the memo holds
            ids, counts = encoder.encode_lines(batch)
            assert _split(ids, counts) == _shipped(uncased_vocab, lowercase, batch)


def test_a_line_holding_a_newline_is_still_one_line(uncased_vocab):
    lines = ["one line\nwith a newline", "", "Second, line.", "\n", "x\n\ny"]
    for lowercase in (True, False):
        ids, counts = LineEncoder(uncased_vocab, lowercase).encode_lines(lines)
        assert len(counts) == len(lines)
        assert _split(ids, counts) == _shipped(uncased_vocab, lowercase, lines)


def test_the_memo_stays_bounded(uncased_vocab):
    encoder = LineEncoder(uncased_vocab, True, max_words=50)
    lines = [" ".join(f"w{i}x{j}" for j in range(20)) for i in range(30)]
    for start in range(0, 30, 3):
        ids, counts = encoder.encode_lines(lines[start : start + 3])
        assert _split(ids, counts) == _shipped(uncased_vocab, True, lines[start : start + 3])
        assert len(encoder._words) <= 50 + 60
