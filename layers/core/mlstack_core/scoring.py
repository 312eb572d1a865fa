"""Evaluation metrics in numpy, for functions that cannot carry scikit-learn.

Evaluate scores ONNX artifacts with onnxruntime. scikit-learn (with scipy) and onnxruntime together
exceed Lambda's 250 MB unzipped limit, so Evaluate ships numpy + onnxruntime and these metrics.
tests/unit/test_scoring.py checks each one against sklearn.metrics on random inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

# Probabilities are clipped before log loss, as scikit-learn does with float64's machine epsilon.
_EPSILON = np.finfo(np.float64).eps


def accuracy(y_true: NDArray[np.generic], y_pred: NDArray[np.generic]) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def _per_class_counts(
    y_true: NDArray[np.generic], y_pred: NDArray[np.generic]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """True positives, actual positives and predicted positives for each class seen in either."""
    labels = np.union1d(y_true, y_pred)
    true_positive = np.array([np.sum((y_true == c) & (y_pred == c)) for c in labels], float)
    actual = np.array([np.sum(y_true == c) for c in labels], float)
    predicted = np.array([np.sum(y_pred == c) for c in labels], float)
    return true_positive, actual, predicted


def balanced_accuracy(y_true: NDArray[np.generic], y_pred: NDArray[np.generic]) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = np.unique(y_true)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in present]
    return float(np.mean(recalls))


def f1_macro(y_true: NDArray[np.generic], y_pred: NDArray[np.generic]) -> float:
    true_positive, actual, predicted = _per_class_counts(np.asarray(y_true), np.asarray(y_pred))
    denominator = actual + predicted
    # A class with no true and no predicted samples scores 0, as in scikit-learn (zero_division=0).
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(np.mean(f1))


def _binary_auc(positive: NDArray[np.bool_], scores: NDArray[np.float64]) -> float:
    """Mann-Whitney U with average ranks for ties: P(a positive outranks a negative)."""
    n_positive = int(positive.sum())
    n_negative = positive.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, float)
    # Average rank over each run of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [scores.size]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = ranks[positive].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def roc_auc(
    y_true: NDArray[np.generic], probabilities: NDArray[np.floating], classes: Sequence[object]
) -> float:
    """Binary AUC of the second class, or the unweighted one-vs-rest mean for more classes."""
    y_true = np.asarray(y_true)
    scores: NDArray[np.float64] = np.asarray(probabilities, dtype=np.float64)
    if len(classes) == 2:
        return _binary_auc(y_true == classes[1], scores[:, 1])
    per_class = [
        _binary_auc(y_true == label, scores[:, index]) for index, label in enumerate(classes)
    ]
    return float(np.mean(per_class))


def log_loss(
    y_true: NDArray[np.generic], probabilities: NDArray[np.floating], classes: Sequence[object]
) -> float:
    probabilities = np.clip(np.asarray(probabilities, float), _EPSILON, 1 - _EPSILON)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    index = {label: position for position, label in enumerate(classes)}
    columns = np.array([index[label] for label in np.asarray(y_true).tolist()])
    picked = probabilities[np.arange(columns.size), columns]
    return float(-np.mean(np.log(picked)))


def r2(y_true: NDArray[np.floating], y_pred: NDArray[np.floating]) -> float:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    residual = np.sum((y_true - y_pred) ** 2)
    total = np.sum((y_true - y_true.mean()) ** 2)
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1 - residual / total)


def rmse(y_true: NDArray[np.floating], y_pred: NDArray[np.floating]) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2)))


def mae(y_true: NDArray[np.floating], y_pred: NDArray[np.floating]) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def classification_metrics(
    y_true: NDArray[np.generic],
    y_pred: NDArray[np.generic],
    probabilities: NDArray[np.floating],
    classes: Sequence[object],
) -> dict[str, float]:
    present = set(np.asarray(y_true).tolist())
    scores = {
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "f1_macro": f1_macro(y_true, y_pred),
        "log_loss": log_loss(y_true, probabilities, classes),
    }
    # AUC needs both sides of every one-vs-rest split in the holdout.
    if len(present) == len(classes) >= 2:
        scores["roc_auc"] = roc_auc(y_true, probabilities, classes)
    return scores


def regression_metrics(
    y_true: NDArray[np.floating], y_pred: NDArray[np.floating]
) -> dict[str, float]:
    return {"r2": r2(y_true, y_pred), "rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred)}
