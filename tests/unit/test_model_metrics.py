"""The numpy metrics Evaluate uses agree with sklearn.metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as reference

from mlstack_core import model_metrics

pytestmark = pytest.mark.unit


@st.composite
def classification_case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    n_classes = draw(st.integers(2, 5))
    classes = [f"class-{i}" for i in range(n_classes)]
    rows = draw(st.integers(n_classes * 2, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y_true = np.array(classes * 2 + list(rng.choice(classes, rows - n_classes * 2)), dtype=object)
    # Coarse probabilities create ties, which AUC must rank as scikit-learn does.
    raw = rng.integers(1, 6, size=(rows, n_classes)).astype(float)
    probabilities = raw / raw.sum(axis=1, keepdims=True)
    y_pred = np.array(classes, dtype=object)[probabilities.argmax(axis=1)]
    return y_true, y_pred, probabilities, classes


@settings(max_examples=150, deadline=None)
@given(classification_case())
def test_classification_metrics_match_scikit_learn(case) -> None:
    y_true, y_pred, probabilities, classes = case
    ours = model_metrics.classification_metrics(y_true, y_pred, probabilities, classes)

    assert ours["accuracy"] == pytest.approx(reference.accuracy_score(y_true, y_pred))
    assert ours["balanced_accuracy"] == pytest.approx(
        reference.balanced_accuracy_score(y_true, y_pred)
    )
    assert ours["f1_macro"] == pytest.approx(
        reference.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert ours["log_loss"] == pytest.approx(
        reference.log_loss(y_true, probabilities, labels=classes)
    )
    expected_auc = (
        reference.roc_auc_score(y_true == classes[1], probabilities[:, 1])
        if len(classes) == 2
        else reference.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=classes)
    )
    assert ours["roc_auc"] == pytest.approx(expected_auc)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 200), st.integers(0, 2**32 - 1))
def test_regression_metrics_match_scikit_learn(rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(size=rows) * rng.uniform(0.1, 100)
    y_pred = y_true + rng.normal(size=rows)
    ours = model_metrics.regression_metrics(y_true, y_pred)

    assert ours["r2"] == pytest.approx(reference.r2_score(y_true, y_pred))
    assert ours["rmse"] == pytest.approx(reference.root_mean_squared_error(y_true, y_pred))
    assert ours["mae"] == pytest.approx(reference.mean_absolute_error(y_true, y_pred))


def test_auc_is_left_out_when_a_class_is_absent_from_the_holdout() -> None:
    y_true = np.array(["a", "a", "b"], dtype=object)
    probabilities = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    scores = model_metrics.classification_metrics(
        y_true, np.array(["a", "a", "b"], dtype=object), probabilities, ["a", "b", "c"]
    )
    assert "roc_auc" not in scores
    assert scores["accuracy"] == 1.0
