"""The gate through the real handlers: a table with nothing to learn does not reach production, one
with a real signal does, and retraining on data that has not changed leaves production alone.

The rates behind these examples (hundreds of generated tables, the old gate beside the new) are
measured by benchmarks/gate.py; here each example is one run that must come out as stated.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.shapes import run_through_handlers
from tests.helpers.stack import Stack
from tests.helpers.tables import generated, improving_uploads, penguins_bytes

pytestmark = [pytest.mark.unit, pytest.mark.slow]

# Derandomized: each example is a fixed table, so the suite cannot fail on the gate's own 5 %.
EXAMPLES = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


shapes = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31),
        "rows": st.integers(300, 1500),
        "numeric": st.integers(0, 4),
        "categorical": st.integers(0, 3),
        "classes": st.sampled_from([0, 2, 2, 3]),
    }
).filter(lambda shape: shape["numeric"] + shape["categorical"] > 0)


@EXAMPLES
@given(shape=shapes)
def test_a_table_with_nothing_to_learn_is_not_promoted(aws: Stack, shape: dict[str, Any]) -> None:
    body, spec = generated(signal=0.0, **shape)
    state, _ = run_through_handlers(aws, f"coin-{shape['seed']}", body, spec)
    evaluation = state["evaluation"]
    assert evaluation["decision"] == "reject", evaluation["reasons"]
    assert evaluation["error"] == "NotBetterThanBaseline"
    assert state["registration"]["promoted"] is False
    assert state["registration"]["error"] == "NotBetterThanBaseline"
    assert "upload a larger dataset" in state["registration"]["advice"]
    assert aws.registry.get_alias(f"coin-{shape['seed']}") is None


@EXAMPLES
@given(shape=shapes)
def test_a_table_with_a_strong_signal_is_promoted(aws: Stack, shape: dict[str, Any]) -> None:
    body, spec = generated(signal=3.0, **shape)
    state, version = run_through_handlers(aws, f"signal-{shape['seed']}", body, spec)
    assert state["evaluation"]["decision"] == "promote", state["evaluation"]["reasons"]
    assert state["evaluation"]["evidence"]["improvement"]["low"] > 0
    assert aws.registry.get_alias(f"signal-{shape['seed']}") == version


def test_retraining_on_an_unchanged_distribution_leaves_production_alone(aws: Stack) -> None:
    """Fresh samples of one distribution, as a team retraining every week would upload: the
    first is promoted, the next ones are no better beyond noise and production stays."""
    model = "weekly"
    first, spec = generated(seed=1, rows=800, numeric=3, categorical=1, classes=2, signal=1.0)
    state, version = run_through_handlers(aws, model, first, spec)
    assert state["evaluation"]["decision"] == "promote"
    for week in range(2, 5):
        body, _ = generated(seed=week, rows=800, numeric=3, categorical=1, classes=2, signal=1.0)
        state, _ = run_through_handlers(aws, model, body, spec)
        assert state["evaluation"]["error"] == "NotBetterThanProduction", state["evaluation"]
        assert aws.registry.get_alias(model) == version


def test_a_real_improvement_replaces_production(aws: Stack) -> None:
    """Production read fewer of the columns that carry the label; each challenger reads one more."""
    versions = []
    for body, spec in improving_uploads(4):
        state, version = run_through_handlers(aws, "growing", body, spec)
        assert state["evaluation"]["decision"] == "promote", state["evaluation"]["reasons"]
        versions.append(version)
        assert aws.registry.get_alias("growing") == version
    assert state["evaluation"]["evidence"]["against"] == "production"
    assert versions == [1, 2, 3, 4]


@pytest.mark.parametrize("confidence", [0.5, 0.9])
def test_a_spec_cannot_ask_for_less_confidence_than_the_stack(
    aws: Stack, confidence: float
) -> None:
    outcome = run_through_handlers(
        aws, "penguins", penguins_bytes(), {"target": "species", "gate_confidence": confidence}
    )
    assert type(outcome).__name__ == "SpecOutsideStackLimits"
    assert "GateConfidence" in str(outcome)


def test_a_spec_may_ask_for_more_confidence(aws: Stack) -> None:
    state, _ = run_through_handlers(
        aws, "penguins", penguins_bytes(), {"target": "species", "gate_confidence": 0.999}
    )
    evidence = state["evaluation"]["evidence"]
    assert evidence["confidence"] == 0.999
    # Three candidates, two measures (log loss and accuracy).
    assert evidence["improvement"]["confidence"] == pytest.approx(1 - 0.001 / 6)
