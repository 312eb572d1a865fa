"""Approval, promotion, rollback and queued runs, through the real state machine."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.errors import EXIT_REFUSED
from tests.helpers.local_cloud import (
    TARGET,
    entered_states,
    execution_events,
    manual_run,
    penguin_rows,
    to_csv,
)
from tests.helpers.tables import improving_uploads

pytestmark = pytest.mark.integration


def test_manual_approval_waits_then_approve_promotes(
    cloud: LocalCloud, stack: StackClient, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "approve-me"
    execution_arn = manual_run(stack, cloud, model)

    assert main(["approve", model, "1", "--reason", "looked at the report"]) == 0
    result = cloud.wait_for_execution(execution_arn)

    assert result["status"] == "SUCCEEDED"
    assert entered_states(execution_events(cloud, execution_arn))[-1] == "Promoted"
    assert stack.registry.get_alias(model) == 1
    version = stack.registry.get_version(model, 1)
    assert version["status"] == "Approved"
    moves = [h for h in stack.registry.history(model) if h["kind"] == "alias"]
    assert moves[-1]["reason"] == "looked at the report"
    assert moves[-1]["actor"]  # who approved
    # A settled approval cannot be answered again.
    assert main(["reject", model, "1"]) == EXIT_REFUSED
    assert "not awaiting approval" in capsys.readouterr().err


def test_manual_rejection_ends_the_run_without_promotion(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "reject-me"
    execution_arn = manual_run(stack, cloud, model)

    assert main(["reject", model, "1", "--reason", "recall too low on the new segment"]) == 0
    result = cloud.wait_for_execution(execution_arn)

    assert result["status"] == "SUCCEEDED"
    assert entered_states(execution_events(cloud, execution_arn))[-1] == "Rejected"
    assert stack.registry.get_alias(model) is None
    version = stack.registry.get_version(model, 1)
    assert version["status"] == "Rejected"
    assert version["status_reason"] == "recall too low on the new segment"


def test_promote_and_rollback_move_production_and_record_why(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "roll-me"
    # Each upload lets the model read one more of the columns the label depends on: each version
    # is better beyond noise, and promoted.
    for number, (body, spec) in enumerate(improving_uploads(3)):
        upload = stack.upload_dataset(model, body, spec, file_name=f"upload-{number}.csv")
        assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    assert stack.registry.get_alias(model) == 3

    assert main(["rollback", model, "--reason", "bad latency"]) == 0
    assert stack.registry.get_alias(model) == 2
    assert main(["rollback", model]) == 0
    assert stack.registry.get_alias(model) == 1
    assert main(["rollback", model]) == EXIT_REFUSED  # nothing before version 1
    assert stack.registry.get_alias(model) == 1

    assert main(["promote", model, "3", "--reason", "fixed"]) == 0
    assert stack.registry.get_alias(model) == 3
    moves = [h for h in stack.registry.history(model) if h["kind"] == "alias"]
    assert [(m["version"], m["previous"], m["rollback"]) for m in moves[-3:]] == [
        (2, 3, True),
        (1, 2, True),
        (3, 1, False),
    ]
    assert moves[-3]["reason"] == "bad latency"


def test_an_upload_during_a_run_of_the_same_model_waits_its_turn(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "queued"
    data = to_csv(penguin_rows())
    first = stack.upload_dataset(model, data, {"target": TARGET}, file_name="a.csv")
    second = stack.upload_dataset(model, data, None, file_name="b.csv")
    first_arn, second_arn = stack.find_execution(first), stack.find_execution(second)

    assert cloud.wait_for_execution(first_arn)["status"] == "SUCCEEDED"
    assert cloud.wait_for_execution(second_arn)["status"] == "SUCCEEDED"

    def busy_retries(events: list[dict[str, Any]]) -> int:
        return sum(
            1
            for e in events
            if e["type"] == "LambdaFunctionFailed"
            and e["lambdaFunctionFailedEventDetails"]["error"] == "ModelBusy"
        )

    # Either execution may reach the lock first; the other must have waited for it.
    histories = sorted(
        (execution_events(cloud, first_arn), execution_events(cloud, second_arn)), key=busy_retries
    )
    holder, waiter = histories
    assert busy_retries(holder) == 0
    assert busy_retries(waiter) > 0, "one run found the lock taken and retried"
    released = max(
        e["timestamp"]
        for e in holder
        if e["type"] == "TaskStateExited"
        and e["stateExitedEventDetails"]["name"] == "ReleaseRunLock"
    )
    waiter_preprocess = min(
        e["timestamp"]
        for e in waiter
        if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"] == "Preprocess"
    )
    assert waiter_preprocess >= released, "runs of one model never overlap"
    assert [v["version"] for v in stack.registry.list_versions(model)] == [1, 2]
    # Whichever ran second trained on the same rows: no better beyond noise, production stays.
    assert stack.registry.get_alias(model) == 1
