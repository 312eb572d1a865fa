"""The gate's evidence: how sure a comparison of models on the same rows is.

A holdout of a few hundred rows is noisy: the best of three candidates beats a coin on it by luck
most of the time. So every score the gate reads carries a confidence interval, and a version is
promoted only when it is better than what it replaces *beyond noise*:

- **Evidence is judged on a proper scoring rule**, per row: log loss for classifiers, with the true
  class's probability floored at 0.001 (``LOG_LOSS_FLOOR``) so that a row costs at most 6.9 and
  one confidently wrong row cannot decide a comparison, and the squared error for regressors (so a
  better R², RMSE or MSE on the same rows); and on the spec's selection metric when that is
  another comparison. Accuracy cannot see a model that only sharpens probabilities of a rare class
  (on a table with 3 % positives a useful model makes the majority class's labels); log loss
  rewards exactly the probabilities closer to the truth, and separated such models from the
  majority class more sharply than the Brier score did (benchmarks/evidence_measures.py).
- **The test is paired**: both models answer the same rows, and the interval is the t interval of
  the mean per-row difference of losses (reference minus challenger: positive means the challenger
  is better). It depends on the rows' values, not their order.
- **Choosing the best of several candidates on the same rows is luck too**: the interval's
  confidence is raised by Bonferroni's correction for the number of candidates compared (95 % with
  three candidates becomes 98.3 %), which bounds the chance that any no-better candidate passes.
- **Reported scores** (every metric of the winner, production and the baseline, and the selection
  metric's difference) get percentile intervals from a bootstrap over the rows, drawn as weights so
  each resample costs one matrix product; the rows are put in a canonical order first, so the
  reported intervals do not depend on row order either.

A run judged by cross-validation (small tables, mlstack_core.folds) gets the corrected repeated
cross-validation interval of the folds' values instead (``cross_validated_interval``).
``unpaired_difference`` compares the same measure on different rows (the Monitor: ground truth
against the holdout).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal, TypedDict

import numpy as np
from numpy.typing import NDArray

CLASSIFICATION = "classification"
# The per-row loss the gate judges evidence on, by task.
EVIDENCE_MEASURE = {CLASSIFICATION: "bounded_log_loss", "regression": "squared_error"}
MEASURE_NAMES = {
    "bounded_log_loss": "log loss",
    "brier_score": "Brier score",
    "squared_error": "squared error",
}
# The evidence's log loss reads a probability below this as this: a row costs at most
# -ln(0.001) = 6.9, so one confidently wrong row cannot decide a comparison.
LOG_LOSS_FLOOR = 1e-3
# Bootstrap resamples for reported intervals; drawn in blocks to bound memory on large holdouts.
RESAMPLES = 400
_BLOCK = 25
_SEED = 20_261_205
_PROBABILITY_FLOOR = np.finfo(np.float64).eps
LOWER_IS_BETTER = frozenset(
    {"log_loss", "rmse", "mae", "brier_score", "squared_error", "bounded_log_loss"}
)

Outcome = Literal["promote", "NotBetterThanBaseline", "NotBetterThanProduction"]


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


def percent(confidence: float) -> str:
    """95% for 0.95, 98.3% for 0.98333."""
    text = f"{100 * confidence:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


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


# ----------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Answers:
    """One model's answers on the holdout rows, in the holdout's class order."""

    labels: NDArray[Any] | None = None
    probabilities: NDArray[np.float64] | None = None
    values: NDArray[np.float64] | None = None


class Rows:
    """The holdout's truth in the forms weighted metrics need, in canonical row order."""

    def __init__(self, y: NDArray[Any], classes: Sequence[Any], order: NDArray[np.intp]) -> None:
        self.classes = list(classes)
        self.order = order
        self.y = np.asarray(y)[order]
        if self.classes:
            self.truth = one_hot(self.y, self.classes).astype(bool)


def canonical_order(y: NDArray[Any], answers: Sequence[Answers]) -> NDArray[np.intp]:
    """An order of the rows that depends only on their content: rows that tie on every key are
    interchangeable for every metric."""
    keys: list[NDArray[Any]] = []
    for answer in answers:
        if answer.values is not None:
            keys.append(np.asarray(answer.values, np.float64))
        if answer.probabilities is not None:
            keys.extend(np.asarray(answer.probabilities, np.float64).T)
        if answer.labels is not None:
            keys.append(_codes(answer.labels))
    keys.append(_codes(y))
    return np.lexsort(keys[::-1]) if keys else np.arange(len(y))


