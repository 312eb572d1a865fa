"""What a person reads about an evaluation: the model card, ``mlstack report`` and ``mlstack
models`` show every score with its interval and the gate's verdict, and still render versions
registered before the gate carried intervals."""

from __future__ import annotations

import re
from typing import Any, cast

import numpy as np
import pytest

from mlstack.cli.report import describe, error_bars, plot_metrics, pyplot
from mlstack.cli.views import format_models
from mlstack_core.card import HoldoutOutputs, ReportData, card_files
from mlstack_core.documents import VersionDocument
from mlstack_core.evidence import ADVICE, Interval
from mlstack_core.payloads import EvaluationReport
from tests.helpers.evidence import ROWS, weighed

pytestmark = pytest.mark.unit

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


def interval(estimate: float, low: float | None, high: float | None) -> dict[str, Any]:
    return {"estimate": estimate, "low": low, "high": high, "confidence": 0.95, "rows": ROWS}


def scored(accuracy: float, brier: float, spread: float = 0.03) -> dict[str, Any]:
    """A model's metrics and their intervals, as Evaluate writes them."""
    return {
        "metrics": {"accuracy": accuracy, "f1_macro": accuracy - 0.05},
        "intervals": {
            "accuracy": interval(accuracy, accuracy - spread, accuracy + spread),
            "f1_macro": interval(accuracy - 0.05, None, None),
            "brier_score": interval(brier, brier - spread, brier + spread),
        },
    }


def evaluation(*, passed: bool) -> dict[str, Any]:
    evidence = weighed(passed=passed)
    return {
        "decision": "promote" if passed else "reject",
        "reasons": ["accuracy 0.8123 meets threshold 0.7", evidence["verdict"]],
        "metric": "accuracy",
        "best": {
            "candidate_id": "forest",
            "family": "random_forest",
            "params": {},
            **scored(0.8123, 0.2671),
        },
        "candidates": [],
        "champion": {"version": 1, "family": "logistic", "comparable": True, **scored(0.79, 0.3)},
        "baseline": {"strategy": "most_frequent", **scored(0.4, 0.64)},
        "comparison": {"interval": evidence["metric_improvement"]},
        "evidence": evidence,
        **({} if passed else {"error": evidence["outcome"]}),
    }


def without_intervals(document: dict[str, Any]) -> dict[str, Any]:
    """A document as written before the gate carried intervals and evidence."""
    old = {k: v for k, v in document.items() if k not in ("intervals", "evidence", "comparison")}
    for key in ("best", "champion", "baseline"):
        if isinstance(old.get(key), dict):
            old[key] = without_intervals(old[key])
    return old


def _verdict(data: ReportData) -> str:
    evidence = data.evaluation["evidence"]
    assert evidence is not None
    return evidence["verdict"]


def report_data(evaluation: dict[str, Any], classes: list[str] = CLASSES) -> ReportData:
    rng = np.random.default_rng(3)
    y = np.asarray(classes * 10, dtype=object)
    probabilities = rng.dirichlet(np.ones(len(classes)), size=y.size)
    document = {
        "task": "classification",
        "status": "Approved" if evaluation["decision"] == "promote" else "Rejected",
        "schema": {"target": "species", "features": []},
        "spec": {},
    }
    label = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)]
    challenger = HoldoutOutputs("challenger v2", label=label, probabilities=probabilities)
    return ReportData(
        "penguins",
        2,
        "classification",
        cast(VersionDocument, document),
        cast(EvaluationReport, evaluation),
        y,
        classes,
        [challenger],
    )


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", markdown, flags=re.M | re.S)
    assert match, f"no section {title!r} in:\n{markdown}"
    return match.group(1)


# ----------------------------------------------------------------------------- the model card
def test_the_card_shows_every_score_with_its_interval() -> None:
    markdown, page = card_files(report_data(evaluation(passed=True)), [])
    table = section(markdown, "Evaluation")
    assert "| metric | challenger | production v1 | baseline (most_frequent) |" in table
    assert (
        "| accuracy | 0.8123 (95% interval 0.7823 to 0.8423) "
        "| 0.7900 (95% interval 0.7600 to 0.8200) "
        "| 0.4000 (95% interval 0.3700 to 0.4300) |"
    ) in table
    # The evidence's measure is a row of its own; an interval the bootstrap left open says so.
    assert "| brier_score | 0.2671 (95% interval 0.2371 to 0.2971) |" in table
    assert "| f1_macro | 0.7623 (95% interval undefined) |" in table
    assert "0.8123 (95% interval 0.7823 to 0.8423)" in page


