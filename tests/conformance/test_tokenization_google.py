"""The README's table of departures from google's FullTokenizer, google's column: google-research/bert's
own tokenization.py, run here, gives exactly what the table says (bertvault's column is pinned by
tests/data/test_tokenizer.py in the main suite). Everything else tokenizes alike."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.conformance

# text -> google's tokens (the README's rows), for an uncased vocab
DEPARTURES = {
    "ΟΔΟΣ": ["ο", "##δ", "##ος"],
    "ab\ue000cd": ["[UNK]"],
    "x\u089dy": ["x", "##y"],
    "x\U00013430y": ["x", "##y"],
}


def test_googles_side_of_each_documented_departure(google, minilm):
    full = google.tokenization.FullTokenizer(str(minilm / "vocab.txt"), do_lower_case=True)
    assert {text: full.tokenize(text) for text in DEPARTURES} == DEPARTURES


def test_ordinary_text_tokenizes_as_google_does(google, minilm):
    """Real text, many scripts, long words: the one tokenizer's ids equal google's."""
    from interop import PARAGRAPH

    from bertvault.formats.tokenizer import build_tokenizer

    full = google.tokenization.FullTokenizer(str(minilm / "vocab.txt"), do_lower_case=True)
    ours = build_tokenizer(minilm / "vocab.txt", True)
    lines = [*PARAGRAPH, "a " + "ab" * 80 + " word of 160 characters", "naïve café Ünïcödé 東京 ½ — test"]
    assert [ours.encode(line, add_special_tokens=False).ids for line in lines] == \
        [full.convert_tokens_to_ids(full.tokenize(line)) for line in lines]