def _codes(values: NDArray[Any]) -> NDArray[np.intp]:
    _, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return np.asarray(codes).ravel()


def _resample_weights(rows: int, resamples: int) -> Any:
    """Blocks of bootstrap weights: row counts of resamples drawn with replacement."""
    generator = np.random.default_rng(_SEED)
    drawn = 0
    while drawn < resamples:
        block = min(_BLOCK, resamples - drawn)
        yield generator.multinomial(rows, np.full(rows, 1.0 / rows), size=block).astype(np.float64)
        drawn += block


def weighted_metric(
    metric: str, rows: Rows, answer: Answers
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """A function of a [B, n] weight block returning the metric of each resample."""
    order = rows.order
    if metric in ("r2", "rmse", "mae", "squared_error"):
        y = np.asarray(rows.y, np.float64)
        values = np.asarray(answer.values, np.float64)[order]
        error = y - values

        def regression(w: NDArray[np.float64]) -> NDArray[np.float64]:
            total = w.sum(axis=1)
            squared = w @ error**2
            if metric == "mae":
                return np.asarray((w @ np.abs(error)) / total)
            if metric == "rmse":
                return np.asarray(np.sqrt(squared / total))
            if metric == "squared_error":
                return np.asarray(squared / total)
            spread = w @ y**2 - (w @ y) ** 2 / total
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = 1.0 - squared / spread
            return np.asarray(np.where(spread > 1e-12 * np.maximum(1.0, w @ y**2), r2, np.nan))

        return regression

    probabilities = np.asarray(answer.probabilities, np.float64)[order]
    labels = np.asarray(answer.labels)[order] if answer.labels is not None else None
    truth = rows.truth
    if metric in ("brier_score", "bounded_log_loss"):
        per_row = brier_rows if metric == "brier_score" else bounded_log_loss_rows
        losses = per_row(rows.y, probabilities, rows.classes)
        return lambda w: np.asarray((w @ losses) / w.sum(axis=1))
    if metric == "log_loss":
        clipped = np.clip(probabilities, _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        picked = -np.log(np.where(truth, clipped, 1.0).prod(axis=1))
        return lambda w: np.asarray((w @ picked) / w.sum(axis=1))
    if labels is None:
        raise ValueError(f"{metric} needs the predicted labels")
    predicted = one_hot(labels, rows.classes).astype(bool)
    correct = (labels == rows.y).astype(np.float64)
    if metric == "accuracy":
        return lambda w: np.asarray((w @ correct) / w.sum(axis=1))
    if metric == "balanced_accuracy":

        def balanced(w: NDArray[np.float64]) -> NDArray[np.float64]:
            actual = w @ truth
            hits = w @ (truth & predicted)
            with np.errstate(divide="ignore", invalid="ignore"):
                recall = np.where(actual > 0, hits / actual, np.nan)
            return np.asarray(np.nanmean(recall, axis=1))

        return balanced
    if metric == "f1_macro":

        def f1(w: NDArray[np.float64]) -> NDArray[np.float64]:
            denominator = w @ truth + w @ predicted
            hits = w @ (truth & predicted)
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = np.where(denominator > 0, 2 * hits / denominator, np.nan)
            return np.asarray(np.nanmean(scores, axis=1))

        return f1
    if metric == "roc_auc":
        return _weighted_auc(truth, probabilities)
    raise ValueError(f"no weighted form of {metric}")


def _weighted_auc(
    truth: NDArray[np.bool_], probabilities: NDArray[np.float64]
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """Mann-Whitney AUC with average ranks for ties, per resample: binary on the second class, or
    the one-vs-rest mean. NaN for a resample that lacks a side of some split."""
    columns = [1] if truth.shape[1] == 2 else list(range(truth.shape[1]))
    prepared = []
    for column in columns:
        scores = probabilities[:, column]
        order = np.argsort(scores, kind="mergesort")
        sorted_scores = scores[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_scores)) + 1))
        positive = truth[order, column].astype(np.float64)
        prepared.append((order, starts, positive))

    def auc(w: NDArray[np.float64]) -> NDArray[np.float64]:
        per_column = []
        for order, starts, positive in prepared:
            weights = w[:, order]
            pos = np.add.reduceat(weights * positive, starts, axis=1)
            neg = np.add.reduceat(weights * (1 - positive), starts, axis=1)
            below = np.cumsum(neg, axis=1) - neg
            total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = (pos * (below + neg / 2)).sum(axis=1) / (total_pos * total_neg)
            per_column.append(np.where((total_pos > 0) & (total_neg > 0), value, np.nan))
        # A class missing from a resample leaves that resample's mean undefined, as unweighted.
        return np.asarray(np.mean(per_column, axis=0))

    return auc


