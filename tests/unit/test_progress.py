"""The CLI's one-line account of each pipeline step."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.cli.progress import summarize
from mlstack_core.evidence import ADVICE, Interval
from tests.unit.evidence_fixtures import ROWS, weighed

pytestmark = pytest.mark.unit


def _evaluation(parity: dict[str, object], metric: str) -> dict[str, Any]:
    return {
        "evaluation": {
            "metric": metric,
            "decision": "promote",
            "reasons": ["beats the baseline"],
            "best": {"candidate_id": "ridge", "metrics": {metric: 0.5}, "parity": parity},
            "rehearsal": {
                "passed": True,
                "requests": [{"form": "records", "rows": 1}, {"form": "records", "rows": 40}],
            },
        }
    }


def test_a_regressor_s_parity_is_described_not_printed_as_none() -> None:
    line = summarize(
        "Evaluate",
        _evaluation(
            {"label_agreement": None, "max_abs_diff": 0.002, "max_scaled_diff": 1e-5}, "r2"
        ),
    )
    assert "None" not in line
    assert "parity: max diff 0.002 (1e-05 of the target's spread)" in line
    assert "served as scored (1 + 40 rows" in line


def test_a_classifier_s_parity_names_label_agreement() -> None:
    line = summarize(
        "Evaluate", _evaluation({"label_agreement": 0.995, "max_abs_diff": 3e-7}, "accuracy")
    )
    assert "parity: 99.5% same labels, max probability diff 3e-07" in line


def test_a_failed_rehearsal_is_named() -> None:
    state = _evaluation({"label_agreement": 1.0, "max_abs_diff": 0.0}, "accuracy")
    state["evaluation"]["rehearsal"] = {
        "passed": False,
        "error": "ServingRehearsalFailed",
        "reason": "a 1-row records request was refused with 400",
    }
    assert "ServingRehearsalFailed: a 1-row records request" in summarize("Evaluate", state)


def _judged(*, passed: bool) -> dict[str, Any]:
    """An Evaluate state whose gate weighed evidence, as Evaluate writes it."""
    evidence = weighed(passed=passed)
    state = _evaluation({"label_agreement": 1.0, "max_abs_diff": 0.0}, "accuracy")
    evaluation = state["evaluation"]
    evaluation["decision"] = "promote" if passed else "reject"
    evaluation["reasons"] = ["accuracy 0.5000 meets threshold 0.4", evidence["verdict"]]
    evaluation["best"]["intervals"] = {"accuracy": Interval(0.5, 0.41, 0.59, 0.95, ROWS).document()}
    evaluation["evidence"] = evidence
    return state


def test_the_winner_s_score_shows_its_interval_and_the_verdict() -> None:
    state = _judged(passed=True)
    verdict = state["evaluation"]["evidence"]["verdict"]
    first, *rest = summarize("Evaluate", state).split("\n")
    assert "best ridge accuracy=0.5000 (95% interval 0.4100 to 0.5900) as ONNX" in first
    # The verdict is one of the reasons; it is printed once, on a line of its own.
    assert first.endswith("decision: promote (accuracy 0.5000 meets threshold 0.4)")
    assert rest == [f"      verdict: {verdict}"]


def test_a_rejection_for_lack_of_evidence_prints_the_advice() -> None:
    state = _judged(passed=False)
    lines = summarize("Evaluate", state).split("\n")
    assert lines[1].startswith("      verdict: NotBetterThanProduction: no better than")
    assert lines[2] == f"      advice: {ADVICE}"


def test_an_evaluation_without_evidence_prints_as_before() -> None:
    line = summarize("Evaluate", _evaluation({"label_agreement": 1.0}, "accuracy"))
    assert "\n" not in line
    assert "accuracy=0.5000 as ONNX" in line
    assert line.endswith("decision: promote (beats the baseline)")


def test_the_report_names_a_person_s_decision_over_the_gate_s() -> None:
    from mlstack.cli.report import decision_text

    evaluation = {"decision": "promote"}
    assert decision_text({"status": "Registered"}, evaluation) == "gate: promote"
    rejected = {"status": "Rejected", "status_changed_by": "arn:aws:iam::1:user/ana"}
    assert decision_text(rejected, evaluation) == (
        "gate: promote; rejected by arn:aws:iam::1:user/ana"
    )
