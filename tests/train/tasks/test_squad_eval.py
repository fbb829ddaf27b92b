"""The SQuAD v1.1/v2.0 scores against hand-worked cases of the official definitions."""

from __future__ import annotations

import pytest

from bertvault.train.tasks import squad_eval as ev


@pytest.mark.parametrize(("text", "normal"), [
    ("The Cat's hat!", "cats hat"),                   # lower, punctuation out, article out
    ("  an\tapple\n a  day ", "apple day"),           # articles are words; any whitespace collapses
    ("theater, another thesis", "theater another thesis"),  # article letters inside words stay
    ("A", ""),
    ("U.S.-led", "usled"),                            # punctuation is deleted, not replaced by a space
    ("“quoted” — café", "“quoted” — café"),           # only ASCII punctuation is removed
    ("the-the", "thethe"),                            # punctuation goes first: the two articles fuse
])
def test_normalisation(text, normal):
    assert ev.normalize_answer(text) == normal


def test_exact_match_and_f1_by_hand():
    assert ev.exact_match("The Eiffel Tower.", "eiffel tower") == 1
    assert ev.exact_match("Eiffel", "eiffel tower") == 0
    # pred tokens {cat, sat}, gold {cat, sat, down}: P = 1, R = 2/3, F1 = 0.8
    assert ev.f1_v1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # tokens are a multiset: "cat cat" vs "cat" share one, P 1/2, R 1
    assert ev.f1_v1("cat cat", "cat") == pytest.approx(2 / 3)
    assert ev.f1_v1("dog", "cat") == 0.0
    assert ev.f1_v1("", "") == 0.0 and ev.f1_v2("", "") == 1.0   # the one place the two scripts differ
    assert ev.f1_v2("", "cat") == 0.0 and ev.f1_v2("cat", "") == 0.0
    assert ev.f1_v2("the", "") == 1.0  # "the" normalises to nothing: a no-answer


def test_v1_takes_the_best_gold_answer_and_counts_missing_predictions():
    gold = {"q1": ["Denver Broncos", "the Denver Broncos"],
            "q2": ["Santa Clara, California", "Levi's Stadium"], "q3": ["1966"]}
    predictions = {"q1": "Denver Broncos", "q2": "Levi's Stadium in Santa Clara"}
    report = ev.evaluate_v1(gold, predictions)
    # q1: EM 1, F1 1. q2: vs "levis stadium" P 2/5 R 1 -> 4/7;
    # vs "santa clara california" 2 shared, P 2/5 R 2/3 -> 1/2.
    # q3: no prediction: 0, still counted.
    assert report["exact_match"] == pytest.approx(100 / 3)
    assert report["f1"] == pytest.approx(100 * (1 + 4 / 7) / 3)


def test_v2_unanswerable_questions_and_splits():
    gold = {"a1": ["Paris"], "a2": ["1990", "in 1990"], "n1": [], "n2": [], "n3": ["the"]}
    predictions = {"a1": "Paris", "a2": "", "n1": "", "n2": "London", "n3": ""}
    report = ev.evaluate_v2(gold, predictions)
    # a1 1/1, a2 0/0 (empty prediction for an answerable question), n1 1/1, n2 0/0,
    # n3: answers present (HasAns) but they normalise to '' -> scored against '' -> 1/1.
    assert report["total"] == 5
    assert report["exact"] == pytest.approx(60.0) and report["f1"] == pytest.approx(60.0)
    assert (report["HasAns_total"], report["NoAns_total"]) == (3, 2)
    assert report["HasAns_exact"] == pytest.approx(200 / 3) and report["NoAns_exact"] == pytest.approx(50.0)
    assert "best_f1" not in report


def test_v2_questions_without_a_prediction_are_left_out():
    report = ev.evaluate_v2({"a": ["x"], "b": ["y"]}, {"a": "x"})
    assert report["total"] == 1 and report["exact"] == 100.0


def test_v2_best_threshold_walks_the_no_answer_scores():
    gold = {"a": ["red car"], "b": ["blue"], "n": [], "m": []}
    # Best non-null answers, and no-answer scores (higher = more likely unanswerable).
    predictions = {"a": "red car", "b": "green", "n": "car", "m": "truck"}
    na = {"a": -3.0, "n": -1.0, "b": 0.5, "m": 2.0}
    report = ev.evaluate_v2(gold, predictions, na_probs=na)
    # Threshold below all: every answer '' -> n, m right: 2/4. Then by rising score:
    # a (-3.0): +1 -> 3; n (-1.0): -1 -> 2; b (0.5): +0 -> 2; m (2.0): -1 -> 1. Best 3 at -3.0.
    assert report["best_exact"] == pytest.approx(75.0) and report["best_exact_thresh"] == -3.0
    assert report["best_f1"] == pytest.approx(75.0) and report["best_f1_thresh"] == -3.0
    # With na_prob_thresh 1.0, m (2.0 > 1.0) is answered '' (right); the rest keep their answers.
    assert report["exact"] == pytest.approx(50.0)
    # Predicting '' above the best threshold gives exactly the best score.
    final = {q: "" if na[q] > report["best_f1_thresh"] else p for q, p in predictions.items()}
    assert ev.evaluate_v2(gold, final)["f1"] == pytest.approx(report["best_f1"])


def test_v2_partial_credit_moves_the_best_f1_threshold():
    gold = {"a": ["the quick brown fox"], "n": []}
    predictions = {"a": "quick fox jumps", "n": "dog"}
    na = {"n": -2.0, "a": 1.0}
    report = ev.evaluate_v2(gold, predictions, na_probs=na)
    # F1 of a: {quick, fox} of 3 predicted / 3 gold -> 2/3. Walk: start 1 (n right);
    # n (-2): -1 -> 0; a (1.0): +2/3 -> 2/3. Best stays 1 at threshold 0.0 (the start).
    assert report["best_f1"] == pytest.approx(50.0) and report["best_f1_thresh"] == 0.0
