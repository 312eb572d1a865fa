"""Scores with their confidence intervals, and the gate's verdict, in the words a person reads: the
model card and the CLI both format them here.

It reads the documents ``mlstack_core.evidence`` writes (an interval: estimate, low, high,
confidence, rows; the evidence: measure, reference, verdict, ...) without importing that module,
so the CLI starts without numpy. Versions and evaluations written before the gate carried
intervals have neither: every function here renders those as before, the bare value and no
verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# The evidence's names for its per-row measures; mlstack_core.evidence reads them from here,
# where the CLI can import them without numpy.
MEASURE_NAMES = {
    "bounded_log_loss": "log loss",
    "brier_score": "Brier score",
    "squared_error": "squared error",
}


def percent(confidence: float) -> str:
    """95% for 0.95, 98.3% for 0.98333 (as mlstack_core.evidence.percent)."""
    text = f"{100 * confidence:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def number(value: float | None, *, signed: bool = False, scale: float | None = None) -> str:
    """A score with four decimals; a large or tiny one with six significant digits; '-' when it
    is undefined (JSON carries an undefined score as null). ``scale`` chooses the form instead of
    the value itself, so an interval's bounds read like its estimate (0.0132 from -0.0006)."""
    if value is None or not math.isfinite(value):
        return "-"
    sign = "+" if signed else ""
    size = abs(value if scale is None else scale)
    if size == 0 or 1e-3 <= size < 1e4:
        return f"{value:{sign}.4f}"
    return f"{value:{sign}.6g}"


def interval_text(interval: Mapping[str, Any]) -> str:
    """'95% interval 0.7810 to 0.8420'. An interval with an open side (too few rows, or a metric
    most resamples leave undefined) has no bounds to give."""
    level = percent(float(interval["confidence"]))
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None:
        return f"{level} interval undefined"
    scale = max(abs(v) for v in (low, high, interval.get("estimate") or 0.0))
    return f"{level} interval {number(low, scale=scale)} to {number(high, scale=scale)}"


def with_interval(
    value: float | None, interval: Mapping[str, Any] | None, *, signed: bool = False
) -> str:
    """'0.8123 (95% interval 0.7810 to 0.8420)'; the bare value when there is no interval."""
    text = number(value, signed=signed)
    if text == "-" or not interval or interval.get("confidence") is None:
        return text
    return f"{text} ({interval_text(interval)})"


def metric_names(*entries: Mapping[str, Any] | None) -> list[str]:
    """The metrics of scored models (the challenger, production, the baseline: each a document
    with ``metrics`` and maybe ``intervals``), in order, then the measures only intervals hold
    (the evidence's Brier score or squared error)."""
    names: dict[str, None] = {}
    for field in ("metrics", "intervals"):
        for entry in entries:
            names.update(dict.fromkeys((entry or {}).get(field) or {}))
    return list(names)


def metric_value(entry: Mapping[str, Any] | None, name: str) -> float | None:
    """A model's value of ``name``: its metric, or the estimate of its interval for a measure
    that is not one of the task's metrics."""
    metrics = (entry or {}).get("metrics") or {}
    if name in metrics:
        value: float | None = metrics[name]
        return value
    return (interval_of(entry, name) or {}).get("estimate")


def interval_of(entry: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    interval: Mapping[str, Any] | None = ((entry or {}).get("intervals") or {}).get(name)
    return interval


def metric_with_interval(entry: Mapping[str, Any] | None, name: str) -> str:
    """A model's value of ``name`` with its interval: '0.8123 (95% interval 0.7810 to 0.8420)'."""
    return with_interval(metric_value(entry, name), interval_of(entry, name))


def rejected(evidence: Mapping[str, Any] | None) -> bool:
    """Whether the evidence was not enough to promote (the other checks may still reject)."""
    return bool(evidence) and not (evidence or {}).get("passed", True)


def verdict(evidence: Mapping[str, Any] | None) -> str | None:
    """The gate's verdict sentence: what the challenger was weighed against, and how sure it is."""
    text = (evidence or {}).get("verdict")
    return str(text) if text else None


def advice(evidence: Mapping[str, Any] | None) -> str | None:
    """What would let a rejected challenger show its worth; None when the evidence sufficed."""
    text = (evidence or {}).get("advice")
    return str(text) if text and rejected(evidence) else None


def judgement(evidence: Mapping[str, Any] | None) -> list[str]:
    """The verdict and, when the evidence fell short, the advice: one labelled line each."""
    sentence, suggestion = verdict(evidence), advice(evidence)
    lines = [f"verdict: {sentence}"] if sentence else []
    if suggestion:
        lines.append(f"advice: {suggestion}")
    return lines


def how_judged(evidence: Mapping[str, Any]) -> str:
    """How the gate weighed the challenger against what it would replace: the measure, the rows,
    the confidence after Bonferroni's correction for the candidates compared, and the rule on the
    selection metric."""
    measure = str(evidence.get("measure"))
    improvement = evidence.get("improvement") or {}
    confidence = float(evidence.get("confidence") or 0)
    comparisons = int(evidence.get("comparisons") or 1)
    level = float(improvement.get("confidence") or confidence)
    if comparisons > 1:
        correction = (
            f"{percent(confidence)} with Bonferroni's correction across {comparisons} candidates"
        )
    else:
        correction = "one candidate, so no correction"
    metric = evidence.get("metric")
    min_improvement = float(evidence.get("min_improvement") or 0)
    if min_improvement > 0:
        metric_rule = f"{metric} improves by at least {min_improvement}"
    else:
        metric_rule = f"{metric} is not worse beyond noise (its {percent(confidence)} interval)"
    rows = improvement.get("rows")
    name = MEASURE_NAMES.get(measure, measure)
    if evidence.get("judged_on") == "cross_validation":
        return (
            f"How the gate judged: by repeated cross-validation, the {name} of each row answered "
            f"by a candidate fitted on the other folds, against {evidence.get('reference')}'s on "
            f"the same {'' if rows is None else f'{rows} '}rows. It promotes only if the "
            f"corrected {percent(level)} interval of the folds' mean improvement ({correction}) "
            f"lies above 0, and {metric_rule}."
        )
    return (
        f"How the gate judged: the {name} of each holdout row, the "
        f"challenger's against {evidence.get('reference')}'s on the same "
        f"{'' if rows is None else f'{rows} '}rows. It promotes only if the paired "
        f"{percent(level)} interval of the mean improvement ({correction}) lies above 0, and "
        f"{metric_rule}."
    )
