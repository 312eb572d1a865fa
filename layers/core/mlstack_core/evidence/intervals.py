"""Intervals: an estimate with its confidence interval, Student's t quantiles without scipy, the
paired, unpaired and corrected cross-validation intervals, Bonferroni's correction."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, TypedDict

import numpy as np
from numpy.typing import NDArray

from mlstack_core.evidence_text import percent


class IntervalDocument(TypedDict):
    """An interval as it travels in the run's state: JSON has no NaN or infinity, so an undefined
    estimate or an unbounded side is null."""

    estimate: float | None
    low: float | None
    high: float | None
    confidence: float
    rows: int


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval at ``confidence`` over ``rows`` rows."""

    estimate: float
    low: float
    high: float
    confidence: float
    rows: int

    def document(self) -> IntervalDocument:
        return {
            "estimate": _finite_or_none(self.estimate),
            "low": _finite_or_none(self.low),
            "high": _finite_or_none(self.high),
            "confidence": self.confidence,
            "rows": self.rows,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Interval:
        estimate, low, high = document.get("estimate"), document.get("low"), document.get("high")
        return cls(
            math.nan if estimate is None else float(estimate),
            -math.inf if low is None else float(low),
            math.inf if high is None else float(high),
            float(document["confidence"]),
            int(document["rows"]),
        )

    def describe(self, digits: int = 3) -> str:
        """'+0.031, 95% interval 0.012 to 0.050'."""
        return (
            f"{self.estimate:+.{digits}f}, {percent(self.confidence)} interval "
            f"{self.low:.{digits}f} to {self.high:.{digits}f}"
        )


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# ----------------------------------------------------------------------------- quantiles


def normal_quantile(p: float) -> float:
    return NormalDist().inv_cdf(p)


def t_quantile(p: float, degrees_of_freedom: float) -> float:
    """Student's t quantile (Evaluate ships numpy and onnxruntime, not scipy). Below 30 degrees of
    freedom (floored, which widens a Welch interval slightly) by inverting the exact distribution
    function; above, by the Cornish-Fisher expansion (Abramowitz and Stegun 26.7.5). Both within
    1e-3 of scipy's (tests/unit/test_evidence.py)."""
    v = float(degrees_of_freedom)
    if not math.isfinite(v) or v <= 0:
        return normal_quantile(p)
    if v < _EXACT_BELOW:
        return _inverse(_t_distribution(max(1, math.floor(v))), p)
    z = normal_quantile(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4


_EXACT_BELOW = 30


def _t_distribution(freedom: int) -> Callable[[float], float]:
    """The t distribution function for integer degrees of freedom (Abramowitz and Stegun
    26.7.3 and 26.7.4)."""

    def cdf(t: float) -> float:
        theta = math.atan(abs(t) / math.sqrt(freedom))
        cos2 = math.cos(theta) ** 2
        if freedom % 2:
            term, series = 1.0, 1.0 if freedom > 1 else 0.0
            for k in range(1, (freedom - 1) // 2):
                term *= cos2 * (2 * k) / (2 * k + 1)
                series += term
            a = 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * series)
        else:
            term = series = 1.0
            for k in range(1, freedom // 2):
                term *= cos2 * (2 * k - 1) / (2 * k)
                series += term
            a = math.sin(theta) * series
        return 0.5 + a / 2 if t >= 0 else 0.5 - a / 2

    return cdf


def _inverse(cdf: Callable[[float], float], p: float) -> float:
    low, high = -1.0, 1.0
    while cdf(low) > p:
        low *= 2
    while cdf(high) < p:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        if cdf(middle) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def adjusted_confidence(confidence: float, comparisons: int) -> float:
    """Bonferroni: each of ``comparisons`` intervals at this confidence together cover at
    ``confidence`` at least."""
    return 1.0 - (1.0 - confidence) / max(1, comparisons)


# ----------------------------------------------------------------------------- intervals


def _stable_sum(values: NDArray[np.float64]) -> float:
    # Summed in sorted order: the result (and a verdict at its edge) does not depend on row order.
    return math.fsum(np.sort(values).tolist())


def mean_interval(values: NDArray[np.floating], confidence: float) -> Interval:
    """The t interval of a mean."""
    sample = np.asarray(values, dtype=np.float64)
    rows = int(sample.size)
    if rows == 0:
        return Interval(math.nan, -math.inf, math.inf, confidence, 0)
    mean = _stable_sum(sample) / rows
    if rows < 2:
        return Interval(mean, -math.inf, math.inf, confidence, rows)
    spread = math.sqrt(_stable_sum((sample - mean) ** 2) / (rows - 1))
    half = t_quantile(1 - (1 - confidence) / 2, rows - 1) * spread / math.sqrt(rows)
    return Interval(mean, mean - half, mean + half, confidence, rows)


def paired_improvement(
    reference_losses: NDArray[np.floating],
    challenger_losses: NDArray[np.floating],
    confidence: float,
) -> Interval:
    """How much lower the challenger's mean loss is than the reference's on the same rows."""
    reference = np.asarray(reference_losses, dtype=np.float64)
    challenger = np.asarray(challenger_losses, dtype=np.float64)
    if reference.shape != challenger.shape:
        raise ValueError(
            f"paired losses need the same rows: {reference.shape} against {challenger.shape}"
        )
    return mean_interval(reference - challenger, confidence)


def cross_validated_interval(
    fold_values: NDArray[np.floating],
    test_share: float,
    confidence: float,
    *,
    rows: int,
    estimate: float | None = None,
) -> Interval:
    """The corrected repeated cross-validation interval (Nadeau and Bengio; Bouckaert and Frank):
    the folds' training sets overlap, so the variance of the mean of J fold values is
    (1/J + n_test/n_train) s², not s²/J, with J - 1 degrees of freedom. Centred on ``estimate``
    when given (the pooled out-of-fold score), else on the folds' mean."""
    values = np.asarray(fold_values, dtype=np.float64)
    values = values[np.isfinite(values)]
    count = int(values.size)
    centre = (_stable_sum(values) / count if count else math.nan) if estimate is None else estimate
    if count < 2 or not math.isfinite(centre):
        return Interval(centre, -math.inf, math.inf, confidence, rows)
    mean = _stable_sum(values) / count
    spread = _stable_sum((values - mean) ** 2) / (count - 1)
    factor = 1 / count + test_share / (1 - test_share)
    half = t_quantile(1 - (1 - confidence) / 2, count - 1) * math.sqrt(factor * spread)
    return Interval(centre, centre - half, centre + half, confidence, rows)


def unpaired_difference(
    first: NDArray[np.floating], second: NDArray[np.floating], confidence: float
) -> Interval:
    """Welch's interval for mean(first) - mean(second), on different rows."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        estimate = (
            (_stable_sum(a) / a.size - _stable_sum(b) / b.size) if a.size and b.size else math.nan
        )
        return Interval(estimate, -math.inf, math.inf, confidence, int(a.size + b.size))
    mean_a, mean_b = _stable_sum(a) / a.size, _stable_sum(b) / b.size
    var_a = _stable_sum((a - mean_a) ** 2) / (a.size - 1) / a.size
    var_b = _stable_sum((b - mean_b) ** 2) / (b.size - 1) / b.size
    spread = math.sqrt(var_a + var_b)
    if spread == 0:
        estimate = mean_a - mean_b
        return Interval(estimate, estimate, estimate, confidence, int(a.size + b.size))
    freedom = (var_a + var_b) ** 2 / (var_a**2 / (a.size - 1) + var_b**2 / (b.size - 1))
    half = t_quantile(1 - (1 - confidence) / 2, freedom) * spread
    estimate = mean_a - mean_b
    return Interval(estimate, estimate - half, estimate + half, confidence, int(a.size + b.size))
