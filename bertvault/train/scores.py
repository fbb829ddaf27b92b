"""Evaluation scores for finetuning (GLUE's): accuracy, F1, Matthews correlation, Pearson, Spearman.

F1 is the positive class's for two labels (label id 1, as GLUE scores MRPC and QQP) and the macro
average otherwise. Matthews correlation uses the multi-class form (Gorodkin 2004), which equals
the usual binary formula for two labels.
"""

from __future__ import annotations

import numpy as np


def accuracy(predicted: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(predicted == gold)) if len(gold) else 0.0


def _f1(predicted: np.ndarray, gold: np.ndarray, positive: int) -> float:
    tp = np.sum((predicted == positive) & (gold == positive))
    fp = np.sum((predicted == positive) & (gold != positive))
    fn = np.sum((predicted != positive) & (gold == positive))
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def f1(predicted: np.ndarray, gold: np.ndarray, num_labels: int) -> float:
    if num_labels == 2:
        return _f1(predicted, gold, 1)
    return float(np.mean([_f1(predicted, gold, k) for k in range(num_labels)]))


def matthews(predicted: np.ndarray, gold: np.ndarray, num_labels: int) -> float:
    confusion = np.zeros((num_labels, num_labels), dtype=np.float64)
    np.add.at(confusion, (gold, predicted), 1)
    t, p = confusion.sum(axis=1), confusion.sum(axis=0)  # true and predicted counts per class
    c, s = np.trace(confusion), confusion.sum()
    denominator = np.sqrt((s**2 - p @ p) * (s**2 - t @ t))
    return float((c * s - t @ p) / denominator) if denominator else 0.0


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator else 0.0


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata)."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # mean of the 1-based positions start+1 .. end
    result = np.empty(len(values), dtype=np.float64)
    result[order] = np.repeat(average, ends - starts)
    return result


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(ranks(x), ranks(y))


def classification(predicted: np.ndarray, gold: np.ndarray, num_labels: int) -> dict[str, float]:
    return {"accuracy": accuracy(predicted, gold), "f1": f1(predicted, gold, num_labels),
            "mcc": matthews(predicted, gold, num_labels)}


def regression(predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    return {"pearson": pearson(predicted, gold), "spearman": spearman(predicted, gold),
            "mse": float(np.mean((np.asarray(predicted) - np.asarray(gold)) ** 2))}
