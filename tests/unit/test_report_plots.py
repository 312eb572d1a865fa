"""``mlstack report``'s plots are the ones it draws: a winner without a feature importance of its
own (HistGradientBoosting, knn) gets no ``feature_importance.png``, is told so, and the README
promises only what every classifier's report draws."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from mlstack.cli.report import describe, figures, pyplot, render
from mlstack_core.card import HoldoutOutputs, ReportData
from mlstack_core.documents import VersionDocument
from mlstack_core.payloads import EvaluationReport

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
IMPURITY = {
    "kind": "impurity",
    "features": [
        {"name": "bill_length_mm", "importance": 0.7},
        {"name": "island", "importance": 0.3},
    ],
    "features_total": 2,
}


def classifier_report(
    family: str, importance: dict[str, Any] | None, explained: dict[str, Any] | None = None
) -> ReportData:
    """A registered classifier's stored evaluation, with Train's importance for its winner and,
    for a version trained with explanations, its explained importance."""
    rng = np.random.default_rng(5)
    y = np.asarray(CLASSES * 10, dtype=object)
    probabilities = rng.dirichlet(np.ones(len(CLASSES)), size=y.size)
    label = np.asarray(CLASSES, dtype=object)[probabilities.argmax(axis=1)]
    evaluation = {
        "decision": "promote",
        "reasons": ["accuracy 0.81 meets threshold 0.7"],
        "metric": "accuracy",
        "best": {
            "candidate_id": family,
            "family": family,
            "params": {},
            "metrics": {"accuracy": 0.81, "f1_macro": 0.78},
            "feature_importance": importance,
            "explained_importance": explained,
        },
        "candidates": [],
        "champion": None,
        "baseline": {"strategy": "most_frequent", "metrics": {"accuracy": 0.4, "f1_macro": 0.2}},
    }
    document = {
        "task": "classification",
        "status": "Approved",
        "schema": {"target": "species", "features": []},
        "spec": {},
        "feature_importance": importance,
        "explained_importance": explained,
    }
    return ReportData(
        "penguins",
        2,
        "classification",
        cast(VersionDocument, document),
        cast(EvaluationReport, evaluation),
        y,
        CLASSES,
        [HoldoutOutputs("challenger v2", label=label, probabilities=probabilities)],
    )


def _drawn(data: ReportData) -> set[str]:
    drawn = figures(data)
    for figure in drawn.values():
        pyplot().close(figure)
    return set(drawn)


def test_a_hist_gradient_boosting_report_lists_only_the_plots_it_draws(tmp_path: Path) -> None:
    data = classifier_report("hist_gradient_boosting", importance=None)

    written = render(data, tmp_path)

    assert sorted(written) == ["confusion_matrix.png", "metrics.png", "pr.png", "roc.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(written)
    note = "no feature_importance.png: the winner (hist_gradient_boosting) has no importance"
    assert f"{note} of its own" in describe(data)


def test_a_family_with_an_importance_gets_its_plot_and_no_note() -> None:
    data = classifier_report("random_forest", importance=IMPURITY)

    assert "feature_importance.png" in _drawn(data)
    assert not any("feature_importance" in line for line in describe(data))


def test_the_readme_promises_only_the_plots_every_classifier_report_draws() -> None:
    readme = (ROOT / "README.md").read_text()
    listing = re.search(r"reports/penguins/v2/\{([^}]*)\}\.png", readme)
    assert listing, "README lost its list of the report's plots"
    promised = {f"{name}.png" for name in listing.group(1).split(",")}
    assert promised <= _drawn(classifier_report("hist_gradient_boosting", importance=None))
    assert promised <= _drawn(classifier_report("random_forest", importance=IMPURITY))


def test_every_family_trained_with_explanations_gets_its_columns_contributions() -> None:
    explained = {
        "kind": "mean |contribution| on the holdout",
        "rows": 100,
        "features": [
            {"name": "flipper_length_mm", "importance": 0.21},
            {"name": "island", "importance": 0.08},
        ],
    }
    for family, own in (("hist_gradient_boosting", None), ("random_forest", IMPURITY)):
        data = classifier_report(family, importance=own, explained=explained)
        drawn = figures(data)
        axis = drawn["feature_importance.png"].axes[0]
        assert "mean |contribution| on the holdout" in axis.get_title()
        assert [t.get_text() for t in axis.get_yticklabels()] == ["island", "flipper_length_mm"]
        for figure in drawn.values():
            pyplot().close(figure)
        assert not any("feature_importance" in line for line in describe(data))