def test_the_card_says_how_the_gate_judged_and_its_verdict() -> None:
    data = report_data(evaluation(passed=True))
    markdown, _ = card_files(data, [])
    text = section(markdown, "Evaluation")
    assert "How the gate judged: the Brier score of each holdout row" in text
    assert f"on the same {ROWS} rows" in text
    assert "Bonferroni's correction across 3 candidates" in text
    assert f"Verdict: {_verdict(data)}" in text
    assert "Advice" not in markdown
    decision = section(markdown, "Decision")
    assert "Gate: accuracy 0.8123 meets threshold 0.7" in decision
    assert "Gate: promote on the evidence (the verdict under Evaluation)." in decision
    assert _verdict(data) not in decision


def test_a_rejected_cards_names_the_outcome_and_advises() -> None:
    markdown, _ = card_files(report_data(evaluation(passed=False)), [])
    text = section(markdown, "Evaluation")
    assert "Verdict: NotBetterThanProduction: no better than production v1 beyond noise" in text
    assert f"Outcome: NotBetterThanProduction. Advice: {ADVICE}." in text
    assert "Gate: NotBetterThanProduction on the evidence" in section(markdown, "Decision")


OLD_REASON = (
    "accuracy 0.8123 beats production v1 (0.7900) by +0.0223 (needs >= min_improvement 0.0)"
)


def test_a_card_without_intervals_renders_as_before() -> None:
    old = {**without_intervals(evaluation(passed=True)), "reasons": [OLD_REASON]}
    markdown, page = card_files(report_data(old), [])
    table = section(markdown, "Evaluation")
    assert "| accuracy | 0.8123 | 0.7900 | 0.4000 |" in table
    assert "brier_score" not in table
    assert "interval" not in markdown
    assert "How the gate judged" not in markdown
    assert f"Gate: {OLD_REASON}" in section(markdown, "Decision")
    assert "<table>" in page


def test_the_calibration_brier_score_carries_its_interval() -> None:
    three = card_files(report_data(evaluation(passed=True)), [])[0]
    assert re.search(r"Brier score \d\.\d{4} \(95% interval 0\.2371 to 0\.2971\)", three)
    # Two classes: the binary Brier score is half the evidence's (summed over both classes).
    binary = evaluation(passed=True)
    binary["best"]["intervals"]["brier_score"] = interval(0.26, 0.24, 0.3)
    two = card_files(report_data(binary, ["no", "yes"]), [])[0]
    assert re.search(r"Brier score \d\.\d{4} \(95% interval 0\.1200 to 0\.1500\) \(P\(yes\)\)", two)


# ----------------------------------------------------------------------------- mlstack report
def test_the_report_lists_each_models_scores_and_the_verdict() -> None:
    data = report_data(evaluation(passed=False))
    lines = describe(data)
    assert lines[0] == "challenger"
    assert "  accuracy     0.8123 (95% interval 0.7823 to 0.8423)" in lines
    assert "production v1" in lines
    assert "  brier_score  0.3000 (95% interval 0.2700 to 0.3300)" in lines
    assert "baseline (most_frequent)" in lines
    assert lines[-2] == f"verdict: {_verdict(data)}"
    assert lines[-1] == f"advice: {ADVICE}"


def test_the_report_of_an_old_version_lists_bare_scores() -> None:
    lines = describe(report_data(without_intervals(evaluation(passed=True))))
    assert "  accuracy  0.8123" in lines
    assert not any("interval" in line or "advice" in line for line in lines)


def test_the_metrics_plot_draws_intervals_as_whiskers() -> None:
    entry = scored(0.8, 0.25)
    bars = error_bars(entry, ["accuracy", "f1_macro", "brier_score"])
    np.testing.assert_allclose(bars[:, 0], [0.03, 0.03])
    assert np.isnan(bars[:, 1]).all()  # an undefined interval draws no whisker
    assert error_bars({"metrics": {"accuracy": 0.8}}, ["accuracy"]).shape == (2, 1)
    # A percentile interval that misses its estimate does not draw a negative whisker.
    skewed = {"metrics": {"r2": 0.5}, "intervals": {"r2": interval(0.5, 0.52, 0.6)}}
    np.testing.assert_allclose(error_bars(skewed, ["r2"])[:, 0], [0.0, 0.1])
    for case in (evaluation(passed=True), without_intervals(evaluation(passed=True))):
        figure = plot_metrics(report_data(case))
        label = figure.axes[0].get_ylabel()
        assert (label == "holdout score (whiskers: 95% interval)") is ("evidence" in case)
        pyplot().close(figure)


