"""The fast path of bertvault's one tokenizer, for `prepare`: many lines at once, each word tokenized once.

The tokenizer itself is `formats.tokenizer.build_tokenizer` (the `tokenizers` WordPiece pipeline,
saved as the tokenizer.json of every export); `LineEncoder` gives exactly its ids, only faster. The
pipeline costs about 1-2 µs per word here, while natural text repeats its words (Zipf), so the ids
of every space-separated word are memoized and only unseen words go to `encode_batch` (grouped into
strings of a few hundred words, split back by token offsets). Splitting at ASCII spaces is exact:
a space always ends a pre-token, and every step before WordPiece works on one character at a time
(NFD cannot combine across a space, which is a starter), so a line's tokens are the concatenation
of its words' tokens.

For an uncased vocab, text is lower-cased before the memo, so "The" and "the" share an entry. The
pipeline lower-cases one character at a time; Python's `str.lower` does too, except that it turns
a word-final 'Σ' into 'ς' where the pipeline gives 'σ': so 'Σ' becomes 'σ' first, and the two agree
(tests/data/test_tokenizer.py checks this on random text from every Unicode block).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertvault.formats.tokenizer import build_tokenizer

GROUP = 200  # new words per string sent to the tokenizer
_LINE_END = np.array([-1], dtype=np.int32).tobytes()


class LineEncoder:
    """Token ids of many lines at once, memoizing each space-separated word (see module doc)."""

    def __init__(self, vocab_path: Path, lowercase: bool, max_words: int = 1_000_000):
        self.tokenizer = build_tokenizer(vocab_path, lowercase)
        self.lowercase = lowercase
        self.max_words = max_words
        self._words: dict[str, bytes] = {}
        self._reset()

    def _reset(self) -> None:
        self._words.clear()
        self._words.update({"": b"", "\n": _LINE_END})  # lines never hold "\n": a safe marker

    def _learn(self, unseen: list[str]) -> None:
        """Memoize the ids of new words. They go to the Rust pipeline GROUP to a string (a call
        per word costs ~15 µs here, mostly per-call overhead) and come back apart by the
        character offsets of their tokens."""
        groups = [unseen[i : i + GROUP] for i in range(0, len(unseen), GROUP)]
        encodings = self.tokenizer.encode_batch([" ".join(g) for g in groups], add_special_tokens=False)
        for group, encoding in zip(groups, encodings):
            ids = np.asarray(encoding.ids, dtype=np.int32)
            word_starts = np.cumsum([0] + [len(w) + 1 for w in group[:-1]])
            token_starts = np.fromiter((start for start, _ in encoding.offsets), dtype=np.int64, count=len(ids))
            owner = np.searchsorted(word_starts, token_starts, side="right") - 1
            bounds = np.searchsorted(owner, np.arange(len(group) + 1)).tolist()
            for k, word in enumerate(group):
                self._words[word] = ids[bounds[k] : bounds[k + 1]].tobytes()

    def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids of all lines concatenated as int32, number of tokens of each line)."""
        if not lines:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        text = " \n ".join(lines) + " \n"
        if self.lowercase:  # see the module docstring: what the pipeline would do, sooner
            text = (text if text.isascii() else text.replace("Σ", "σ")).lower()
        words = text.split(" ")
        if len(self._words) > self.max_words:
            self._reset()
        unseen = list(set(words).difference(self._words))
        if unseen:
            self._learn(unseen)
        flat = np.frombuffer(b"".join(map(self._words.__getitem__, words)), dtype=np.int32)
        ends = np.flatnonzero(flat == -1)
        counts = np.diff(ends, prepend=-1) - 1
        return flat[flat != -1], counts
