"""Answers from start/end logits, as google-research/bert's run_squad.py (write_predictions) finds them.

For each window: the n best start and the n best end positions (by logit, over the window's
tokens); a pair is a candidate when both fall on context pieces, the start is one this window has
the most context for, the end is not before the start and the answer is at most
--max-answer-len pieces long. All candidates of a question, over all its windows, are ranked by
start + end logit; the first n distinct answer texts are its n-best. A text is found by joining the
pieces ("##" glued back), then projected onto the original words of the span ("Steve Smith's" for
the pieces "steve smith" gives "Steve Smith"): `final_text` aligns the two character by character
once spaces are set aside, and falls back to the original words when it cannot.

SQuAD 2.0: the no-answer score of a question is the lowest start + end logit of [CLS] over its
windows; it joins the candidates as the empty answer. `null_odds` is that score minus the best
non-empty answer's: the official v2.0 script's "na_prob", above the threshold the answer is "".

One difference from google: google ranks padding positions too, and then drops them, which can
leave fewer than n candidates; here the ranking covers the window's tokens only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from bertvault.train.tasks.squad_data import SquadSet
from bertvault.train.tasks.squad_features import Features

NO_ANSWER_SCORE_CAP = 1e9  # null_odds of a question whose n-best holds no non-empty answer


@dataclass(frozen=True)
class Prediction:
    text: str
    start_logit: float
    end_logit: float

    @property
    def score(self) -> float:
        return self.start_logit + self.end_logit


@dataclass
class Decoded:
    answers: dict[str, str] = field(default_factory=dict)  # v1.1: the best answer; v2.0: the best non-empty
    nbest: dict[str, list[dict]] = field(default_factory=dict)
    null_odds: dict[str, float] = field(default_factory=dict)  # v2.0 only

    def predictions(self, threshold: float | None) -> dict[str, str]:
        """v2.0: '' where the no-answer score passes the threshold; v1.1 (threshold None): the answers."""
        if threshold is None:
            return dict(self.answers)
        return {qid: "" if self.null_odds[qid] > threshold else text for qid, text in self.answers.items()}


class BasicTokens:
    """google's BasicTokenizer, which final_text re-tokenizes the original words with: the project
    tokenizer's own normalizer and pre-tokenizer (the pieces were made by the same)."""

    def __init__(self, tokenizer):
        self.normalizer, self.pre_tokenizer = tokenizer.normalizer, tokenizer.pre_tokenizer

    def __call__(self, text: str) -> list[str]:
        normalized = self.normalizer.normalize_str(text)
        return [token for token, _ in self.pre_tokenizer.pre_tokenize_str(normalized)]


def _without_spaces(text: str) -> tuple[str, list[int]]:
    """The text with its spaces removed, and each remaining character's index in the text."""
    kept = [i for i, c in enumerate(text) if c != " "]
    return "".join(text[i] for i in kept), kept


def final_text(predicted: str, original: str, basic: BasicTokens) -> str:
    """The part of `original` (the span's words) that the normalised `predicted` text covers."""
    tokenized = " ".join(basic(original))
    start = tokenized.find(predicted)
    if start == -1:
        return original
    end = start + len(predicted) - 1
    original_chars, original_index = _without_spaces(original)
    tokenized_chars, tokenized_index = _without_spaces(tokenized)
    if len(original_chars) != len(tokenized_chars):
        return original  # the normalisation changed lengths (accents, ...): no 1:1 alignment
    position = {index: k for k, index in enumerate(tokenized_index)}  # tokenized -> space-free
    if start not in position or end not in position:
        return original
    return original[original_index[position[start]] : original_index[position[end]] + 1]


def piece_text(tokens: list[str], ids: np.ndarray) -> str:
    text = " ".join(tokens[i] for i in ids).replace(" ##", "").replace("##", "")
    return " ".join(text.strip().split())


def best_indexes(logits: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-logits, kind="stable")[:n]  # ties keep their order, as google's sorted() does


