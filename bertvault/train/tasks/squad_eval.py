"""The official SQuAD scores (v1.1 and v2.0), written from the definitions of the evaluation scripts.

Normalisation of an answer: lower-case; delete every character of `string.punctuation`; replace the
words "a", "an" and "the" by a space; collapse runs of whitespace to one space. Exact match (EM):
the normalised strings are equal. F1: over the multisets of normalised tokens (split at whitespace).
A question takes the best score over its gold answers; EM and F1 are percentages.

v1.1 (`evaluate-v1.1.py`): a question with no prediction scores 0 and still counts in the total.
F1 of two empty answers is 0.

v2.0 (`evaluate-v2.0.py`): gold answers that normalise to '' are dropped; a question left without
one is scored against '' alone, and F1 is 1 when both sides are empty, 0 when only one is. A
question counts as answerable (HasAns) when its answer list is not empty. Questions without a
prediction are left out of the totals. Given a no-answer score per question (`na_probs`, e.g.
google's `null_odds.json`), a question is answered '' when its score passes `na_prob_thresh`
(default 1.0), and the thresholds that maximise EM and F1 are found (`best_exact_thresh`,
`best_f1_thresh`): walking the questions by rising no-answer score, each step answers one more.
"""

from __future__ import annotations

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def _overlap_f1(predicted: list[str], gold: list[str]) -> float:
    same = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_v1(prediction: str, gold: str) -> float:
    return _overlap_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def f1_v2(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)  # no-answer on either side: right only if both agree
    return _overlap_f1(predicted, expected)


def evaluate_v1(gold: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    """gold: question id -> answer texts. Returns {"exact_match", "f1"} in percent, as the v1.1 script."""
    exact = f1 = 0.0
    for qid, answers in gold.items():
        if qid not in predictions:
            continue  # scores 0, still counted
        exact += max(exact_match(predictions[qid], a) for a in answers)
        f1 += max(f1_v1(predictions[qid], a) for a in answers)
    total = len(gold)
    share = 100.0 / total if total else 0.0
    return {"exact_match": exact * share, "f1": f1 * share}


def raw_scores_v2(gold: dict[str, list[str]], predictions: dict[str, str]) -> tuple[dict, dict]:
    """Per question EM and F1 of the predictions as they are (no threshold)."""
    exact, f1 = {}, {}
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        targets = [a for a in answers if normalize_answer(a)] or [""]
        exact[qid] = max(exact_match(predictions[qid], a) for a in targets)
        f1[qid] = max(f1_v2(predictions[qid], a) for a in targets)
    return exact, f1


def _apply_threshold(scores: dict[str, float], na_probs: dict[str, float], has_answer: dict[str, bool],
                     threshold: float) -> dict[str, float]:
    return {qid: float(not has_answer[qid]) if na_probs[qid] > threshold else value
            for qid, value in scores.items()}


def _percentages(exact: dict[str, float], f1: dict[str, float], qids: list[str]) -> dict[str, float]:
    total = len(qids)
    return {"exact": 100.0 * sum(exact[q] for q in qids) / total if total else 0.0,
            "f1": 100.0 * sum(f1[q] for q in qids) / total if total else 0.0, "total": total}


def best_threshold(predictions: dict[str, str], scores: dict[str, float], na_probs: dict[str, float],
                   has_answer: dict[str, bool]) -> tuple[float, float]:
    """(best score in percent, the no-answer threshold that gives it), as the v2.0 script finds them.

    Below every no-answer score, every question is answered '': the unanswerable ones are right.
    Raising the threshold past a question's score answers it with its prediction instead.
    """
    current = best = sum(1 for v in has_answer.values() if not v)
    threshold = 0.0
    for qid in sorted(na_probs, key=na_probs.__getitem__):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, threshold = current, na_probs[qid]
    return (100.0 * best / len(scores) if scores else 0.0), threshold


def evaluate_v2(gold: dict[str, list[str]], predictions: dict[str, str],
                na_probs: dict[str, float] | None = None, na_prob_thresh: float = 1.0) -> dict[str, float]:
    """The v2.0 script's report: exact, f1, total, HasAns_*, NoAns_*, and best_* when na_probs is given."""
    has_answer = {qid: bool(answers) for qid, answers in gold.items()}
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    exact_raw, f1_raw = raw_scores_v2(gold, predictions)
    exact = _apply_threshold(exact_raw, probs, has_answer, na_prob_thresh)
    f1 = _apply_threshold(f1_raw, probs, has_answer, na_prob_thresh)
    report = _percentages(exact, f1, list(exact))
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q in exact if has_answer[q] is wanted]
        if any(v is wanted for v in has_answer.values()):
            report.update({f"{name}_{k}": v for k, v in _percentages(exact, f1, qids).items()})
    if na_probs is not None:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            report[f"best_{name}"], report[f"best_{name}_thresh"] = best_threshold(predictions, raw, probs,
                                                                                   has_answer)
    return report
