"""Small tables are chosen and judged by repeated cross-validation, and the version that ships is
fitted on every row (mlstack_core.folds), through the real handlers."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core import model_metrics
from mlstack_core.evidence import cross_validated_interval, t_quantile
from mlstack_core.folds import assign_folds, judgement_for, read_folds
from tests.helpers.stack import Stack
from tests.helpers.tables import generated, penguins_bytes

pytestmark = pytest.mark.unit


def npz(aws: Stack, key: str) -> dict[str, Any]:
    body = aws.s3.get_object(Bucket=aws.model_bucket, Key=key)["Body"].read()
    with np.load(io.BytesIO(body), allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


@pytest.mark.slow
def test_a_small_table_is_judged_out_of_fold_and_ships_fitted_on_every_row(aws: Stack) -> None:
    aws.put_spec("penguins", {"target": "species"})
    state = aws.run_pipeline("penguins", penguins_bytes())
    splits, evaluation = state["run"]["splits"], state["evaluation"]
    rows = splits["train_rows"]
    assert splits["judged_on"] == evaluation["judged_on"] == "cross_validation"
    assert splits["holdout_rows"] == rows == 344  # every row trains the version
    assignment = read_folds(
        aws.s3.get_object(Bucket=splits["bucket"], Key=splits["folds_key"])["Body"].read()
    )
    assert assignment.shape == (3, rows)

    best = evaluation["best"]
    stored = npz(aws, best["sklearn_holdout_key"])
    assert stored["oof_probabilities"].shape == (3, rows, 3)
    # The score is the mean over repeats of each repeat's out-of-fold score.
    holdout = aws.s3.get_object(Bucket=splits["bucket"], Key=splits["holdout_key"])
    y = np.array([line.rsplit(",", 1)[1] for line in holdout["Body"].read().decode().split()[1:]])
    accuracies = [model_metrics.accuracy(y, labels) for labels in stored["oof_label"]]
    assert best["metrics"]["accuracy"] == pytest.approx(np.mean(accuracies))
    interval = best["intervals"]["accuracy"]
    assert interval["low"] < best["metrics"]["accuracy"] < interval["high"] <= 1.0
    assert evaluation["decision"] == "promote", evaluation["reasons"]


@pytest.mark.slow
def test_out_of_fold_answers_never_saw_their_rows(aws: Stack) -> None:
    """One nearest neighbour remembers every row it was fitted on: fitted on all rows it is
    perfect on them, out of fold it is only as good as the (weak) signal allows."""
    body, spec = generated(seed=3, rows=400, numeric=2, categorical=0, classes=2, signal=0.5)
    spec["candidates"] = [{"family": "knn", "params": {"n_neighbors": 1}}]
    aws.put_spec("memory", spec)
    state = aws.run_pipeline("memory", body)
    best = state["evaluation"]["best"]
    stored = npz(aws, best["sklearn_holdout_key"])
    assert state["evaluation"]["judged_on"] == "cross_validation"
    y = stored["label"]  # fitted on every row, it answers each row with its own label
    assert best["parity"]["passed"]
    assert best["metrics"]["accuracy"] < 0.8
    assert all(model_metrics.accuracy(y, labels) < 0.8 for labels in stored["oof_label"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rows", "judge", "expected"),
    [
        (400, "auto", "cross_validation"),
        (400, "holdout", "holdout"),
        (2600, "auto", "holdout"),
        (2600, "cross_validation", "cross_validation"),
    ],
)
def test_the_spec_may_choose_how_a_run_is_judged(
    aws: Stack, rows: int, judge: str, expected: str
) -> None:
    body, spec = generated(seed=5, rows=rows, numeric=2, categorical=1, classes=0, signal=2.0)
    spec.update(judge=judge, candidates=["ridge"])
    aws.put_spec("chosen", spec)
    state = aws.run_pipeline("chosen", body)
    assert state["evaluation"]["judged_on"] == expected
    assert state["evaluation"]["decision"] == "promote", state["evaluation"]["reasons"]


@pytest.mark.slow
def test_retraining_an_unchanged_small_table_leaves_production_alone(aws: Stack) -> None:
    aws.put_spec("penguins", {"target": "species"})
    first = aws.run_pipeline("penguins", penguins_bytes())
    assert aws.run_register_step(first)["promoted"] is True
    second = aws.run_pipeline("penguins", penguins_bytes())
    evaluation = second["evaluation"]
    assert evaluation["judged_on"] == "cross_validation"
    assert evaluation["comparison"]["against"] == "champion"
    assert evaluation["error"] == "NotBetterThanProduction", evaluation["reasons"]


def test_judgement_follows_the_stack_threshold_unless_the_spec_names_one() -> None:
    assert judgement_for(999, {}, 1000) == "cross_validation"
    assert judgement_for(1000, {"judge": "auto"}, 1000) == "holdout"
    assert judgement_for(10, {}, 0) == "holdout"
    assert judgement_for(10, {"judge": "holdout"}, 1000) == "holdout"
    assert judgement_for(10**6, {"judge": "cross_validation"}, 1000) == "cross_validation"


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(2, 60), min_size=1, max_size=6),
    folds=st.integers(2, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_folds_are_stratified_and_balanced(sizes: list[int], folds: int, seed: int) -> None:
    labels = np.concatenate([np.full(n, f"class {i}") for i, n in enumerate(sizes)])
    labels = np.random.default_rng(seed).permutation(labels)
    assignment = assign_folds(labels, labels.size, folds=folds, repeats=3, seed=seed)
    assert assignment.shape == (3, labels.size)
    for repeat in assignment:
        counts = np.bincount(repeat, minlength=folds)
        assert counts.max() - counts.min() <= 1
        for label in set(labels.tolist()):
            per_fold = np.bincount(repeat[labels == label], minlength=folds)
            assert per_fold.max() - per_fold.min() <= 1
    if labels.size > folds:
        assert not np.array_equal(assignment[0], assignment[1]) or not np.array_equal(
            assignment[1], assignment[2]
        )


def test_the_cross_validated_interval_widens_for_overlapping_training_sets() -> None:
    values = np.array([0.1, 0.2, 0.15, 0.05, 0.12, 0.18, 0.11, 0.09, 0.14, 0.16])
    interval = cross_validated_interval(values, 0.2, 0.95, rows=500)
    spread = np.var(values, ddof=1)
    half = t_quantile(0.975, 9) * np.sqrt((1 / 10 + 0.25) * spread)
    assert interval.estimate == pytest.approx(values.mean())
    assert (interval.low, interval.high) == pytest.approx(
        (values.mean() - half, values.mean() + half)
    )
    naive = t_quantile(0.975, 9) * np.sqrt(spread / 10)
    assert interval.high - interval.low > 2 * naive
    centred = cross_validated_interval(values, 0.2, 0.95, rows=500, estimate=0.3)
    assert centred.estimate == 0.3
    assert centred.high - centred.low == pytest.approx(2 * half)
