"""The gate's evidence as Evaluate writes it (mlstack_core.evidence.weigh), for the tests of what
renders it: written out, so they depend on the document's shape, not on how it is computed."""

from __future__ import annotations

from mlstack_core.evidence import ADVICE, EvidenceDocument, Interval

ROWS = 120
CONFIDENCE = 0.95


def weighed(
    *, passed: bool, comparisons: int = 3, min_improvement: float = 0.0
) -> EvidenceDocument:
    """Production v1 against a challenger: clearly better in Brier score, or no better beyond
    noise; accuracy +0.02 either way."""
    level = 1 - (1 - CONFIDENCE) / comparisons
    improvement = (
        Interval(0.1069, 0.0966, 0.1172, level, ROWS)
        if passed
        else Interval(0.0069, -0.0034, 0.0172, level, ROWS)
    )
    accuracy = Interval(0.02, -0.01, 0.05, CONFIDENCE, ROWS)
    evidence = (
        f"Brier score {0.5001 - improvement.estimate:.4f} against 0.5001, better by "
        f"{improvement.describe(4)}, on {ROWS} rows"
    )
    metric_text = f"accuracy {accuracy.describe(4)}"
    verdict = (
        f"beats production v1 beyond noise: {evidence}; {metric_text}"
        if passed
        else f"NotBetterThanProduction: no better than production v1 beyond noise: {evidence}; "
        f"{metric_text}"
    )
    return {
        "measure": "brier_score",
        "against": "production",
        "reference": "production v1",
        "confidence": CONFIDENCE,
        "comparisons": comparisons,
        "improvement": improvement.document(),
        "metric": "accuracy",
        "metric_improvement": accuracy.document(),
        "metric_evidence": None,
        "min_improvement": min_improvement,
        "passed": passed,
        "outcome": "promote" if passed else "NotBetterThanProduction",
        "verdict": verdict,
        "advice": None if passed else ADVICE,
        "judged_on": "holdout",
    }
