"""The per-row losses the gate judges evidence on, and which measures are lower-is-better."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlstack_core.tasks import CLASSIFICATION, REGRESSION

# The per-row loss the gate judges evidence on, by task.
EVIDENCE_MEASURE = {CLASSIFICATION: "bounded_log_loss", REGRESSION: "squared_error"}
# The evidence's log loss reads a probability below this as this: a row costs at most
# -ln(0.001) = 6.9, so one confidently wrong row cannot decide a comparison.
LOG_LOSS_FLOOR = 1e-3
# Bootstrap resamples for reported intervals; drawn in blocks to bound memory on large holdouts.
LOWER_IS_BETTER = frozenset(
    {"log_loss", "rmse", "mae", "brier_score", "squared_error", "bounded_log_loss"}
)


# ----------------------------------------------------------------------------- per-row losses


def one_hot(y: NDArray[Any], classes: Sequence[Any]) -> NDArray[np.float64]:
    position = {label: index for index, label in enumerate(classes)}
    truth = np.zeros((len(y), len(classes)), dtype=np.float64)
    columns = np.array([position.get(label, -1) for label in np.asarray(y).tolist()], dtype=int)
    known = columns >= 0
    truth[np.flatnonzero(known), columns[known]] = 1.0
    return truth


def brier_rows(
    y: NDArray[Any], probabilities: NDArray[np.floating], classes: Sequence[Any]
) -> NDArray[np.float64]:
    """Each row's multi-class Brier score: sum over classes of (p - 1[y = class])², in [0, 2]."""
    difference = np.asarray(probabilities, dtype=np.float64) - one_hot(y, classes)
    return np.asarray(np.sum(difference**2, axis=1), dtype=np.float64)


def bounded_log_loss_rows(
    y: NDArray[Any], probabilities: NDArray[np.floating], classes: Sequence[Any]
) -> NDArray[np.float64]:
    """Each row's log loss, the true class's probability floored at ``LOG_LOSS_FLOOR``."""
    truth = one_hot(y, classes).astype(bool)
    picked = np.where(truth, np.asarray(probabilities, dtype=np.float64), 1.0).min(axis=1)
    return np.asarray(-np.log(np.clip(picked, LOG_LOSS_FLOOR, 1.0)), dtype=np.float64)


def squared_error_rows(y: NDArray[Any], values: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.asarray((np.asarray(y, np.float64) - np.asarray(values, np.float64)) ** 2)
