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

For an uncased vocab, text is lower-cased before the memo, so "The" and "the" share an entry. The
pipeline lower-cases one character at a time; Python's `str.lower` does too, except that it turns
a word-final 'Σ' into 'ς' where the pipeline gives 'σ': so 'Σ' becomes 'σ' first, and the two agree
(tests/data/test_tokenizer.py checks this on random text from every Unicode block).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from bertvault.formats.tokenizer import build_tokenizer

GROUP = 200  # new units per string sent to the tokenizer
_PUNCT = r"!-/:-@\[-`{-~"  # the 32 ASCII punctuation characters
UNITS = re.compile(rf"[{_PUNCT}]|[^{_PUNCT}]+")


def _lower(line: str) -> str:
    return (line if line.isascii() else line.replace("Σ", "σ")).lower()


class LineEncoder:
    """Token ids of many lines at once, memoizing each space-separated word (see module doc)."""

    def __init__(self, vocab_path: Path, lowercase: bool, max_words: int = 1_000_000):
        self.tokenizer = build_tokenizer(vocab_path, lowercase)
        self.lowercase = lowercase
        self.max_words = max_words
        self._words: dict[str, bytes] = {}  # word -> its ids as int32 bytes
        self._units: dict[str, bytes] = {}

    def _tokenize(self, units: list[str]) -> None:
        """Memoize the ids of new units. They go to the Rust pipeline GROUP to a string and come
        back apart by the character offsets of their tokens."""
        groups = [units[i : i + GROUP] for i in range(0, len(units), GROUP)]
        encodings = self.tokenizer.encode_batch([" ".join(g) for g in groups], add_special_tokens=False)
        for group, encoding in zip(groups, encodings):
            ids = np.asarray(encoding.ids, dtype=np.int32)
            unit_starts = np.cumsum([0] + [len(u) + 1 for u in group[:-1]])
            token_starts = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
            owner = np.searchsorted(unit_starts, token_starts, side="right") - 1
            bounds = np.searchsorted(owner, np.arange(len(group) + 1)).tolist()
            for k, unit in enumerate(group):
                self._units[unit] = ids[bounds[k] : bounds[k + 1]].tobytes()

    def _learn(self, unseen: list[str]) -> list[bytes]:
        """The ids of words the memo lacks, from their units (see the module docstring)."""
        split = [UNITS.findall(word) for word in unseen]
        new = set(itertools.chain.from_iterable(split)).difference(self._units)
        if new:
            self._tokenize(list(new))
        units = self._units
        learned = [b"".join([units[u] for u in parts]) for parts in split]
        self._words.update(zip(unseen, learned))
        return learned

    def _ids_of(self, words: list[str]) -> list[bytes]:
        if len(self._words) > self.max_words:  # a bound on memory, not a cache policy
            self._words.clear()
            self._units.clear()
        found = [self._words.get(w) for w in words]
        missing = [k for k, ids in enumerate(found) if ids is None]
        if missing:
            for k, ids in zip(missing, self._learn([words[k] for k in missing])):
                found[k] = ids
        return found

    def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids of all lines concatenated as int32, number of tokens of each line)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not lines:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        text = "\n".join(lines)
        if self.lowercase:  # see the module docstring: what the pipeline would do, sooner
            text = _lower(text)
        if text.count("\n") == len(lines) - 1:  # one string to arrow, cut there: faster than a list
            lines = pc.split_pattern(pa.array([text], pa.large_string()), "\n").flatten()
        else:  # some line holds a "\n" of its own
            lines = pa.array([_lower(line) for line in lines] if self.lowercase else lines, pa.large_string())
        split = pc.split_pattern(lines, " ")  # every line: at least one word
        numbered = pc.dictionary_encode(split.flatten())
        ids = self._ids_of(numbered.dictionary.to_pylist())
        lengths = np.fromiter(map(len, ids), np.int64, len(ids)) // 4
        table = np.frombuffer(b"".join(ids), np.int32)
        which = numbered.indices.to_numpy()
        counts = lengths[which]  # tokens of each occurrence
        ends = np.cumsum(counts)
        starts = (np.cumsum(lengths) - lengths)[which]
        flat = table[np.repeat(starts - ends + counts, counts) + np.arange(ends[-1])]
        return flat, np.add.reduceat(counts, split.offsets.to_numpy()[:-1])
