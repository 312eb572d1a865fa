"""The CLI's one-line account of each pipeline step."""

from __future__ import annotations

import pytest

from mlstack.cli.progress import summarize

pytestmark = pytest.mark.unit


def _evaluation(parity: dict[str, object], metric: str) -> dict[str, object]:
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
    state["evaluation"]["rehearsal"] = {  # type: ignore[index]
        "passed": False,
        "error": "ServingRehearsalFailed",
        "reason": "a 1-row records request was refused with 400",
    }
    assert "ServingRehearsalFailed: a 1-row records request" in summarize("Evaluate", state)


def test_the_report_names_a_person_s_decision_over_the_gate_s() -> None:
    from mlstack.cli.report import decision_text

    evaluation = {"decision": "promote"}
    assert decision_text({"status": "Registered"}, evaluation) == "gate: promote"
    rejected = {"status": "Rejected", "status_changed_by": "arn:aws:iam::1:user/ana"}
    assert decision_text(rejected, evaluation) == (
        "gate: promote; rejected by arn:aws:iam::1:user/ana"
    )
