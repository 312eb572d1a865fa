"""The gate's verdict: promote only when the challenger is better than the reference beyond
noise, in words a person can act on."""

from __future__ import annotations

import math
from typing import Literal, TypedDict

from mlstack_core.evidence.intervals import Interval, IntervalDocument, adjusted_confidence
from mlstack_core.evidence.losses import EVIDENCE_MEASURE
from mlstack_core.evidence_text import MEASURE_NAMES, percent

# ----------------------------------------------------------------------------- the verdict

# Improvements are compared with this slack so 0.03 >= 0.03 holds despite float rounding.
Outcome = Literal["promote", "NotBetterThanBaseline", "NotBetterThanProduction"]

_EPSILON = 1e-12
ADVICE = (
    "more rows would narrow the interval: upload a larger dataset, or hold out more of it "
    "(test_size)"
)
# Judged by cross-validation every row is already judged: only more rows help.
ADVICE_CROSS_VALIDATED = "more rows would narrow the interval: upload a larger dataset"


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
        "advice": None
        if passed
        else (ADVICE_CROSS_VALIDATED if judged_on == "cross_validation" else ADVICE),
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
