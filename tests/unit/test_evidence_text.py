"""Scores with their intervals and the gate's verdict in words (mlstack_core.evidence_text), on
documents mlstack_core.evidence writes and on older ones that lack them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mlstack_core import evidence
from mlstack_core.evidence import Interval
from mlstack_core.evidence_text import (
    MEASURE_NAMES,
    how_judged,
    judgement,
    metric_names,
    metric_with_interval,
    number,
    percent,
    with_interval,
)
from tests.helpers.evidence import ROWS, weighed
from tests.helpers.stack import ROOT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.98333333, 0.999, 1 - 0.05 / 7])
def test_confidences_read_as_the_evidence_writes_them(confidence: float) -> None:
    assert percent(confidence) == evidence.percent(confidence)


def test_measures_are_named_as_the_evidence_names_them() -> None:
    assert MEASURE_NAMES == evidence.MEASURE_NAMES


def test_a_score_shows_its_interval() -> None:
    interval = Interval(0.8123, 0.781, 0.842, 0.95, ROWS).document()
    assert with_interval(0.8123, interval) == "0.8123 (95% interval 0.7810 to 0.8420)"
    difference = Interval(0.02, -0.01, 0.05, 0.95, ROWS).document()
    assert with_interval(0.02, difference, signed=True) == (
        "+0.0200 (95% interval -0.0100 to 0.0500)"
    )


def test_an_intervals_bounds_read_like_its_estimate() -> None:
    near_zero = Interval(0.0132, -0.000596508, 0.0269, 0.95, ROWS).document()
    assert with_interval(0.0132, near_zero) == "0.0132 (95% interval -0.0006 to 0.0269)"
    large = Interval(15234.5, 9876.54, 20011.2, 0.95, ROWS).document()
    assert with_interval(15234.5, large) == "15234.5 (95% interval 9876.54 to 20011.2)"
    tiny = Interval(0.00012, 0.00008, 0.00016, 0.95, ROWS).document()
    assert with_interval(0.00012, tiny) == "0.00012 (95% interval 8e-05 to 0.00016)"


def test_an_interval_with_an_open_side_says_it_is_undefined() -> None:
    # Evidence writes an infinite bound as null (JSON has no infinity).
    interval = Interval(0.5, -np.inf, np.inf, 0.95, 1).document()
    assert with_interval(0.5, interval) == "0.5000 (95% interval undefined)"


def test_a_score_without_an_interval_is_the_bare_value() -> None:
    assert with_interval(0.8123, None) == "0.8123"
    assert with_interval(None, Interval(0.5, 0.4, 0.6, 0.95, 9).document()) == "-"


def test_large_and_tiny_scores_keep_their_significant_digits() -> None:
    assert number(123456.789) == "123457"
    assert number(0.00012345) == "0.00012345"
    assert number(0.0) == "0.0000"
    assert number(float("nan")) == "-"


def test_the_evidence_measure_follows_the_metrics_and_shows_its_estimate() -> None:
    entry = {
        "metrics": {"accuracy": 0.8, "f1_macro": 0.7},
        "intervals": {
            "accuracy": Interval(0.8, 0.7, 0.9, 0.95, ROWS).document(),
            "brier_score": Interval(0.25, 0.2, 0.3, 0.95, ROWS).document(),
        },
    }
    assert metric_names(entry) == ["accuracy", "f1_macro", "brier_score"]
    assert metric_with_interval(entry, "brier_score") == "0.2500 (95% interval 0.2000 to 0.3000)"
    assert metric_with_interval(entry, "f1_macro") == "0.7000"
    assert metric_with_interval({"metrics": {"accuracy": 0.8}}, "accuracy") == "0.8000"


def test_a_promotion_has_a_verdict_and_no_advice() -> None:
    document = weighed(passed=True)
    assert judgement(document) == [f"verdict: {document['verdict']}"]
    assert document["verdict"].startswith("beats production v1 beyond noise")


def test_a_rejection_for_lack_of_evidence_gives_advice() -> None:
    document = weighed(passed=False)
    lines = judgement(document)
    assert lines[0].startswith("verdict: NotBetterThanProduction: no better than production v1")
    assert lines[1] == f"advice: {evidence.ADVICE}"


def test_documents_without_evidence_have_no_judgement() -> None:
    assert judgement(None) == []
    assert judgement({}) == []


def test_how_the_gate_judged_names_measure_rows_and_correction() -> None:
    text = how_judged(weighed(passed=True))
    assert "the Brier score of each holdout row" in text
    assert "against production v1's on the same 120 rows" in text
    assert "paired 98.3% interval" in text
    assert "95% with Bonferroni's correction across 3 candidates" in text
    assert "accuracy is not worse beyond noise (its 95% interval)" in text


def test_one_candidate_needs_no_correction_and_a_margin_is_named() -> None:
    text = how_judged(weighed(passed=False, comparisons=1, min_improvement=0.05))
    assert "paired 95% interval" in text
    assert "one candidate, so no correction" in text
    assert "accuracy improves by at least 0.05" in text


def test_the_cli_starts_without_numpy() -> None:
    """The views format intervals through evidence_text, not evidence: numpy loads only for the
    commands that compute."""
    script = "import sys, mlstack.cli.main; print('numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