def bootstrap_intervals(
    y: NDArray[Any],
    classes: Sequence[Any],
    answers: Mapping[str, Answers],
    metrics: Sequence[str],
    confidence: float,
    *,
    differences: Sequence[tuple[str, str]] = (),
    resamples: int = RESAMPLES,
) -> tuple[dict[str, dict[str, Interval]], dict[tuple[str, str], dict[str, Interval]]]:
    """Percentile intervals of every metric for each named model, and of the paired differences
    (first minus second, in the metric's own direction) for ``differences``. Every model is scored
    on the same resamples, so a difference's interval is paired."""
    order = canonical_order(y, list(answers.values()))
    rows = Rows(y, classes, order)
    functions = {
        (name, metric): weighted_metric(metric, rows, answer)
        for name, answer in answers.items()
        for metric in metrics
    }
    estimates: dict[tuple[str, str], list[NDArray[np.float64]]] = {key: [] for key in functions}
    full = np.ones((1, rows.y.size))
    point = {key: float(function(full)[0]) for key, function in functions.items()}
    for block in _resample_weights(int(rows.y.size), resamples):
        for key, function in functions.items():
            estimates[key].append(function(block))
    tail = (1 - confidence) / 2 * 100
    count = int(rows.y.size)

    def interval(estimate: float, samples: NDArray[np.float64]) -> Interval:
        finite = samples[np.isfinite(samples)]
        if not math.isfinite(estimate) or finite.size < resamples / 2:
            return Interval(estimate, -math.inf, math.inf, confidence, count)
        low, high = np.percentile(finite, [tail, 100 - tail])
        return Interval(estimate, float(low), float(high), confidence, count)

    per_model: dict[str, dict[str, Interval]] = {name: {} for name in answers}
    for (name, metric), blocks in estimates.items():
        per_model[name][metric] = interval(point[(name, metric)], np.concatenate(blocks))
    paired: dict[tuple[str, str], dict[str, Interval]] = {}
    for first, second in differences:
        paired[(first, second)] = {}
        for metric in metrics:
            sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
            samples = sign * (
                np.concatenate(estimates[(first, metric)])
                - np.concatenate(estimates[(second, metric)])
            )
            estimate = sign * (point[(first, metric)] - point[(second, metric)])
            paired[(first, second)][metric] = interval(estimate, samples)
    return per_model, paired


# ----------------------------------------------------------------------------- the verdict

# Improvements are compared with this slack so 0.03 >= 0.03 holds despite float rounding.
_EPSILON = 1e-12
ADVICE = (
    "more rows would narrow the interval: upload a larger dataset, or hold out more of it "
    "(test_size)"
)


class EvidenceDocument(TypedDict):
    """The gate's comparison of the chosen candidate with what it would replace."""

    measure: str
    against: Literal["baseline", "production"]
    reference: str
    confidence: float
    comparisons: int
    improvement: IntervalDocument
    metric: str
    metric_improvement: IntervalDocument | None
    # The selection metric's improvement at the evidence's confidence; None when it is the same
    # comparison as the measure (R², RMSE against the squared error).
    metric_evidence: IntervalDocument | None
    min_improvement: float
    passed: bool
    outcome: Outcome
    verdict: str
    advice: str | None
    judged_on: Literal["holdout", "cross_validation"]


def measures_for(task: str, metric: str) -> list[str]:
    """What the gate looks for evidence on: the task's proper scoring rule, and the selection
    metric unless it is the same comparison (R² and RMSE order models on the same rows exactly as
    the squared error does)."""
    measure = EVIDENCE_MEASURE[task]
    same = {"squared_error": {"r2", "rmse"}, "bounded_log_loss": {"log_loss"}}[measure]
    return [measure] if metric in same else [measure, metric]


def evidence_confidence(confidence: float, comparisons: int, measures: int) -> float:
    """Each interval's confidence: Bonferroni over the candidates and the measures, so that the
    chance that any of them shows a no-better candidate better stays below 1 - confidence."""
    return adjusted_confidence(confidence, comparisons * measures)


