"""The fast path of bertvault's one tokenizer, for `prepare`: many lines at once, each word tokenized once.

The tokenizer itself is `formats.tokenizer.build_tokenizer` (the `tokenizers` WordPiece pipeline,
saved as the tokenizer.json of every export); `LineEncoder` gives exactly its ids, only faster.
Natural text repeats its words (Zipf), so the ids of every space-separated word are memoized:
pyarrow splits the lines into words and numbers the distinct ones (in C++, a few ns a word), only
those are looked up in the memo, and numpy lays out the ids of every occurrence.

A word the memo has not seen is cut into units, each an ASCII punctuation character or a run of
other characters ("(see", "foo.bar()" → "(", "see"; "foo", ".", "bar", "(", ")"), and only units
never seen before go to the pipeline. Web and documentation text has a long tail of such words
(hundreds of thousands in 40 MB) built from a much smaller set of units, and the pipeline costs
several µs a word. `encode_batch` gets them a few hundred to a string (a call per unit costs ~15 µs,
mostly per-call overhead) and they come back apart by the character offsets of their tokens.

Both cuts are exact. The pipeline's normalizer works one character at a time (NFD, when uncased,
cannot combine across a space or an ASCII punctuation character: both are starters), and its
pre-tokenizer ends a pre-token at every space and isolates every punctuation character, so a
line's tokens are the concatenation of its words' tokens and a word's of its units' tokens.

For an uncased vocab, new words are lower-cased before they are cut, so "The" and "the" share
their units (lower-casing whole chunks instead costs more than the memo's extra entries). The
pipeline lower-cases one character at a time; Python's `str.lower` does too, except that it turns
a word-final 'Σ' into 'ς' where the pipeline gives 'σ': so 'Σ' becomes 'σ' first, and the two agree
(tests/data/test_tokenizer.py checks this on random text from every Unicode block).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bertvault.formats.tokenizer import build_tokenizer

GROUP = 200  # new units per string sent to the tokenizer
_PUNCT = r"!-/:-@\[-`{-~"  # the 32 ASCII punctuation characters
UNITS = re.compile(rf"[{_PUNCT}]|[^{_PUNCT}]+")


def _lower(text: str) -> str:
    return (text if text.isascii() else text.replace("Σ", "σ")).lower()


class LineEncoder:
    """Token ids of many lines at once, memoizing each space-separated word (see module doc)."""

    def __init__(self, vocab_path: Path, lowercase: bool, max_words: int = 1_000_000):
        self.tokenizer = build_tokenizer(vocab_path, lowercase)
        self.lowercase = lowercase
        self.max_words = max_words
        self._words: dict[str, bytes] = {}  # word -> its ids as int32 bytes
        self._units: dict[str, bytes] = {}

    def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids of all lines concatenated as int32, number of tokens of each line)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not lines:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if len(self._words) > self.max_words:  # a bound on memory, not a cache policy
            self._words.clear()
            self._units.clear()
        text = "\n".join(lines)
        if text.count("\n") == len(lines) - 1:  # one string to arrow: "\n" is a word that ends a line
            words = pc.split_pattern(pa.array([text.replace("\n", " \n ")], pa.large_string()), " ").flatten()
            ids, counts, which, codes = _ids(words, self._words, self._learn)
            ends = np.flatnonzero(which == codes.get("\n", -1))
            bounds = np.cumsum(counts)[np.append(ends, len(counts) - 1)]
            return ids, np.diff(bounds, prepend=0)
        # some line holds a "\n" of its own
        words = pc.split_pattern(pa.array(lines, pa.large_string()), " ")  # every line: at least one word
        ids, counts, _, _ = _ids(words.flatten(), self._words, self._learn)
        return ids, np.add.reduceat(counts, words.offsets.to_numpy()[:-1])

    def _learn(self, words: list[str]) -> list[bytes]:
        """The ids of words the memo lacks, from their units (see the module docstring): one regular
        expression puts spaces around every ASCII punctuation character of them all, and the units
        go through the memo of units as words go through the memo of words."""
        import pyarrow as pa
        import pyarrow.compute as pc

        joined = "\n".join(words)
        if self.lowercase:  # see the module docstring: what the pipeline would do, sooner
            joined = _lower(joined)
        if joined.count("\n") == len(words) - 1:
            joined = pa.array([joined], pa.large_string())
            spaced = pc.replace_substring_regex(joined, f"([{_PUNCT}])", r" \1 ")
            units = pc.split_pattern(pc.split_pattern(spaced, "\n").flatten(), " ")
        else:  # a word holding a "\n" (a line of its own does)
            lowered = [_lower(word) for word in words] if self.lowercase else words
            units = pa.array([UNITS.findall(word) for word in lowered], pa.large_list(pa.large_string()))
        ids, counts, _, _ = _ids(units.flatten(), self._units, self._tokenize)
        ends = np.cumsum(np.add.reduceat(counts, units.offsets.to_numpy()[:-1])) * 4  # a unit or more a word
        raw = ids.tobytes()
        learned = [raw[a:b] for a, b in zip([0, *ends[:-1].tolist()], ends.tolist())]
        self._words.update(zip(words, learned))
        return learned

    def _tokenize(self, units: list[str]) -> list[bytes]:
        """The ids of new units from the Rust pipeline, memoized. They go GROUP to a string and come
        back apart by the character offsets of their tokens."""
        groups = [units[i : i + GROUP] for i in range(0, len(units), GROUP)]
        encodings = self.tokenizer.encode_batch([" ".join(g) for g in groups], add_special_tokens=False)
        learned = []
        for group, encoding in zip(groups, encodings):
            ids = np.asarray(encoding.ids, dtype=np.int32)
            unit_starts = np.cumsum([0] + [len(u) + 1 for u in group[:-1]])
            token_starts = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
            owner = np.searchsorted(unit_starts, token_starts, side="right") - 1
            bounds = np.searchsorted(owner, np.arange(len(group) + 1)).tolist()
            learned += [ids[bounds[k] : bounds[k + 1]].tobytes() for k in range(len(group))]
        self._units.update(zip(units, learned))
        return learned


def _ids(pieces, memo: dict[str, bytes], learn) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Token ids of a pyarrow array of strings: (all ids as int32, count per piece, each piece's number
    among the distinct ones, those numbers). Each distinct piece is looked up once; `learn` gives the
    ids of those `memo` lacks."""
    import pyarrow.compute as pc

    numbered = pc.dictionary_encode(pieces)
    distinct = numbered.dictionary.to_pylist()
    found = [memo.get(piece) for piece in distinct]
    missing = [k for k, ids in enumerate(found) if ids is None and distinct[k] not in ("", "\n")]
    if missing:
        for k, ids in zip(missing, learn([distinct[k] for k in missing])):
            found[k] = ids
    codes = {piece: k for k, piece in enumerate(distinct) if found[k] is None}  # "" and "\n": no tokens
    for k in codes.values():
        found[k] = b""
    lengths = np.fromiter(map(len, found), np.int64, len(found)) // 4
    table = np.frombuffer(b"".join(found), np.int32)
    which = numbered.indices.to_numpy(zero_copy_only=False)
    counts = lengths[which]
    ends = np.cumsum(counts)
    starts = (np.cumsum(lengths) - lengths)[which]
    ids = table[np.repeat(starts - ends + counts, counts) + np.arange(ends[-1] if len(ends) else 0)]
    return ids, counts, which, codes
