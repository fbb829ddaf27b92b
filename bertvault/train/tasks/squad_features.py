"""SQuAD features as google-research/bert's run_squad.py builds them, on the project's tokenizer.

For each context: words split at whitespace (space, tab, CR, LF, U+202F), a map from every
character to its word, each word's WordPieces with a map from every piece back to its word. For
each question: its pieces, cut to --max-query-len; then windows over the context's pieces, each
holding at most max_seq_len - query - 3 of them ([CLS] question [SEP] context piece... [SEP]), the
next starting --doc-stride pieces later (or right after the last piece the window held). A piece
seen by several windows is predicted only from the one where it has the most context on its
shorter side (ties: 0.01 per window length, then the first window).

Training answers: the answer's first and last characters give its words, whose pieces give the
span; if the words do not contain the (whitespace-normalised) answer text the question is left
out, as google leaves it out. The span is then narrowed to the tightest run of pieces equal to the
answer text's own pieces ("improved"). A window that does not hold the whole span, and every
window of an unanswerable question, is trained to point at [CLS] (position 0).

Pieces come from `LineEncoder` (data/tokenizer.py), which tokenizes each distinct word once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from bertvault.train.tasks.squad_data import Question, SquadSet

log = logging.getLogger(__name__)

WORD = re.compile(r"[^ \t\r\n\u202f]+")  # google's run_squad.py whitespace: these five characters


@dataclass
class Context:
    """One context, split into words and WordPieces."""

    words: list[str]
    char_to_word: np.ndarray  # character -> word index (-1 before the first word)
    pieces: np.ndarray  # the WordPiece ids of every word, in order
    piece_word: np.ndarray  # piece -> word index
    word_start: np.ndarray  # word -> its first piece; one more entry: the number of pieces


def split_words(text: str) -> tuple[list[str], np.ndarray]:
    """Whitespace-separated words and, for every character, the word it belongs to (or follows)."""
    matches = list(WORD.finditer(text))
    starts = np.fromiter((m.start() for m in matches), dtype=np.int64, count=len(matches))
    char_to_word = np.searchsorted(starts, np.arange(len(text)), side="right") - 1
    return [m.group() for m in matches], char_to_word.astype(np.int32)


def _split_ids(ids: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(ids, np.cumsum(counts)[:-1]) if len(counts) else []


def tokenize_contexts(contexts: list[str], encoder) -> list[Context]:
    """All contexts in one pass through the encoder (its memo makes repeated words free)."""
    split = [split_words(text) for text in contexts]
    all_words = [w for words, _ in split for w in words]
    ids, counts = encoder.encode_lines(all_words)
    out, first_word, first_piece = [], 0, 0
    for words, char_to_word in split:
        n = len(words)
        word_counts = counts[first_word : first_word + n]
        total = int(word_counts.sum())
        word_start = np.concatenate([[0], np.cumsum(word_counts)]).astype(np.int32)
        piece_word = np.repeat(np.arange(n, dtype=np.int32), word_counts)
        pieces = ids[first_piece : first_piece + total]
        out.append(Context(words, char_to_word, pieces, piece_word, word_start))
        first_word, first_piece = first_word + n, first_piece + total
    return out


def windows(pieces: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over `pieces` pieces, `room` at most each (google's doc spans)."""
    spans, start = [], 0
    while start < pieces:
        length = min(pieces - start, room)
        spans.append((start, length))
        if start + length == pieces:
            break
        start += min(length, stride)
    return spans or [(0, 0)]


def max_context(spans: list[tuple[int, int]], pieces: int) -> np.ndarray:
    """For every piece, the window that gives it the most context (google's _check_is_max_context)."""
    position = np.arange(pieces)
    scores = np.full((len(spans), pieces), -np.inf)
    for w, (start, length) in enumerate(spans):
        inside = slice(start, start + length)
        left, right = position[inside] - start, start + length - 1 - position[inside]
        scores[w, inside] = np.minimum(left, right) + 0.01 * length
    return scores.argmax(axis=0)  # the first window among equals, as google's strict > keeps it


def improve_span(pieces: np.ndarray, start: int, end: int, answer: np.ndarray) -> tuple[int, int]:
    """The tightest [start, end] inside the given one whose pieces equal the answer's own pieces.

    google tries every (start, end) pair, starts rising and ends falling; only pairs as long as the
    answer can match, so trying each start with the one end that fits finds the same pair.
    """
    n = len(answer)
    for new_start in range(start, end - n + 2 if n else start):
        if np.array_equal(pieces[new_start : new_start + n], answer):
            return new_start, new_start + n - 1
    return start, end


