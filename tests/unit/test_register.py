"""Register: every evaluated challenger becomes a version; promotion is a conditional alias move."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from mlstack_core.errors import ChampionChanged
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import Stack, load_handler, register_event
from tests.helpers.tables import penguins_bytes

pytestmark = [pytest.mark.unit, pytest.mark.slow]

MODEL = "penguins"


@pytest.fixture
def evaluated(aws: Stack) -> dict[str, Any]:
    """A real Preprocess → Train → Evaluate state for the penguins data."""
    aws.put_spec(MODEL, {"target": "species"})
    return aws.run_pipeline(MODEL, penguins_bytes())


def _register(action: str, state: dict[str, Any]) -> dict[str, Any]:
    event = register_event(action, state["run"], state["evaluation"])
    result: dict[str, Any] = load_handler("register")(event, FakeLambdaContext())
    return result


def test_promotion_registers_a_version_with_lineage_and_moves_production(
    aws: Stack, evaluated: dict[str, Any]
) -> None:
    result = _register("promote", evaluated)

    assert result["promoted"] is True
    assert result["version"] == 1
    assert aws.registry.get_alias(MODEL) == 1
    version = aws.registry.get_version(MODEL, 1)
    assert version["status"] == "Approved"
    assert version["family"] == evaluated["evaluation"]["best"]["family"]
    assert version["metrics"] == evaluated["evaluation"]["best"]["metrics"]
    assert version["schema"] == evaluated["run"]["schema"]
    assert version["dataset"]["sha256"] == hashlib.sha256(penguins_bytes()).hexdigest()
    assert version["execution_arn"] == evaluated["run"]["execution_arn"]

    artifact = version["artifact"]
    assert artifact["key"] == f"models/{MODEL}/1/model.onnx"
    stored = aws.s3.get_object(Bucket=artifact["bucket"], Key=artifact["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    assert aws.read_json(f"models/{MODEL}/1/metadata.json")["artifact"] == artifact

    moves = [h for h in aws.registry.history(MODEL) if h["kind"] == "alias"]
    assert moves[-1]["version"] == 1
    assert moves[-1]["previous"] is None
    assert moves[-1]["actor"] == "pipeline"


def test_rejection_is_recorded_and_production_is_untouched(
    aws: Stack, evaluated: dict[str, Any]
) -> None:
    _register("promote", evaluated)
    rejected_state = copy.deepcopy(evaluated)
    rejected_state["evaluation"]["decision"] = "reject"
    rejected_state["evaluation"]["reasons"] = ["accuracy 0.41 is below threshold 0.9"]

    result = _register("reject", rejected_state)

    assert result["promoted"] is False
    assert result["status"] == "Rejected"
    assert aws.registry.get_alias(MODEL) == 1
    version = aws.registry.get_version(MODEL, result["version"])
    assert version["status"] == "Rejected"
    assert "below threshold" in version["status_reason"]


def test_a_run_that_saw_a_stale_champion_cannot_overwrite_production(
    aws: Stack, evaluated: dict[str, Any]
) -> None:
    # Two runs evaluated against "no production yet"; the first promotes, the second must not.
    first, second = evaluated, copy.deepcopy(evaluated)
    second["run"]["execution_arn"] += "-second-run"
    _register("promote", first)

    with pytest.raises(ChampionChanged):
        _register("promote", second)

    assert aws.registry.get_alias(MODEL) == 1
    loser = aws.registry.get_version(MODEL, 2)
    assert loser["status"] == "Registered"
    assert "not promoted" in loser["status_reason"]


def test_a_model_file_swapped_after_evaluation_is_never_registered(aws: Stack) -> None:
    """The winner's model.onnx written again between Evaluate and Register: Register fails by
    name, registers nothing and leaves production alone."""
    from mlstack_core.errors import ArtifactTampered
    from tests.helpers.tables import penguins_bytes

    aws.put_spec("swapped", {"target": "species", "candidates": ["logistic_regression"]})
    state = aws.run_pipeline("swapped", penguins_bytes())
    best = state["evaluation"]["best"]
    assert best["onnx_version_id"]
    assert best["onnx_sha256"]
    aws.s3.put_object(Bucket=aws.model_bucket, Key=best["onnx_key"], Body=b"not the model")

    with pytest.raises(ArtifactTampered, match="written again after it was evaluated"):
        aws.run_register_step(state)
    assert aws.registry.get_alias("swapped") is None
    assert [v for v in aws.registry.list_versions("swapped") if v.get("artifact")] == []


def test_register_copies_exactly_the_evaluated_bytes(aws: Stack) -> None:
    import hashlib

    from tests.helpers.tables import penguins_bytes

    aws.put_spec("exact", {"target": "species", "candidates": ["logistic_regression"]})
    state = aws.run_pipeline("exact", penguins_bytes())
    registration = aws.run_register_step(state)
    artifact = registration["artifact"]
    body = aws.s3.get_object(Bucket=artifact["bucket"], Key=artifact["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == state["evaluation"]["best"]["onnx_sha256"]
    document = aws.registry.get_version("exact", registration["version"])
    assert document["artifact"]["sha256"] == state["evaluation"]["best"]["onnx_sha256"]
    assert document["artifact"]["version_id"] == artifact["version_id"]


@pytest.mark.parametrize("action", ["promote", "reject", "request_approval"])
def test_register_invoked_twice_with_the_same_input_acts_once(
    aws: Stack, evaluated: dict[str, Any], action: str
) -> None:
    """Step Functions retries Register on errors AWS raises after the function ran: the second
    invocation returns the first one's result and registers, moves and records nothing more."""
    first = _register(action, evaluated)
    second = _register(action, evaluated)
    assert second == first
    assert [int(v["version"]) for v in aws.registry.list_versions(MODEL)] == [1]
    moves = [h for h in aws.registry.history(MODEL) if h["kind"] == "alias"]
    assert len(moves) == (1 if action == "promote" else 0)
    assert aws.registry.get_alias(MODEL) == (1 if action == "promote" else None)

    # Another state of the same run (or another run) is another call.
    other = copy.deepcopy(evaluated)
    other["run"]["execution_arn"] += "-next"
    _register("reject", other)
    assert len(aws.registry.list_versions(MODEL)) == 2
