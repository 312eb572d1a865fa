"""Which answers the gate judges a run on, and how sure each comparison is: on the holdout, or,
for small tables, on out-of-fold answers (mlstack_core.folds).

Every model is represented by one ``Answers`` per repeat over the same rows: on a holdout one,
under cross-validation one per repeat (a candidate's out-of-fold answers; production, which answers
each row once, repeated; the baseline fitted on each fold's training rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from mlstack_core.evidence import (
    LOG_LOSS_FLOOR,
    Answers,
    Interval,
    Rows,
    bootstrap_intervals,
    cross_validated_interval,
    paired_improvement,
    weighted_metric,
)
from mlstack_core.folds import Judgement
from mlstack_core.spec import LOWER_IS_BETTER
from mlstack_core.tasks import CLASSIFICATION
from mlstack_evaluate.holdout import Holdout

Intervals = tuple[dict[str, dict[str, Interval]], dict[tuple[str, str], dict[str, Interval]]]


class Judge(Protocol):
    judged_on: Judgement

    def candidate_answers(self, onnx: Answers, sklearn: Mapping[str, Any]) -> list[Answers]:
        """What a candidate is judged on, from its ONNX answers and Train's stored outputs."""

    def repeated(self, answers: Answers) -> list[Answers]:
        """A model that answers each row once (production), for every repeat."""

    def baseline(self) -> tuple[str, list[Answers]]:
        """The trivial model's strategy and answers."""

    def metric_values(self, answers: Sequence[Answers]) -> dict[str, float | None]:
        """Every metric of the task: what the candidate is chosen by and what is reported."""

    def intervals(
        self,
        models: Mapping[str, Sequence[Answers]],
        metrics: Sequence[str],
        confidence: float,
        differences: Sequence[tuple[str, str]],
    ) -> Intervals:
        """Each model's metrics, and the paired differences, with intervals."""

    def improvement(
        self, reference: Sequence[Answers], challenger: Sequence[Answers], confidence: float
    ) -> tuple[Interval, tuple[float, float]]:
        """How much lower the challenger's per-row loss is, and both mean losses."""


class HoldoutJudge:
    """Judged on the holdout: the ONNX export's answers, bootstrap intervals, a paired t test."""

    judged_on: Judgement = "holdout"

    def __init__(self, holdout: Holdout) -> None:
        self.holdout = holdout

    def candidate_answers(self, onnx: Answers, sklearn: Mapping[str, Any]) -> list[Answers]:
        return [onnx]

    def repeated(self, answers: Answers) -> list[Answers]:
        return [answers]

    def baseline(self) -> tuple[str, list[Answers]]:
        strategy, answers = trivial_answers(self.holdout, np.ones(self.holdout.y.size, dtype=bool))
        return strategy, [answers]

    def metric_values(self, answers: Sequence[Answers]) -> dict[str, float | None]:
        return self.holdout.metric_values(answers[0])

    def intervals(
        self,
        models: Mapping[str, Sequence[Answers]],
        metrics: Sequence[str],
        confidence: float,
        differences: Sequence[tuple[str, str]],
    ) -> Intervals:
        return bootstrap_intervals(
            self.holdout.y,
            self.holdout.classes,
            {name: answers[0] for name, answers in models.items()},
            metrics,
            confidence,
            differences=differences,
        )

    def improvement(
        self, reference: Sequence[Answers], challenger: Sequence[Answers], confidence: float
    ) -> tuple[Interval, tuple[float, float]]:
        before, after = self.holdout.losses(reference[0]), self.holdout.losses(challenger[0])
        interval = paired_improvement(before, after, confidence)
        return interval, (float(np.mean(before)), float(np.mean(after)))