@dataclass
class Features:
    """Every window of a split, as parallel arrays; `queries` are per question."""

    contexts: list[Context]
    queries: list[np.ndarray]  # per question: its pieces, cut to --max-query-len
    paragraph: list[int]  # per question: its context
    question: list[int] = field(default_factory=list)  # question index
    window: list[int] = field(default_factory=list)  # the window's number among its question's
    start: list[int] = field(default_factory=list)  # first context piece in the window
    length: list[int] = field(default_factory=list)  # context pieces in the window
    max_context: list[np.ndarray] = field(default_factory=list)  # per piece of the window: predict here?
    start_position: list[int] = field(default_factory=list)  # training targets (0: [CLS])
    end_position: list[int] = field(default_factory=list)
    skipped: int = 0  # training questions whose answer text is not in the context's words

    def __len__(self) -> int:
        return len(self.question)

    def offset(self, f: int) -> int:
        """Position of the window's first context piece in the sequence: after [CLS] question [SEP]."""
        return len(self.queries[self.question[f]]) + 2


def answer_pieces(question: Question, context: Context, answer_ids: np.ndarray) -> tuple[int, int] | None:
    """The answer's piece span in the context (improved), or None when its words do not hold it."""
    answer = question.answers[0]
    first = int(context.char_to_word[answer.start])
    last = int(context.char_to_word[answer.start + len(answer.text) - 1])
    actual = " ".join(context.words[first : last + 1])
    if actual.find(" ".join(answer.text.split())) == -1:
        return None
    start, end = int(context.word_start[first]), int(context.word_start[last + 1]) - 1
    return improve_span(context.pieces, start, end, answer_ids)


def _targets(span: tuple[int, int] | None, start: int, length: int, offset: int) -> tuple[int, int]:
    if span is None or not (span[0] >= start and span[1] <= start + length - 1):
        return 0, 0
    return span[0] - start + offset, span[1] - start + offset


def build_features(squad: SquadSet, encoder, max_seq_len: int, max_query_len: int, doc_stride: int,
                   training: bool) -> Features:
    contexts = tokenize_contexts(squad.contexts, encoder)
    ids, counts = encoder.encode_lines([q.text.replace("\n", " ") for q in squad.questions])
    queries = [q[:max_query_len] for q in _split_ids(ids, counts)]
    answers: list[np.ndarray] = []
    if training:
        texts = [q.answers[0].text.replace("\n", " ") if q.answers else "" for q in squad.questions]
        answers = _split_ids(*encoder.encode_lines(texts))
    features = Features(contexts, queries, [q.paragraph for q in squad.questions])
    layouts: dict[tuple[int, int], tuple[list, np.ndarray]] = {}  # (context, room) -> windows, max context
    for qi, question in enumerate(squad.questions):
        context = contexts[question.paragraph]
        room = max_seq_len - len(queries[qi]) - 3
        key = (question.paragraph, room)
        if key not in layouts:
            spans = windows(len(context.pieces), room, doc_stride)
            layouts[key] = spans, max_context(spans, len(context.pieces))
        spans, best = layouts[key]
        span = None
        if training and not question.impossible:
            span = answer_pieces(question, context, answers[qi])
            if span is None:
                features.skipped += 1
                continue
        for w, (start, length) in enumerate(spans):
            features.question.append(qi)
            features.window.append(w)
            features.start.append(start)
            features.length.append(length)
            features.max_context.append(best[start : start + length] == w)
            s, e = _targets(span, start, length, len(queries[qi]) + 2)
            features.start_position.append(s)
            features.end_position.append(e)
    if features.skipped:
        log.warning("%s: %d training questions left out: the answer text is not in the context's words "
                    "(google's run_squad.py leaves them out too)", squad.path, features.skipped)
    return features


def input_ids(features: Features, f: int, cls_id: int, sep_id: int) -> np.ndarray:
    """[CLS] question [SEP] the window's context pieces [SEP]."""
    question = features.question[f]
    context = features.contexts[features.paragraph[question]]
    start, length = features.start[f], features.length[f]
    pieces = context.pieces[start : start + length]
    parts = [[cls_id], features.queries[question], [sep_id], pieces, [sep_id]]
    return np.concatenate(parts).astype(np.int64)
