"""Ground truth against the holdout (the Monitor): the same metric on two sets of rows, compared
beyond noise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlstack_core.evidence.bootstrap import (
    BLOCK,
    PROBABILITY_FLOOR,
    RESAMPLES,
    SEED,
    Answers,
    Rows,
    canonical_order,
    weighted_metric,
)
from mlstack_core.evidence.intervals import Interval, mean_interval, unpaired_difference
from mlstack_core.evidence.losses import LOWER_IS_BETTER, one_hot

# Metrics that are a mean of one value per row: Welch's interval on those values is enough.
PER_ROW_METRICS = frozenset({"accuracy", "log_loss", "mae"})


@dataclass(frozen=True)
class Labelled:
    """One model's answers on some rows with the rows' truth: the holdout Evaluate scored, or the
    served rows users labelled. Each side has its own rows, class order and label types."""

    y: NDArray[Any]
    classes: Sequence[Any]
    answers: Answers

    @property
    def rows(self) -> int:
        return int(np.asarray(self.y).shape[0])


def row_values(metric: str, labelled: Labelled) -> NDArray[np.float64]:
    """Each row's part of a per-row metric: 1 for a right label (accuracy), the log loss of the
    true class (rows of a class the model does not know must be left out), the absolute error."""
    answer = labelled.answers
    if metric == "accuracy":
        # Object arrays compare as Python does (1 == 1.0), as the Monitor's accuracy does.
        same = np.asarray(answer.labels, dtype=object) == np.asarray(labelled.y, dtype=object)
        return np.asarray(same, dtype=np.float64)
    if metric == "mae":
        truth = np.asarray(labelled.y, np.float64)
        return np.asarray(np.abs(truth - np.asarray(answer.values, np.float64)))
    if metric == "log_loss":
        clipped = np.clip(
            np.asarray(answer.probabilities, np.float64), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR
        )
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        truth = one_hot(labelled.y, labelled.classes).astype(bool)
        return np.asarray(-np.log(np.where(truth, clipped, 1.0).prod(axis=1)))
    raise ValueError(f"{metric} is not a mean over rows")


def metric_interval(
    metric: str, labelled: Labelled, confidence: float, *, resamples: int = RESAMPLES
) -> Interval:
    """One side's metric with its interval: the t interval of a per-row mean, else the
    percentile interval of a bootstrap over its rows (in canonical order)."""
    if metric in PER_ROW_METRICS:
        return mean_interval(row_values(metric, labelled), confidence)
    point, samples = _resampled(metric, labelled, resamples, stream=0)
    return _percentile_interval(point, samples, confidence, labelled.rows, resamples)


def unpaired_metric_difference(
    metric: str,
    first: Labelled,
    second: Labelled,
    confidence: float,
    *,
    resamples: int = RESAMPLES,
) -> tuple[Interval, Interval, Interval]:
    """``first``'s metric, ``second``'s, and how much better ``first`` scores than ``second``
    (in the metric's good direction: positive means ``first`` is better), on different rows.

    Per-row means get Welch's interval on the per-row values. Other metrics (F1, balanced
    accuracy, AUC, R², RMSE) are not means of independent rows, so they get the percentile
    interval of an unpaired bootstrap: each side is resampled on its own (a stream of draws of
    its own, so equal row counts do not share weights), in canonical row order, so the result
    depends neither on either side's row order nor on the run."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    if metric in PER_ROW_METRICS:
        a, b = row_values(metric, first), row_values(metric, second)
        # For a loss, first is better by how much lower its mean is: second minus first.
        minuend, subtrahend = (a, b) if sign > 0 else (b, a)
        better = unpaired_difference(minuend, subtrahend, confidence)
        return mean_interval(a, confidence), mean_interval(b, confidence), better
    point_a, samples_a = _resampled(metric, first, resamples, stream=1)
    point_b, samples_b = _resampled(metric, second, resamples, stream=2)
    return (
        _percentile_interval(point_a, samples_a, confidence, first.rows, resamples),
        _percentile_interval(point_b, samples_b, confidence, second.rows, resamples),
        _percentile_interval(
            sign * (point_a - point_b),
            sign * (samples_a - samples_b),
            confidence,
            first.rows + second.rows,
            resamples,
        ),
    )


def _resampled(
    metric: str, labelled: Labelled, resamples: int, stream: int
) -> tuple[float, NDArray[np.float64]]:
    """The metric on all rows, and on each of ``resamples`` bootstrap resamples of them."""
    answer = labelled.answers
    count = labelled.rows
    if count == 0:
        return math.nan, np.full(resamples, np.nan)
    if answer.values is None and answer.probabilities is None:
        # Label metrics read no probabilities, but the weighted form expects the array.
        answer = Answers(
            labels=answer.labels, probabilities=np.zeros((count, len(labelled.classes)))
        )
    order = canonical_order(labelled.y, [answer])
    function = weighted_metric(metric, Rows(labelled.y, labelled.classes, order), answer)
    point = float(function(np.ones((1, count)))[0])
    generator = np.random.default_rng((SEED, stream))
    blocks = []
    drawn = 0
    while drawn < resamples:
        block = min(BLOCK, resamples - drawn)
        weights = generator.multinomial(count, np.full(count, 1.0 / count), size=block)
        blocks.append(function(weights.astype(np.float64)))
        drawn += block
    return point, np.concatenate(blocks)


def _percentile_interval(
    estimate: float, samples: NDArray[np.float64], confidence: float, rows: int, resamples: int
) -> Interval:
    finite = samples[np.isfinite(samples)]
    # Mostly undefined resamples (a class missing from most of them): no interval to speak of.
    if not math.isfinite(estimate) or finite.size < resamples / 2:
        return Interval(estimate, -math.inf, math.inf, confidence, rows)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), confidence, rows)
