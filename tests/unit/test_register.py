"""Register: every evaluated challenger becomes a version; promotion is a conditional alias move."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from mlstack_core.approval_answers import answer_key
from mlstack_core.errors import ChampionChanged
from mlstack_core.settings import stack_settings
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


# ----------------------------------------------------------------- a retry after a timeout mid-way
class InvocationStopped(Exception):
    """The invocation ends here, as when Lambda stops a function at its timeout: the side effects
    so far stay, Powertools records no result, and Step Functions retries the task."""


def _stopped_once_after(monkeypatch: pytest.MonkeyPatch, method: str) -> list[str]:
    """The first call of ``Registry.<method>`` does its work, then the invocation stops."""
    from mlstack_core.registry import Registry

    original = getattr(Registry, method)
    stopped: list[str] = []

    def then_stop(self: Registry, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if not stopped:
            stopped.append(method)
            raise InvocationStopped(f"stopped after {method}")
        return result

    monkeypatch.setattr(Registry, method, then_stop)
    return stopped


def _invoke_until_done(event: dict[str, Any]) -> dict[str, Any]:
    """The Register task as Step Functions runs it: the same payload again after a failure."""
    handler = load_handler("register")
    with pytest.raises(InvocationStopped):
        handler(copy.deepcopy(event), FakeLambdaContext())
    result: dict[str, Any] = handler(copy.deepcopy(event), FakeLambdaContext())
    return result


def _changes_of(aws: Stack, version: int) -> tuple[list[Any], list[Any]]:
    history = aws.registry.history(MODEL)
    moves = [h for h in history if h["kind"] == "alias"]
    statuses = [h["status"] for h in history if h["kind"] == "status" and h["version"] == version]
    return moves, statuses


@pytest.mark.parametrize("stopped_after", ["allocate_version", "put_version", "move_alias"])
def test_a_promotion_retried_after_stopping_mid_way_promotes_once(
    aws: Stack, evaluated: dict[str, Any], monkeypatch: pytest.MonkeyPatch, stopped_after: str
) -> None:
    stopped = _stopped_once_after(monkeypatch, stopped_after)
    event = register_event("promote", evaluated["run"], evaluated["evaluation"])

    result = _invoke_until_done(event)

    assert stopped == [stopped_after]
    assert result["promoted"] is True
    assert result["version"] == 1
    assert result["status"] == "Approved"
    assert [int(v["version"]) for v in aws.registry.list_versions(MODEL)] == [1]
    assert aws.registry.get_alias(MODEL) == 1
    version = aws.registry.get_version(MODEL, 1)
    assert version["status"] == "Approved"
    moves, statuses = _changes_of(aws, 1)
    assert [(m["version"], m["previous"]) for m in moves] == [(1, None)]
    assert statuses == ["Approved"]
    assert result["artifact"] == version["artifact"]


@pytest.mark.parametrize(
    ("action", "status"), [("reject", "Rejected"), ("request_approval", "PendingApproval")]
)
@pytest.mark.parametrize("stopped_after", ["allocate_version", "put_version"])
def test_a_registration_retried_after_stopping_mid_way_registers_once(
    aws: Stack,
    evaluated: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    status: str,
    stopped_after: str,
) -> None:
    stopped = _stopped_once_after(monkeypatch, stopped_after)
    event = register_event(action, evaluated["run"], evaluated["evaluation"])

    result = _invoke_until_done(event)

    assert stopped == [stopped_after]
    assert result["version"] == 1
    assert result["status"] == status
    assert [int(v["version"]) for v in aws.registry.list_versions(MODEL)] == [1]
    assert aws.registry.get_version(MODEL, 1)["status"] == status
    assert aws.registry.get_alias(MODEL) is None
    assert _changes_of(aws, 1) == ([], [])


def _pending(evaluated: dict[str, Any]) -> dict[str, Any]:
    event = register_event("request_approval", evaluated["run"], evaluated["evaluation"])
    pending: dict[str, Any] = load_handler("register")(event, FakeLambdaContext())
    return pending


def test_an_approved_promotion_retried_after_the_alias_moved_promotes_once(
    aws: Stack, evaluated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported failure: the retry met the alias it had moved itself, marked the version
    "Registered / not promoted" and failed the run with ChampionChanged."""
    pending = _pending(evaluated)
    approval = {"approved": True, "version": 1, "actor": "reviewer", "reason": "looks right"}
    # The answer as the approval function records it before it resumes the run.
    aws.dynamodb.Table(stack_settings().approval_answers_table).put_item(
        Item={
            **answer_key(MODEL, 1),
            "model": MODEL,
            "version": 1,
            "execution_arn": evaluated["run"]["execution_arn"],
            "approved": True,
            "actor": "reviewer",
            "approver": "reviewer",
            "reason": "looks right",
            "answered_at": "2026-12-01T00:00:00+00:00",
        }
    )
    event = register_event(
        "promote_approved",
        evaluated["run"],
        evaluated["evaluation"],
        pending=pending,
        approval=approval,
        step="PromoteApproved",
    )
    _stopped_once_after(monkeypatch, "move_alias")

    result = _invoke_until_done(event)

    assert result["promoted"] is True
    assert result["version"] == 1
    assert result["status"] == "Approved"
    assert aws.registry.get_alias(MODEL) == 1
    assert aws.registry.get_version(MODEL, 1)["status"] == "Approved"
    moves, statuses = _changes_of(aws, 1)
    assert [(m["version"], m["actor"]) for m in moves] == [(1, "reviewer")]
    assert statuses == ["Approved"]


def test_a_rejection_of_the_pending_version_retried_after_it_was_written_rejects_once(
    aws: Stack, evaluated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer within the approval window: the retry finds the version Rejected by this run,
    not a StatusConflict."""
    pending = _pending(evaluated)
    event = register_event(
        "reject_pending",
        evaluated["run"],
        evaluated["evaluation"],
        pending=pending,
        step="RecordApprovalTimeout",
    )
    _stopped_once_after(monkeypatch, "set_status")

    result = _invoke_until_done(event)

    assert result["status"] == "Rejected"
    assert result["version"] == 1
    assert aws.registry.get_version(MODEL, 1)["status"] == "Rejected"
    assert _changes_of(aws, 1) == ([], ["Rejected"])


def test_the_card_is_a_step_of_its_own_after_the_registry_action(
    aws: Stack, evaluated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry action writes no card; WriteCard writes it from the files beside the version,
    and a card that cannot be written fails nothing."""
    handler = load_handler("register")
    _register("promote", evaluated)
    card = f"models/{MODEL}/1/card.md"
    listed = aws.s3.list_objects_v2(Bucket=aws.model_bucket, Prefix=card).get("Contents", [])
    assert listed == []

    event = {"action": "write_card", "model": MODEL, "version": 1, "execution_arn": "run"}
    assert handler(event, FakeLambdaContext())["card"] == card
    markdown = aws.s3.get_object(Bucket=aws.model_bucket, Key=card)["Body"].read().decode()
    assert "Approved" in markdown

    import mlstack_core.card

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot draw the card")

    monkeypatch.setattr(mlstack_core.card, "card_files", broken)
    assert handler(event, FakeLambdaContext())["card"] is None