def window_candidates(features: Features, f: int, logits: np.ndarray, n_best: int,
                      max_answer_len: int) -> list[tuple[float, int, int, int, float, float]]:
    """(score, feature, start, end, start logit, end logit) of a window's valid spans, in google's order."""
    offset, length = features.offset(f), features.length[f]
    starts, ends = best_indexes(logits[0], n_best), best_indexes(logits[1], n_best)
    s, e = np.meshgrid(starts, ends, indexing="ij")  # start-major, as google's two loops
    s, e = s.ravel(), e.ravel()
    valid = (s >= offset) & (s < offset + length) & (e >= offset) & (e < offset + length)
    valid &= (e >= s) & (e - s + 1 <= max_answer_len)
    valid[valid] = features.max_context[f][s[valid] - offset]
    return [(float(logits[0][a] + logits[1][b]), f, int(a), int(b), float(logits[0][a]), float(logits[1][b]))
            for a, b in zip(s[valid], e[valid], strict=True)]


class Decoder:
    def __init__(self, squad: SquadSet, features: Features, tokens: list[str], basic: BasicTokens,
                 n_best: int, max_answer_len: int, version_2: bool):
        self.squad, self.features, self.tokens, self.basic = squad, features, tokens, basic
        self.n_best, self.max_answer_len, self.version_2 = n_best, max_answer_len, version_2

    def _text(self, f: int, start: int, end: int) -> str:
        features = self.features
        context = features.contexts[features.paragraph[features.question[f]]]
        first = features.start[f] + start - features.offset(f)
        last = features.start[f] + end - features.offset(f)
        original = " ".join(context.words[context.piece_word[first] : context.piece_word[last] + 1])
        return final_text(piece_text(self.tokens, context.pieces[first : last + 1]), original, self.basic)

    def _null(self, windows: list[int], outputs: list[np.ndarray]) -> Prediction | None:
        if not self.version_2:
            return None
        best = min(windows, key=lambda f: outputs[f][0][0] + outputs[f][1][0])  # the first of equals
        return Prediction("", float(outputs[best][0][0]), float(outputs[best][1][0]))

    def nbest(self, windows: list[int],
              outputs: list[np.ndarray]) -> tuple[list[Prediction], Prediction | None]:
        """A question's n-best answers over its windows, and its no-answer prediction (v2.0)."""
        n, longest = self.n_best, self.max_answer_len
        candidates = [c for f in windows for c in window_candidates(self.features, f, outputs[f], n, longest)]
        null = self._null(windows, outputs)
        if null is not None:
            candidates.append((null.score, -1, 0, 0, null.start_logit, null.end_logit))
        candidates.sort(key=lambda c: c[0], reverse=True)  # stable: ties keep google's order
        chosen: list[Prediction] = []
        seen: set[str] = set()
        for _, f, start, end, start_logit, end_logit in candidates:
            if len(chosen) >= self.n_best:
                break
            text = self._text(f, start, end) if f >= 0 else ""
            if text not in seen:
                seen.add(text)
                chosen.append(Prediction(text, start_logit, end_logit))
        if null is not None and "" not in seen:
            chosen.append(null)
        return chosen or [Prediction("empty", 0.0, 0.0)], null  # google's placeholder when nothing is valid

    def decode(self, outputs: list[np.ndarray]) -> Decoded:
        by_question: dict[int, list[int]] = defaultdict(list)
        for f, q in enumerate(self.features.question):
            by_question[q].append(f)
        decoded = Decoded()
        for q, windows in by_question.items():
            qid = self.squad.questions[q].qid
            chosen, null = self.nbest(windows, outputs)
            decoded.nbest[qid] = nbest_json(chosen)
            best = next((p for p in chosen if p.text), None)
            decoded.answers[qid] = (best or chosen[0]).text if self.version_2 else chosen[0].text
            if null is not None:
                decoded.null_odds[qid] = null.score - best.score if best else NO_ANSWER_SCORE_CAP
        return decoded


def nbest_json(chosen: list[Prediction]) -> list[dict]:
    """google's nbest_predictions.json entries: text, probability (softmax of the scores), logits."""
    scores = np.array([p.score for p in chosen], dtype=np.float64)
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    return [{"text": p.text, "probability": float(pr), "start_logit": p.start_logit, "end_logit": p.end_logit}
            for p, pr in zip(chosen, probabilities, strict=True)]

