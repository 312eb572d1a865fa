"""The Monitor's ground-truth check, piece by piece: reading labels, scoring the captured answers
with the evaluation's metrics, and judging whether quality fell (and by how much)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlstack_core import scoring
from mlstack_monitor.quality import Feedback, judge, score_joined

pytestmark = pytest.mark.unit

CLASSIFIER: dict[str, Any] = {
    "metric": "accuracy",
    "metrics": {"accuracy": 0.9, "log_loss": 0.3},
    "schema": {"task": "classification", "classes": ["a", "b"], "label_type": "str"},
}
INTEGER_LABELS: dict[str, Any] = {
    "metric": "f1_macro",
    "metrics": {"f1_macro": 0.8},
    "schema": {"task": "classification", "classes": [0, 1, 2], "label_type": "int"},
}
REGRESSOR: dict[str, Any] = {
    "metric": "rmse",
    "metrics": {"rmse": 2.0},
    "schema": {"task": "regression"},
}
CONFIG = {"margin": 0.05, "min_rows": 3, "threshold": None}


def capture(prediction: Any, request_id: str = "r", row: int = 0, **more: Any) -> dict[str, Any]:
    return {"request_id": request_id, "row": row, "prediction": prediction, **more}


def test_labels_are_read_by_request_and_row_or_by_key_and_later_files_win() -> None:
    feedback = Feedback()
    feedback.read("one.csv", "request_id,row,species\nr,0,a\nr,1,b\n", "species", None)
    feedback.read("two.csv", "request_id,row,label\nr,1,a\n", "species", None)
    feedback.read("three.csv", "customer,species\nc9,b\n", "species", "customer")
    assert feedback.label_of(capture("x", "r", 0)) == "a"
    assert feedback.label_of(capture("x", "r", 1)) == "a"
    assert feedback.label_of(capture("x", "other", 0, key="c9")) == "b"
    assert feedback.label_of(capture("x", "other", 5)) is None
    assert [f["rows"] for f in feedback.files] == [2, 1, 1]


def test_a_file_the_monitor_cannot_join_is_named_with_what_it_lacks() -> None:
    feedback = Feedback()
    feedback.read("bad.csv", "id,truth\n1,a\n", "species", None)
    (problem,) = feedback.problems
    assert "bad.csv" in problem
    assert "request_id and row" in problem
    assert "'species'" in problem
    assert feedback.files == []


def test_a_classifiers_answers_are_scored_with_the_evaluations_metrics() -> None:
    probabilities = [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]]
    predictions = ["a", "b", "a", "b"]
    labels = ["a", "b", "b", "b"]
    joined = [
        (capture(p, row=i, probabilities=q), label)
        for i, (p, q, label) in enumerate(zip(predictions, probabilities, labels, strict=True))
    ]
    scored = score_joined(CLASSIFIER, joined)
    expected = scoring.classification_metrics(
        np.array(labels, dtype=object),
        np.array(predictions, dtype=object),
        np.array(probabilities),
        ["a", "b"],
    )
    assert scored["metric"] == "accuracy"
    assert scored["value"] == 0.75
    assert scored["rows"] == 4
    assert scored["scores"]["log_loss"] == pytest.approx(expected["log_loss"])
    assert scored["scores"]["unknown_labels"] == 0


def test_a_label_the_model_cannot_predict_counts_against_accuracy_only() -> None:
    joined = [
        (capture("a", row=0, probabilities=[0.9, 0.1]), "a"),
        (capture("a", row=1, probabilities=[0.9, 0.1]), "c"),
    ]
    scored = score_joined(CLASSIFIER, joined)
    assert scored["value"] == 0.5
    assert scored["scores"]["unknown_labels"] == 1
    assert scored["scores"]["log_loss"] == pytest.approx(-np.log(0.9))


def test_integer_labels_are_read_as_the_versions_label_type() -> None:
    joined = [(capture(1, row=0), "1"), (capture(2, row=1), "2.0"), (capture(0, row=2), "1")]
    scored = score_joined(INTEGER_LABELS, joined)
    assert scored["scores"]["accuracy"] == pytest.approx(2 / 3)


@given(
    truth=st.lists(st.floats(-100, 100), min_size=3, max_size=30),
    noise=st.floats(0, 10),
)
def test_a_regressors_error_is_its_evaluation_metric(truth: list[float], noise: float) -> None:
    predictions = [value + noise for value in truth]
    joined = [
        (capture(p, row=i), repr(t))
        for i, (p, t) in enumerate(zip(predictions, truth, strict=True))
    ]
    scored = score_joined(REGRESSOR, joined)
    assert scored["value"] == pytest.approx(noise, abs=1e-6)


def test_quality_holds_within_the_margin_of_the_holdout() -> None:
    verdict = judge(CLASSIFIER, {"metric": "accuracy", "value": 0.87, "rows": 10}, CONFIG)
    assert verdict["status"] == "holding"
    assert verdict["drop"] == pytest.approx(0.03)


def test_fallen_quality_says_what_fell_and_by_how_much() -> None:
    verdict = judge(CLASSIFIER, {"metric": "accuracy", "value": 0.6, "rows": 10}, CONFIG)
    assert verdict["status"] == "fallen"
    (reason,) = verdict["reasons"]
    assert "accuracy 0.6000 on 10 labelled rows is 0.3000 worse than the holdout's 0.9000" in reason


def test_for_an_error_metric_higher_is_worse() -> None:
    config = {**CONFIG, "threshold": 3.0}
    rising = judge(REGRESSOR, {"metric": "rmse", "value": 3.5, "rows": 10}, config)
    assert rising["status"] == "fallen"
    assert len(rising["reasons"]) == 2  # past the threshold, and 1.5 worse than the holdout
    falling = judge(REGRESSOR, {"metric": "rmse", "value": 1.0, "rows": 10}, config)
    assert falling["status"] == "holding"


def test_too_few_labels_are_not_judged() -> None:
    verdict = judge(CLASSIFIER, {"metric": "accuracy", "value": 0.0, "rows": 2}, CONFIG)
    assert verdict["status"] == "not enough labels"
    assert verdict["reasons"] == []


def test_a_regressors_labels_that_are_not_numbers_are_counted_not_scored() -> None:
    joined = [
        (capture(2.0, row=0), "3.0"),
        (capture(4.0, row=1), "n/a"),  # not a number
        (capture(None, row=2), "5.0"),  # the answer was null (NaN)
        (capture(6.0, row=3), "inf"),
    ]
    scored = score_joined(REGRESSOR, joined)
    assert scored["rows"] == 1
    assert scored["value"] == pytest.approx(1.0)
    assert scored["scores"]["unusable_labels"] == 3
    nothing = score_joined(REGRESSOR, [(capture(1.0), "none")])
    assert nothing["value"] is None
    assert nothing["rows"] == 0
