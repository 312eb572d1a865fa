"""The gate's evidence (mlstack_core.evidence): quantiles, weighted metrics, intervals that cover at
their nominal rate, verdicts that do not depend on row order."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlstack_core import model_metrics
from mlstack_core.evidence import (
    Answers,
    Interval,
    Rows,
    adjusted_confidence,
    bootstrap,
    bootstrap_intervals,
    bounded_log_loss_rows,
    brier_rows,
    mean_interval,
    paired_improvement,
    t_quantile,
    unpaired_difference,
    weigh,
    weighted_metric,
)

pytestmark = pytest.mark.unit

CLASSES = ["a", "b", "c"]


@pytest.mark.parametrize("freedom", [1, 2, 3, 5, 12, 29, 30, 31, 80, 400, 100_000])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.99917, 0.99999])
def test_t_quantiles_match_scipy(freedom: int, p: float) -> None:
    assert t_quantile(p, freedom) == pytest.approx(stats.t.ppf(p, freedom), abs=1e-3)
    assert t_quantile(1 - p, freedom) == pytest.approx(stats.t.ppf(1 - p, freedom), abs=1e-3)


def test_bonferroni_spreads_the_error_over_the_candidates() -> None:
    assert adjusted_confidence(0.95, 1) == pytest.approx(0.95)
    assert adjusted_confidence(0.95, 3) == pytest.approx(1 - 0.05 / 3)
    assert adjusted_confidence(0.95, 0) == pytest.approx(0.95)


def classification_case(seed: int, rows: int, classes: list[str]) -> tuple[Any, Answers]:
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, size=rows)
    probabilities = rng.dirichlet(np.ones(len(classes)), size=rows)
    labels = np.asarray(classes)[probabilities.argmax(axis=1)]
    return y, Answers(labels=labels, probabilities=probabilities)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(8, 60),
    binary=st.booleans(),
)
def test_weighted_metrics_equal_the_metrics_of_the_resampled_rows(
    seed: int, rows: int, binary: bool
) -> None:
    """A resample's weights are row counts: the weighted metric must be the plain metric of the
    rows repeated that many times."""
    classes = CLASSES[:2] if binary else CLASSES
    y, answer = classification_case(seed, rows, classes)
    counts = np.random.default_rng(seed + 1).integers(0, 4, size=rows).astype(float)
    counts[0] += 1  # never an empty resample
    repeat = np.repeat(np.arange(rows), counts.astype(int))
    assert answer.labels is not None
    assert answer.probabilities is not None
    expected = model_metrics.classification_metrics(
        y[repeat], answer.labels[repeat], answer.probabilities[repeat], classes
    )
    expected["brier_score"] = float(
        np.mean(brier_rows(y[repeat], answer.probabilities[repeat], classes))
    )
    expected["bounded_log_loss"] = float(
        np.mean(bounded_log_loss_rows(y[repeat], answer.probabilities[repeat], classes))
    )
    everything = Rows(y, classes, np.arange(rows))
    for metric, value in expected.items():
        got = weighted_metric(metric, everything, answer)(counts[None, :])[0]
        assert got == pytest.approx(value, rel=1e-9, abs=1e-12), metric
    if len(set(y[repeat].tolist())) < len(classes):
        got = weighted_metric("roc_auc", everything, answer)(counts[None, :])[0]
        assert math.isnan(got), "AUC is undefined when a class is missing, as unweighted"

    rng = np.random.default_rng(seed + 2)
    truth = rng.normal(size=rows)
    values = truth + rng.normal(size=rows)
    regression = Answers(values=values)
    plain = model_metrics.regression_metrics(truth[repeat], values[repeat])
    for metric, value in plain.items():
        got = weighted_metric(metric, Rows(truth, [], np.arange(rows)), regression)(
            counts[None, :]
        )[0]
        assert got == pytest.approx(value, rel=1e-9, abs=1e-12), metric


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(5, 80))
def test_the_verdict_and_every_interval_ignore_row_order(seed: int, rows: int) -> None:
    y, challenger = classification_case(seed, rows, CLASSES)
    _, reference = classification_case(seed + 1, rows, CLASSES)
    order = np.random.default_rng(seed + 2).permutation(rows)

    def judged(permutation: Any) -> tuple[Any, ...]:
        def shuffled(answer: Answers) -> Answers:
            assert answer.labels is not None
            assert answer.probabilities is not None
            return Answers(answer.labels[permutation], answer.probabilities[permutation])

        answers = {"best": shuffled(challenger), "reference": shuffled(reference)}
        per_model, paired = bootstrap_intervals(
            y[permutation],
            CLASSES,
            answers,
            ["accuracy", "roc_auc", "f1_macro", "brier_score"],
            0.95,
            differences=[("best", "reference")],
            resamples=50,
        )
        reference_losses = brier_rows(y[permutation], answers["reference"].probabilities, CLASSES)  # type: ignore[arg-type]
        best_losses = brier_rows(y[permutation], answers["best"].probabilities, CLASSES)  # type: ignore[arg-type]
        verdict = weigh(
            "brier_score",
            paired_improvement(reference_losses, best_losses, adjusted_confidence(0.95, 3)),
            (float(reference_losses.mean()), float(best_losses.mean())),
            against="production",
            reference="production v1",
            confidence=0.95,
            comparisons=3,
            metric="accuracy",
            metric_improvement=paired[("best", "reference")]["accuracy"],
        )
        return per_model, paired, verdict

    # repr: an undefined AUC is NaN on both sides, which == cannot see.
    assert repr(judged(np.arange(rows))) == repr(judged(order))


def test_the_paired_interval_covers_the_true_difference_at_its_nominal_rate() -> None:
    """Two probability models on binary labels, the reference blind: over 600 holdouts of 150
    rows, the 95 % interval of the Brier difference must cover the true one 93-97 % of the time
    (the binomial spread of 600 draws at 0.95 is 0.9 points)."""
    rng = np.random.default_rng(7)

    def draw(rows: int) -> tuple[Any, Any, Any]:
        signal = rng.normal(size=rows)
        truth = 1 / (1 + np.exp(-signal))
        y = (rng.random(rows) < truth).astype(int)
        challenger = np.clip(truth + rng.normal(scale=0.15, size=rows), 0, 1)
        reference = np.full(rows, 0.5)
        return y, reference, challenger

    def losses(y: Any, p: Any) -> Any:
        return brier_rows(y, np.column_stack([1 - p, p]), [0, 1])

    y, reference, challenger = draw(2_000_000)
    true_difference = float(np.mean(losses(y, reference) - losses(y, challenger)))
    covered = 0
    for _ in range(600):
        y, reference, challenger = draw(150)
        interval = paired_improvement(losses(y, reference), losses(y, challenger), 0.95)
        covered += interval.low <= true_difference <= interval.high
    assert 0.93 <= covered / 600 <= 0.97


@pytest.mark.parametrize("grouped", [False, True], ids=["rows", "groups of 3 rows"])
def test_the_bootstrap_interval_of_accuracy_covers_at_its_nominal_rate(
    grouped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if grouped:  # a large holdout's resampling, scaled down to 120 rows
        monkeypatch.setattr(bootstrap, "GROUPS", 40)
        monkeypatch.setattr(bootstrap, "GROUPED_FROM_ROWS", 80)
    rng = np.random.default_rng(11)
    covered, trials, accuracy = 0, 300, 0.7
    for _ in range(trials):
        y = rng.choice(["x", "y"], size=120)
        right = rng.random(120) < accuracy
        labels = np.where(right, y, np.where(y == "x", "y", "x"))
        probabilities = np.column_stack([labels == "x", labels == "y"]).astype(float)
        per_model, _ = bootstrap_intervals(
            y, ["x", "y"], {"m": Answers(labels, probabilities)}, ["accuracy"], 0.9, resamples=200
        )
        interval = per_model["m"]["accuracy"]
        covered += interval.low <= accuracy <= interval.high
    # Percentile intervals of a proportion run a little narrow at 120 rows.
    assert 0.85 <= covered / trials <= 0.95


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(2, 400),
    share=st.floats(0.01, 1.0),
    resamples=st.integers(1, 9),
)
def test_group_weights_stand_for_the_row_weights_they_repeat(
    seed: int, rows: int, share: float, resamples: int
) -> None:
    rng = np.random.default_rng(seed)
    groups = bootstrap.Groups(rows, max(1, int(rows * share)))
    block = rng.integers(0, 4, size=(resamples, groups.count)).astype(np.float64)
    expanded = groups.rows(block)
    # Every row belongs to exactly one group.
    assert np.array_equal(groups.rows(np.ones((1, groups.count))), np.ones((1, rows)))
    weights = bootstrap.Weights(block, groups)
    vector = rng.normal(size=rows)
    matrix = rng.random((rows, 3)) < 0.4  # the truth and hits are boolean matrices
    assert weights.total() == pytest.approx(expanded.sum(axis=1))
    assert weights.dot(vector) == pytest.approx(expanded @ vector)
    assert weights.dot(matrix) == pytest.approx(expanded @ matrix.astype(np.float64))
    assert np.array_equal(np.concatenate(list(weights.row_blocks())), expanded)


@pytest.mark.parametrize("metrics", [["r2", "rmse"], ["accuracy", "roc_auc", "brier_score"]])
def test_a_large_holdout_resampled_in_groups_gives_the_row_bootstraps_intervals(
    metrics: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups of ten rows, as a holdout of a million rows has: every interval and the paired
    difference's have the row bootstrap's centre and width, to its own resampling noise."""
    rows = 20_000
    rng = np.random.default_rng(5)
    if metrics[0] == "r2":
        y = rng.normal(size=rows)
        answers = {
            "best": Answers(values=y + rng.normal(scale=0.5, size=rows)),
            "reference": Answers(values=y + rng.normal(scale=0.55, size=rows)),
        }
        classes: list[Any] = []
    else:
        y, best = classification_case(1, rows, ["a", "b"])
        _, reference = classification_case(2, rows, ["a", "b"])
        answers = {"best": best, "reference": reference}
        classes = ["a", "b"]

    def intervals(grouped: bool) -> list[Interval]:
        monkeypatch.setattr(bootstrap, "GROUPS", rows // 10)
        monkeypatch.setattr(bootstrap, "GROUPED_FROM_ROWS", rows if grouped else rows + 1)
        per_model, paired = bootstrap_intervals(
            y, classes, answers, metrics, 0.95, differences=[("best", "reference")]
        )
        return [
            *(per_model[name][metric] for name in answers for metric in metrics),
            *paired[("best", "reference")].values(),
        ]

    for by_row, by_group in zip(intervals(False), intervals(True), strict=True):
        width = by_row.high - by_row.low
        assert by_group.estimate == by_row.estimate
        assert by_group.high - by_group.low == pytest.approx(width, rel=0.15)
        assert (by_group.low + by_group.high) / 2 == pytest.approx(
            (by_row.low + by_row.high) / 2, abs=0.15 * width
        )


def test_welch_interval_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    first, second = rng.normal(1.0, 2.0, size=40), rng.normal(0.2, 0.5, size=70)
    ours = unpaired_difference(first, second, 0.95)
    theirs = stats.ttest_ind(first, second, equal_var=False).confidence_interval(0.95)
    assert ours.estimate == pytest.approx(first.mean() - second.mean())
    assert ours.low == pytest.approx(theirs.low, abs=2e-3)
    assert ours.high == pytest.approx(theirs.high, abs=2e-3)


def test_mean_interval_matches_scipy() -> None:
    sample = np.random.default_rng(5).exponential(size=25)
    ours = mean_interval(sample, 0.9)
    low, high = stats.t.interval(0.9, 24, loc=sample.mean(), scale=stats.sem(sample))
    assert (ours.low, ours.high) == pytest.approx((low, high), abs=1e-3)


def _verdict(reference: Any, challenger: Any, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "against": "baseline",
        "reference": "the most_frequent baseline",
        "confidence": 0.95,
        "comparisons": 1,
        "metric": "accuracy",
        "metric_improvement": Interval(0.02, -0.01, 0.05, 0.95, 100),
    }
    arguments.update(overrides)
    reference, challenger = np.asarray(reference), np.asarray(challenger)
    level = adjusted_confidence(arguments["confidence"], arguments["comparisons"])
    return weigh(
        "brier_score",
        paired_improvement(reference, challenger, level),
        (float(reference.mean()), float(challenger.mean())),
        **arguments,
    )


def test_identical_answers_are_not_evidence() -> None:
    losses = np.random.default_rng(0).random(500)
    verdict = _verdict(losses, losses)
    assert not verdict["passed"]
    assert verdict["outcome"] == "NotBetterThanBaseline"
    assert verdict["verdict"].startswith("NotBetterThanBaseline: no better than")
    assert "test_size" in verdict["advice"]
    # Judged by cross-validation every row is already judged: no holdout to enlarge.
    folded = _verdict(losses, losses, judged_on="cross_validation")
    assert folded["advice"] is not None
    assert "test_size" not in folded["advice"]
    production = _verdict(losses, losses, against="production")
    assert production["outcome"] == "NotBetterThanProduction"


def test_a_clear_improvement_passes_and_says_by_how_much() -> None:
    rng = np.random.default_rng(1)
    reference = rng.random(500) * 0.5 + 0.3
    challenger = reference - 0.1 + rng.normal(scale=0.05, size=500)
    verdict = _verdict(reference, challenger)
    assert verdict["passed"]
    assert verdict["outcome"] == "promote"
    assert verdict["improvement"]["low"] > 0
    assert "beats the most_frequent baseline beyond noise" in verdict["verdict"]
    assert "on 500 rows" in verdict["verdict"]


def test_more_candidates_need_more_evidence() -> None:
    """The same improvement passes for one candidate and not for ten: the interval widens."""
    rng = np.random.default_rng(2)
    reference = rng.random(400)
    noise = rng.normal(size=400)
    # A mean improvement of 0.05 at t = 2.3: beyond 1.96 (one candidate), short of 2.8 (ten).
    difference = 0.05 + (noise - noise.mean()) / noise.std(ddof=1) * 0.05 / 2.3 * 20
    challenger = reference - difference
    one = _verdict(reference, challenger, comparisons=1)
    ten = _verdict(reference, challenger, comparisons=10)
    assert one["improvement"]["low"] > ten["improvement"]["low"]
    assert one["passed"]
    assert not ten["passed"]


def test_a_selection_metric_worse_beyond_noise_rejects_despite_the_evidence() -> None:
    rng = np.random.default_rng(1)
    reference = rng.random(500) * 0.5 + 0.3
    challenger = reference - 0.1
    worse = Interval(-0.05, -0.08, -0.02, 0.95, 500)
    verdict = _verdict(reference, challenger, metric_improvement=worse)
    assert not verdict["passed"]
    assert "worse beyond noise" in verdict["verdict"]


def test_a_margin_the_spec_asks_for_is_held_to_the_point_estimate() -> None:
    rng = np.random.default_rng(1)
    reference = rng.random(500) * 0.5 + 0.3
    challenger = reference - 0.1
    small = Interval(0.01, 0.0, 0.02, 0.95, 500)
    assert not _verdict(reference, challenger, metric_improvement=small, min_improvement=0.02)[
        "passed"
    ]
    assert _verdict(reference, challenger, metric_improvement=small, min_improvement=0.01)["passed"]


def test_the_evidence_log_loss_is_bounded_and_otherwise_the_log_loss() -> None:
    y = np.array(["a", "b", "a"])
    probabilities = np.array([[0.9, 0.1], [0.0, 1.0], [0.0, 1.0]])
    losses = bounded_log_loss_rows(y, probabilities, ["a", "b"])
    assert losses[0] == pytest.approx(-np.log(0.9))
    assert losses[1] == pytest.approx(0.0)
    assert losses[2] == pytest.approx(-np.log(1e-3))  # certain and wrong: 6.9, not 36
    sure = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert bounded_log_loss_rows(y, sure, ["a", "b"]).mean() == pytest.approx(
        model_metrics.log_loss(y, sure, ["a", "b"])
    )