class CrossValidationJudge:
    """Judged on out-of-fold answers: scores are the mean over repeats of each repeat's pooled
    score, intervals the corrected repeated cross-validation interval of the folds' values."""

    judged_on: Judgement = "cross_validation"

    def __init__(self, holdout: Holdout, assignment: np.ndarray) -> None:
        self.holdout = holdout
        self.assignment = assignment
        self.folds = int(assignment.max()) + 1
        self.rows = Rows(holdout.y, holdout.classes, np.arange(holdout.y.size))
        # One row of weights per fold of each repeat: a fold's value is a weighted metric.
        self.fold_weights = [
            np.stack([(repeat == fold).astype(np.float64) for fold in range(self.folds)])
            for repeat in assignment
        ]

    def candidate_answers(self, onnx: Answers, sklearn: Mapping[str, Any]) -> list[Answers]:
        if "oof_probabilities" in sklearn:
            return [
                Answers(labels=np.asarray(labels), probabilities=np.asarray(probabilities))
                for labels, probabilities in zip(
                    sklearn["oof_label"], sklearn["oof_probabilities"], strict=True
                )
            ]
        if "oof_variable" in sklearn:
            return [Answers(values=np.asarray(values)) for values in sklearn["oof_variable"]]
        raise KeyError("Train stored no out-of-fold answers for a run judged by cross-validation")

    def repeated(self, answers: Answers) -> list[Answers]:
        return [answers] * len(self.assignment)

    def baseline(self) -> tuple[str, list[Answers]]:
        """Fitted on each fold's training rows, like every candidate."""
        strategy = ""
        per_repeat = []
        for repeat in self.assignment:
            parts = []
            for fold in range(self.folds):
                strategy, answers = trivial_answers(self.holdout, repeat != fold)
                parts.append((repeat == fold, answers))
            per_repeat.append(_stitched(parts, self.holdout.y.size))
        return strategy, per_repeat

    def metric_values(self, answers: Sequence[Answers]) -> dict[str, float | None]:
        each = [self.holdout.metric_values(a) for a in answers]
        means: dict[str, float | None] = {}
        for name in each[0]:
            values = [float(v) for s in each if (v := s.get(name)) is not None]
            means[name] = float(np.mean(values)) if values else None
        return means

    def fold_values(self, metric: str, answers: Sequence[Answers]) -> np.ndarray:
        return np.concatenate(
            [
                weighted_metric(metric, self.rows, answer)(weights)
                for answer, weights in zip(answers, self.fold_weights, strict=True)
            ]
        )

    def _interval(self, values: np.ndarray, confidence: float, estimate: float | None) -> Interval:
        return cross_validated_interval(
            values,
            1 / self.folds,
            confidence,
            rows=int(self.holdout.y.size),
            estimate=estimate,
        )

    def intervals(
        self,
        models: Mapping[str, Sequence[Answers]],
        metrics: Sequence[str],
        confidence: float,
        differences: Sequence[tuple[str, str]],
    ) -> Intervals:
        values = {
            (name, metric): self.fold_values(metric, answers)
            for name, answers in models.items()
            for metric in metrics
        }
        pooled = {name: self._pooled(answers, metrics) for name, answers in models.items()}
        per_model = {
            name: {
                metric: within_range(
                    metric,
                    self._interval(values[(name, metric)], confidence, pooled[name][metric]),
                )
                for metric in metrics
            }
            for name in models
        }
        paired: dict[tuple[str, str], dict[str, Interval]] = {}
        for first, second in differences:
            paired[(first, second)] = {}
            for metric in metrics:
                sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
                estimate = sign * (pooled[first][metric] - pooled[second][metric])
                difference = sign * (values[(first, metric)] - values[(second, metric)])
                paired[(first, second)][metric] = self._interval(difference, confidence, estimate)
        return per_model, paired

    def _pooled(self, answers: Sequence[Answers], metrics: Sequence[str]) -> dict[str, float]:
        """Each metric on all rows, averaged over the repeats; NaN where undefined in all."""
        whole = np.ones((1, self.holdout.y.size))
        pooled = {}
        for metric in metrics:
            each = np.array([weighted_metric(metric, self.rows, a)(whole)[0] for a in answers])
            finite = each[np.isfinite(each)]
            pooled[metric] = float(finite.mean()) if finite.size else math.nan
        return pooled

    def improvement(
        self, reference: Sequence[Answers], challenger: Sequence[Answers], confidence: float
    ) -> tuple[Interval, tuple[float, float]]:
        before = np.stack([self.holdout.losses(a) for a in reference])
        after = np.stack([self.holdout.losses(a) for a in challenger])
        folds = [
            float(np.mean(before[r][repeat == fold] - after[r][repeat == fold]))
            for r, repeat in enumerate(self.assignment)
            for fold in range(self.folds)
            if np.any(repeat == fold)
        ]
        interval = self._interval(np.asarray(folds), confidence, float(np.mean(before - after)))
        return interval, (float(np.mean(before)), float(np.mean(after)))


# Where each metric can lie: a normal interval near the edge must not reach past it.
_RANGES = {
    "accuracy": (0.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "f1_macro": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
    "brier_score": (0.0, 2.0),
    "bounded_log_loss": (0.0, -math.log(LOG_LOSS_FLOOR)),
    "log_loss": (0.0, math.inf),
    "rmse": (0.0, math.inf),
    "mae": (0.0, math.inf),
    "squared_error": (0.0, math.inf),
    "r2": (-math.inf, 1.0),
}


def within_range(metric: str, interval: Interval) -> Interval:
    low, high = _RANGES.get(metric, (-math.inf, math.inf))
    return replace(interval, low=max(interval.low, low), high=min(interval.high, high))


def trivial_answers(holdout: Holdout, fitted_on: np.ndarray) -> tuple[str, Answers]:
    """The most frequent class of ``fitted_on`` rows with their class shares as probabilities,
    or their mean, answered for every row."""
    y = holdout.y
    if holdout.schema["task"] == CLASSIFICATION:
        classes = holdout.classes
        seen = y[fitted_on]
        counts = np.array([np.sum(seen == c) for c in classes], dtype=np.float64)
        priors = counts / counts.sum()
        labels = np.full(y.shape, classes[int(np.argmax(counts))], dtype=y.dtype)
        return "most_frequent", Answers(labels=labels, probabilities=np.tile(priors, (y.size, 1)))
    return "mean", Answers(values=np.full(y.shape, float(np.mean(y[fitted_on]))))


def _stitched(parts: Sequence[tuple[np.ndarray, Answers]], rows: int) -> Answers:
    """One Answers from per-fold answers, each kept on its fold's rows."""
    values = np.zeros(rows)
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    for mask, answers in parts:
        if answers.values is not None:
            values[mask] = np.asarray(answers.values)[mask]
        if answers.labels is not None and answers.probabilities is not None:
            if labels is None or probabilities is None:
                labels = answers.labels.copy()
                probabilities = np.zeros_like(answers.probabilities)
            labels[mask] = answers.labels[mask]
            probabilities[mask] = answers.probabilities[mask]
    if labels is not None:
        return Answers(labels=labels, probabilities=probabilities)
    return Answers(values=values)