def weigh(
    measure: str,
    improvement: Interval,
    means: tuple[float, float],
    *,
    against: Literal["baseline", "production"],
    reference: str,
    confidence: float,
    comparisons: int,
    metric: str,
    metric_improvement: Interval | None,
    metric_evidence: Interval | None = None,
    min_improvement: float = 0.0,
    judged_on: Literal["holdout", "cross_validation"] = "holdout",
) -> EvidenceDocument:
    """Promote only if the challenger is better than the reference beyond noise, on the proper
    scoring rule (``improvement``: reference minus challenger loss) or on the selection metric
    (``metric_evidence``, when it is another comparison), each interval at the confidence
    ``evidence_confidence`` gives; and the selection metric is not worse beyond noise
    (``metric_improvement`` at ``confidence``), or, when the spec asks for a margin, improves by
    at least ``min_improvement``. ``means``: the reference's and the challenger's mean loss.

    Two measures because each sees what the other misses: log loss a model that sharpens the
    probabilities of a rare class without changing a label, accuracy a model that ranks well with
    overconfident probabilities (hundreds of columns on a few hundred rows)."""
    on_measure = improvement.low > 0
    on_metric = metric_evidence is not None and metric_evidence.low > 0
    better = on_measure or on_metric
    metric_ok, metric_text = _metric_check(metric, metric_improvement, min_improvement)
    passed = better and metric_ok
    name = MEASURE_NAMES.get(measure, measure)
    counted = comparisons * (2 if metric_evidence is not None else 1)
    corrected = (
        f" ({percent(confidence)} across {comparisons} candidates"
        f"{' and 2 measures' if metric_evidence is not None else ''})"
        if counted > 1
        else ""
    )
    fold = ", out of fold" if judged_on == "cross_validation" else ""
    reference_mean, challenger_mean = means
    evidence = (
        f"{name} {challenger_mean:.4f} against {reference_mean:.4f}, better by "
        f"{improvement.estimate:+.4f} ({percent(improvement.confidence)} interval "
        f"{improvement.low:.4f} to {improvement.high:.4f}{corrected}, on {improvement.rows} rows"
        f"{fold})"
    )
    if metric_evidence is not None:
        evidence += (
            f"; {metric} better by {metric_evidence.estimate:+.4f} "
            f"({percent(metric_evidence.confidence)} interval {metric_evidence.low:.4f} to "
            f"{metric_evidence.high:.4f})"
        )
    if passed:
        carried = " and ".join(m for m, shown in ((name, on_measure), (metric, on_metric)) if shown)
        verdict = f"beats {reference} beyond noise on {carried}: {evidence}; {metric_text}"
        outcome: Outcome = "promote"
    else:
        outcome = "NotBetterThanBaseline" if against == "baseline" else "NotBetterThanProduction"
        if not better:
            verdict = (
                f"{outcome}: no better than {reference} beyond noise: {evidence}; {metric_text}"
            )
        else:
            verdict = f"{outcome}: {metric_text} ({evidence})"
    return {
        "measure": measure,
        "against": against,
        "reference": reference,
        "confidence": confidence,
        "comparisons": comparisons,
        "improvement": improvement.document(),
        "metric": metric,
        "metric_improvement": metric_improvement.document() if metric_improvement else None,
        "metric_evidence": metric_evidence.document() if metric_evidence else None,
        "min_improvement": min_improvement,
        "passed": passed,
        "outcome": outcome,
        "verdict": verdict,
        "advice": None if passed else ADVICE,
        "judged_on": judged_on,
    }


def _metric_check(
    metric: str, improvement: Interval | None, min_improvement: float
) -> tuple[bool, str]:
    if improvement is None or not math.isfinite(improvement.estimate):
        return min_improvement <= 0, f"{metric} cannot be compared on these rows"
    described = f"{metric} {improvement.describe(4)}"
    if min_improvement > 0:
        ok = improvement.estimate >= min_improvement - _EPSILON
        relation = "reaches" if ok else "is below"
        return ok, f"{described} ({relation} min_improvement {min_improvement})"
    if improvement.high < 0:
        return False, f"{described}: worse beyond noise"
    return True, described


# ---- ground truth against the holdout

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
            np.asarray(answer.probabilities, np.float64), _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR
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
    generator = np.random.default_rng((_SEED, stream))
    blocks = []
    drawn = 0
    while drawn < resamples:
        block = min(_BLOCK, resamples - drawn)
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
