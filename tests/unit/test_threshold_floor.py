"""The stack's floor on a spec's ``threshold`` (GateMinThreshold): whoever writes the data bucket
cannot set a bar below it, through the Preprocess handler with its Step Functions event."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack_core import errors
from mlstack_core.settings import forget
from tests.helpers.stack import Stack
from tests.helpers.tables import penguins_bytes, synthetic_regression

pytestmark = pytest.mark.unit

FLOOR = "0.8"


@pytest.fixture
def floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_MIN_THRESHOLD", FLOOR)
    forget()


def _preprocess(aws: Stack, model: str, spec: dict[str, Any], body: bytes) -> dict[str, Any]:
    aws.put_spec(model, spec)
    return aws.preprocess(aws.upload(model, body))


@pytest.mark.usefixtures("floor")
@pytest.mark.parametrize("threshold", [0.5, 0.0, 0.7999])
def test_a_threshold_below_the_stacks_floor_fails_by_name(aws: Stack, threshold: float) -> None:
    spec = {"target": "species", "threshold": threshold}
    with pytest.raises(errors.SpecOutsideStackLimits) as caught:
        _preprocess(aws, "below-floor", spec, penguins_bytes())
    assert f"threshold {threshold} is below the stack's floor 0.8 (GateMinThreshold)" in str(
        caught.value
    )


@pytest.mark.usefixtures("floor")
def test_a_lower_is_better_metric_cannot_escape_the_floor(aws: Stack) -> None:
    """log_loss is in other units than the floor: choosing it would leave no bar at all."""
    spec = {"target": "species", "metric": "log_loss", "threshold": 0.1}
    with pytest.raises(errors.SpecOutsideStackLimits, match="GateMinThreshold"):
        _preprocess(aws, "lower-is-better", spec, penguins_bytes())


@pytest.mark.usefixtures("floor")
def test_a_regressions_error_metric_cannot_escape_the_floor(aws: Stack) -> None:
    spec = {"target": "price", "metric": "rmse"}
    with pytest.raises(errors.SpecOutsideStackLimits, match="metric rmse is lower-is-better"):
        _preprocess(aws, "rmse", spec, synthetic_regression())


@pytest.mark.usefixtures("floor")
def test_a_spec_without_a_threshold_takes_the_floor_and_one_above_keeps_its_own(
    aws: Stack,
) -> None:
    run = _preprocess(aws, "no-threshold", {"target": "species"}, penguins_bytes())
    assert run["spec"]["threshold"] == 0.8
    run = _preprocess(aws, "own", {"target": "species", "threshold": 0.9}, penguins_bytes())
    assert run["spec"]["threshold"] == 0.9


def test_without_a_floor_a_spec_sets_any_threshold(aws: Stack) -> None:
    run = _preprocess(aws, "free", {"target": "species", "threshold": 0.1}, penguins_bytes())
    assert run["spec"]["threshold"] == 0.1
    run = _preprocess(aws, "none", {"target": "species"}, penguins_bytes())
    assert run["spec"]["threshold"] is None


@pytest.mark.slow
@pytest.mark.usefixtures("floor")
def test_the_gate_holds_the_challenger_to_the_floor(aws: Stack) -> None:
    """The floor a spec took is the bar Evaluate applies."""
    aws.put_spec("gated", {"target": "species", "candidates": ["logistic_regression"]})
    evaluation = aws.run_pipeline("gated", penguins_bytes())["evaluation"]
    assert any(reason.endswith("threshold 0.8") for reason in evaluation["reasons"])
