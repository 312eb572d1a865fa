"""The Monitor's ground-truth check, piece by piece: reading labels, scoring the captured answers
with the evaluation's metrics, and judging whether quality fell (and by how much)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlstack_core import model_metrics
from mlstack_core.documents import VersionDocument
from mlstack_core.evidence import Answers, Labelled, unpaired_metric_difference
from mlstack_monitor.quality import Feedback, judge, measure_joined

pytestmark = pytest.mark.unit

# Partial version documents: only what the quality check reads.
CLASSIFIER = cast(
    VersionDocument,
    {
        "metric": "accuracy",
        "metrics": {"accuracy": 0.9, "log_loss": 0.3},
        "schema": {"task": "classification", "classes": ["a", "b"], "label_type": "str"},
    },
)
INTEGER_LABELS = cast(
    VersionDocument,
    {
        "metric": "f1_macro",
        "metrics": {"f1_macro": 0.8},
        "schema": {"task": "classification", "classes": [0, 1, 2], "label_type": "int"},
    },
)
REGRESSOR = cast(
    VersionDocument,
    {
        "metric": "rmse",
        "metrics": {"rmse": 2.0},
        "schema": {"task": "regression"},
    },
)
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
    scored = measure_joined(CLASSIFIER, joined)
    expected = model_metrics.classification_metrics(
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
    scored = measure_joined(CLASSIFIER, joined)
    assert scored["value"] == 0.5
    assert scored["scores"]["unknown_labels"] == 1
    assert scored["scores"]["log_loss"] == pytest.approx(-np.log(0.9))


def test_integer_labels_are_read_as_the_versions_label_type() -> None:
    joined = [(capture(1, row=0), "1"), (capture(2, row=1), "2.0"), (capture(0, row=2), "1")]
    scored = measure_joined(INTEGER_LABELS, joined)
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
    scored = measure_joined(REGRESSOR, joined)
    assert scored["value"] == pytest.approx(noise, abs=1e-6)


def served(rows: int, right: int, seed: int = 0) -> list[tuple[dict[str, Any], str]]:
    """``rows`` labelled captures of CLASSIFIER, ``right`` of them answered correctly, in a
    shuffled order; the model is fairly sure of every answer."""
    order = np.random.default_rng(seed).permutation(rows)
    joined = []
    for i in order.tolist():
        answer = "a" if i % 2 else "b"
        truth = answer if i < right else ("b" if answer == "a" else "a")
        sure = [0.8, 0.2] if answer == "a" else [0.2, 0.8]
        joined.append((capture(answer, row=i, probabilities=sure), truth))
    return joined


def holdout_of(rows: int, right: int) -> Labelled:
    """A version's stored holdout answers as the Monitor reads them: text labels and classes."""
    y = np.array(["a", "b"] * (rows // 2) + ["a"] * (rows % 2))
    labels = y.copy()
    labels[right:] = np.where(y[right:] == "a", "b", "a")
    probabilities = np.where((labels == "a")[:, None], [0.8, 0.2], [0.2, 0.8])
    return Labelled(y, ["a", "b"], Answers(labels=labels, probabilities=probabilities))


HOLDOUT = holdout_of(300, 270)  # accuracy 0.9, as CLASSIFIER's document says
CONFIDENCE = 0.95


def test_a_handful_of_unlucky_rows_does_not_alert() -> None:
    # 42 of 50 right: 0.06 below the holdout, past the margin, but well within noise.
    verdict = judge(CLASSIFIER, served(50, 42), CONFIG, holdout=HOLDOUT, confidence=CONFIDENCE)
    assert verdict["drop"] == pytest.approx(0.06)
    assert verdict["drop_interval"]["low"] < 0 < verdict["drop_interval"]["high"]
    assert verdict["drop_beyond_noise"] is False
    assert verdict["status"] == "holding"
    assert verdict["reasons"] == []
    assert verdict["summary"].startswith("accuracy on 50 labelled rows 0.840 (95% interval ")
    assert "holdout 0.900: down 0.060, interval -" in verdict["summary"]
    assert verdict["summary"].endswith("more than the margin 0.05 but within noise: not alerted")


def test_a_real_drop_on_enough_rows_alerts() -> None:
    verdict = judge(CLASSIFIER, served(800, 640), CONFIG, holdout=HOLDOUT, confidence=CONFIDENCE)
    assert verdict["status"] == "fallen"
    assert verdict["drop"] == pytest.approx(0.1)
    assert 0 < verdict["drop_interval"]["low"] < 0.1 < verdict["drop_interval"]["high"]
    assert verdict["drop_beyond_noise"] is True
    (reason,) = verdict["reasons"]
    assert reason.startswith("accuracy on 800 labelled rows 0.800 (95% interval 0.77")
    assert ", holdout 0.900: down 0.100, interval 0.0" in reason
    assert reason.endswith("beyond noise: worse than the holdout by more than the margin 0.05")
    # Both sides' noise counts: the holdout's 300 rows as well as the 800 labelled ones.
    assert verdict["compared_with"] == "holdout rows"
    assert verdict["test"] == "Welch"
    assert verdict["holdout_rows"] == 300
    assert verdict["holdout_interval"]["estimate"] == pytest.approx(0.9)
    assert verdict["interval"]["estimate"] == pytest.approx(0.8)
    assert verdict["interval"]["rows"] == 800


def test_the_same_drop_alerts_once_enough_rows_show_it() -> None:
    statuses = [
        judge(CLASSIFIER, served(rows, int(0.8 * rows)), CONFIG, holdout=HOLDOUT, confidence=0.95)[
            "status"
        ]
        for rows in (10, 40, 400)
    ]
    assert statuses == ["holding", "holding", "fallen"]


def test_a_drop_beyond_noise_within_the_margin_does_not_alert() -> None:
    holdout = holdout_of(3000, 2700)
    verdict = judge(CLASSIFIER, served(5000, 4350), CONFIG, holdout=holdout, confidence=0.95)
    assert verdict["drop"] == pytest.approx(0.03)
    assert verdict["drop_beyond_noise"] is True
    assert verdict["status"] == "holding"
    assert verdict["summary"].endswith("beyond noise but within the margin 0.05: not alerted")


def test_quality_holds_within_the_margin_of_the_holdout() -> None:
    verdict = judge(CLASSIFIER, served(100, 87), CONFIG, holdout=None, confidence=CONFIDENCE)
    assert verdict["status"] == "holding"
    assert verdict["drop"] == pytest.approx(0.03)


def test_fallen_quality_says_what_fell_and_by_how_much() -> None:
    # Without the holdout's answers: its score as a fixed number, the labelled rows' interval.
    verdict = judge(
        CLASSIFIER,
        served(100, 60),
        CONFIG,
        holdout=None,
        confidence=CONFIDENCE,
        holdout_problem="its holdout answers were not stored",
    )
    assert verdict["status"] == "fallen"
    assert verdict["compared_with"] == "holdout score"
    assert verdict["test"] == "one-sample t"
    assert verdict["holdout_interval"] is None
    labelled = verdict["interval"]
    assert verdict["drop_interval"]["low"] == pytest.approx(0.9 - labelled["high"])
    assert verdict["drop_interval"]["high"] == pytest.approx(0.9 - labelled["low"])
    (reason,) = verdict["reasons"]
    assert reason.startswith("accuracy on 100 labelled rows 0.600 (95% interval 0.50")
    assert (
        "holdout 0.900 (score only: its holdout answers were not stored): down 0.300, interval 0.2"
        in reason
    )
    assert "beyond noise: worse than the holdout by more than the margin 0.05" in reason


def test_a_wider_confidence_needs_more_evidence() -> None:
    joined = served(300, 246)  # 0.82 against 0.9
    assert judge(CLASSIFIER, joined, CONFIG, holdout=HOLDOUT, confidence=0.9)["status"] == "fallen"
    strict = judge(CLASSIFIER, joined, CONFIG, holdout=HOLDOUT, confidence=0.999)
    assert strict["status"] == "holding"
    assert strict["confidence"] == 0.999
    assert "99.9% interval" in strict["summary"]


def test_a_threshold_is_crossed_only_beyond_noise() -> None:
    config = {**CONFIG, "threshold": 0.85, "margin": 1.0}
    few = judge(CLASSIFIER, served(50, 40), config, holdout=HOLDOUT, confidence=CONFIDENCE)
    assert few["status"] == "holding"
    assert few["past_threshold"] is False
    assert "is below the threshold 0.85 but within noise: not alerted" in few["summary"]
    many = judge(CLASSIFIER, served(2000, 1600), config, holdout=HOLDOUT, confidence=CONFIDENCE)
    assert many["status"] == "fallen"
    assert many["past_threshold"] is True
    (reason,) = many["reasons"]
    assert reason.startswith("accuracy on 2000 labelled rows 0.800 (95% interval 0.78")
    assert reason.endswith("is below the threshold 0.85 beyond noise")


def regression_rows(rows: int, rmse: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets and answers whose root mean squared error is exactly ``rmse``."""
    generator = np.random.default_rng(seed)
    truth = generator.normal(50, 10, rows)
    error = generator.normal(0, 1, rows)
    return truth, truth + error * rmse / np.sqrt(np.mean(error**2))


def test_for_an_error_metric_higher_is_worse() -> None:
    truth, answers = regression_rows(300, 2.0, seed=1)
    holdout = Labelled(truth, [], Answers(values=answers))
    config = {**CONFIG, "threshold": 3.0}

    def labelled(rmse: float) -> list[tuple[dict[str, Any], str]]:
        truth, answers = regression_rows(400, rmse, seed=2)
        return [
            (capture(float(p), row=i), repr(float(t)))
            for i, (p, t) in enumerate(zip(answers, truth, strict=True))
        ]

    rising = judge(REGRESSOR, labelled(3.5), config, holdout=holdout, confidence=CONFIDENCE)
    assert rising["status"] == "fallen"
    assert rising["test"] == "unpaired bootstrap"
    assert rising["drop"] == pytest.approx(1.5)
    assert len(rising["reasons"]) == 2  # above the threshold, and 1.5 worse than the holdout
    assert "rmse on 400 labelled rows 3.500" in rising["reasons"][0]
    assert "holdout 2.000: up 1.500, interval 1." in rising["reasons"][0]
    assert rising["reasons"][1].endswith("is above the threshold 3.0 beyond noise")
    falling = judge(REGRESSOR, labelled(1.0), config, holdout=holdout, confidence=CONFIDENCE)
    assert falling["status"] == "holding"
    assert falling["drop"] == pytest.approx(-1.0)
    assert "holdout 2.000: down 1.000 (worsening interval -1." in falling["summary"]


def test_a_metric_that_is_not_a_row_mean_is_compared_by_an_unpaired_bootstrap() -> None:
    document: VersionDocument = {**CLASSIFIER, "metric": "f1_macro", "metrics": {"f1_macro": 0.9}}
    few = judge(document, served(50, 42), CONFIG, holdout=HOLDOUT, confidence=CONFIDENCE)
    assert few["test"] == "unpaired bootstrap"
    assert few["drop"] == pytest.approx(0.06, abs=0.005)
    assert few["status"] == "holding"
    many = judge(document, served(800, 640), CONFIG, holdout=HOLDOUT, confidence=CONFIDENCE)
    assert many["status"] == "fallen"
    assert many["drop_interval"]["low"] > 0


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "roc_auc", "log_loss"])
def test_the_verdict_does_not_depend_on_row_order(metric: str) -> None:
    document: VersionDocument = {**CLASSIFIER, "metric": metric, "metrics": {}}
    shuffled = np.random.default_rng(5).permutation(HOLDOUT.rows)
    holdout = Labelled(
        HOLDOUT.y[shuffled],
        HOLDOUT.classes,
        Answers(
            labels=np.asarray(HOLDOUT.answers.labels)[shuffled],
            probabilities=np.asarray(HOLDOUT.answers.probabilities)[shuffled],
        ),
    )
    first = judge(document, served(120, 100, seed=1), CONFIG, holdout=HOLDOUT, confidence=0.95)
    second = judge(document, served(120, 100, seed=2), CONFIG, holdout=holdout, confidence=0.95)
    for field in ("interval", "holdout_interval", "drop_interval", "summary", "status"):
        assert first[field] == second[field]


def test_the_unpaired_difference_is_in_the_metrics_good_direction() -> None:
    worse = holdout_of(400, 300)
    _, _, accuracy = unpaired_metric_difference("accuracy", HOLDOUT, worse, 0.95)
    assert accuracy.estimate == pytest.approx(0.15)
    assert accuracy.low > 0
    _, _, loss = unpaired_metric_difference("log_loss", HOLDOUT, worse, 0.95)
    # The holdout's log loss is lower (better): 15 % more rows at -log(0.8) instead of -log(0.2).
    assert loss.estimate == pytest.approx(0.15 * np.log(4))
    assert loss.low > 0
    _, _, bootstrapped = unpaired_metric_difference("balanced_accuracy", HOLDOUT, worse, 0.95)
    assert bootstrapped.estimate == pytest.approx(0.15)
    assert 0 < bootstrapped.low < 0.15 < bootstrapped.high


def test_samples_of_the_same_model_are_not_different_beyond_noise() -> None:
    """Two labelled samples of a model that is right 85 % of the time: the drop's interval should
    cover 0 about 95 % of the time, for the Welch and the bootstrap intervals alike."""
    generator = np.random.default_rng(11)
    covered = {"accuracy": 0, "f1_macro": 0}
    trials = 120
    for _ in range(trials):
        sides = []
        for rows in (300, 120):
            y = generator.choice(["a", "b"], rows)
            right = generator.random(rows) < 0.85
            labels = np.where(right, y, np.where(y == "a", "b", "a"))
            probabilities = np.where((labels == "a")[:, None], [0.8, 0.2], [0.2, 0.8])
            sides.append(Labelled(y, ["a", "b"], Answers(labels, probabilities)))
        for metric in covered:
            _, _, difference = unpaired_metric_difference(metric, sides[0], sides[1], 0.95)
            covered[metric] += difference.low <= 0 <= difference.high
    for metric, count in covered.items():
        assert count / trials >= 0.88, metric


def test_too_few_labels_are_not_judged() -> None:
    verdict = judge(CLASSIFIER, served(2, 0), CONFIG, holdout=HOLDOUT, confidence=CONFIDENCE)
    assert verdict["status"] == "not enough labels"
    assert verdict["reasons"] == []
    assert verdict["summary"] == "2 labelled rows, fewer than min_rows 3: not judged"
    nothing = judge(CLASSIFIER, [], CONFIG, holdout=None, confidence=CONFIDENCE)
    assert nothing["status"] == "not enough labels"


def test_a_regressors_labels_that_are_not_numbers_are_counted_not_scored() -> None:
    joined = [
        (capture(2.0, row=0), "3.0"),
        (capture(4.0, row=1), "n/a"),  # not a number
        (capture(None, row=2), "5.0"),  # the answer was null (NaN)
        (capture(6.0, row=3), "inf"),
    ]
    scored = measure_joined(REGRESSOR, joined)
    assert scored["rows"] == 1
    assert scored["value"] == pytest.approx(1.0)
    assert scored["scores"]["unusable_labels"] == 3
    nothing = measure_joined(REGRESSOR, [(capture(1.0), "none")])
    assert nothing["value"] is None
    assert nothing["rows"] == 0