# ----------------------------------------------------------------------------- mlstack models
class FakeRegistry:
    def __init__(self, versions: list[dict[str, Any]], production: int | None) -> None:
        self.versions, self.production = versions, production

    def list_versions(self, model: str) -> list[dict[str, Any]]:
        return self.versions

    def get_version(self, model: str, version: int) -> dict[str, Any]:
        return next(v for v in self.versions if v["version"] == version)

    def get_alias(self, model: str) -> int | None:
        return self.production

    def aliases(self, model: str) -> dict[str, Any]:
        return {}


class FakeClient:
    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry


def version_document(version: int, status: str, passed: bool) -> dict[str, Any]:
    """What Register stores for a version (register.version_document), in short."""
    graded = evaluation(passed=passed)
    best = graded["best"]
    return {
        "version": version,
        "status": status,
        "family": best["family"],
        "metric": "accuracy",
        "metrics": best["metrics"],
        "intervals": best["intervals"],
        "evidence": graded["evidence"],
        "dataset": {"rows": 400, "sha256": "ab" * 32},
        "splits": {"train_rows": 280, "holdout_rows": ROWS},
        "schema": {"features": [{"name": "island", "kind": "categorical"}]},
        "artifact": {"bucket": "models", "key": f"m/{version}/model.onnx", "sha256": "cd" * 32},
        "created_at": "2025-01-01T00:00:00Z",
    }


def test_models_shows_scores_with_intervals_and_the_verdicts() -> None:
    production = version_document(1, "Approved", passed=True)
    newest = version_document(2, "Rejected", passed=False)
    printed = format_models(FakeClient(FakeRegistry([production, newest], 1)), "penguins")  # type: ignore[arg-type]
    assert "accuracy=0.8123 (95% interval 0.7823 to 0.8423)" in printed  # the versions table
    details = printed.split("production version 1:")[1].split("newest version 2")[0]
    assert "  metrics    accuracy=0.8123 (95% interval 0.7823 to 0.8423)\n" in details
    assert "\n             brier_score=0.2671 (95% interval 0.2371 to 0.2971)\n" in details
    assert f"  verdict    {production['evidence']['verdict']}\n" in details
    assert "advice" not in details
    rejected = printed.split("newest version 2 (Rejected):")[1]
    assert f"  verdict    {newest['evidence']['verdict']}\n" in rejected
    assert f"  advice     {ADVICE}\n" in rejected


def test_models_shows_old_versions_without_intervals() -> None:
    old = without_intervals(version_document(1, "Approved", passed=True))
    rejected = without_intervals(version_document(2, "Rejected", passed=False))
    printed = format_models(FakeClient(FakeRegistry([old, rejected], 1)), "penguins")  # type: ignore[arg-type]
    assert "accuracy=0.8123  " in printed
    assert "  metrics    accuracy=0.8123\n             f1_macro=0.7623\n" in printed
    assert "interval" not in printed
    assert "verdict" not in printed
    assert "newest version" not in printed


def test_an_interval_document_is_what_evidence_writes() -> None:
    """The fixtures above hold intervals in the shape mlstack_core.evidence writes them."""
    written = Interval(0.8123, 0.7823, 0.8423, 0.95, ROWS).document()
    assert written == interval(0.8123, 0.7823, 0.8423)


def test_the_model_view_says_how_a_version_was_judged() -> None:
    from mlstack.cli.views import _rows_line

    folded = {"judged_on": "cross_validation", "folds": 5, "repeats": 3}
    assert _rows_line({"rows": 344}, folded) == (
        "344 (judged by 3 x 5-fold cross-validation; fitted on every row)"
    )
    split = {"judged_on": "holdout", "train_rows": 2400, "holdout_rows": 600}
    assert _rows_line({"rows": 3000}, split) == "3000 (2400 train, 600 holdout)"
