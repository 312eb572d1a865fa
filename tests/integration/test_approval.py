"""An approval that cannot be forged: the version is fixed before the run pauses, the answer comes
through IAM-authorised routes with the caller's identity as the actor, only the approval
function holds the task token, and Register acts on the answer the approval function recorded,
not on the one the run was resumed with."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from tests.helpers.local_cloud import (
    TARGET,
    AlertInbox,
    function_environment,
    manual_run,
    penguin_rows,
    to_csv,
)

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[1] / "events"


def _physical(cloud: LocalCloud, logical_id: str) -> str:
    assert cloud.stack is not None
    return cloud.stack.physical_ids[logical_id]


def _held_token(cloud: LocalCloud, model: str, version: int) -> str:
    """The task token the paused run handed the approval function: the version turns
    PendingApproval (and its card is written) a few states before the run pauses, so wait."""
    deadline = time.monotonic() + 60
    while True:
        item = cloud.client("dynamodb").get_item(
            TableName=_physical(cloud, "ApprovalsTable"), Key={"pk": {"S": f"{model}#{version}"}}
        )
        if "Item" in item:
            return str(item["Item"]["task_token"]["S"])
        if time.monotonic() > deadline:
            raise AssertionError(f"version {version} of {model} never got a task token")
        time.sleep(0.1)


def test_an_unsigned_answer_is_refused_before_it_reaches_the_function(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "unsigned-answer"
    manual_run(stack, cloud, model)
    request = urllib.request.Request(
        f"{cloud.api_url}models/{model}/versions/1/approve",
        data=json.dumps({"reason": "trust me"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert stack.registry.get_version(model, 1)["status"] == "PendingApproval"
    assert _held_token(cloud, model, 1)  # still waiting for a real answer


def test_the_actor_is_the_signed_caller_not_a_name_in_the_body(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "who-approved"
    execution_arn = manual_run(stack, cloud, model)
    response = stack.request(
        "POST",
        f"/models/{model}/versions/1/approve",
        {"reason": "looks right", "actor": "arn:aws:iam::123456789012:user/the-ceo"},
    )
    assert response.status == 200, response.body
    assert cloud.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"

    caller = cloud.identify("testing")
    assert caller is not None
    document = stack.registry.get_version(model, 1)
    assert (document["status"], document["status_changed_by"]) == ("Approved", caller)
    moves = [h for h in stack.registry.history(model) if h["kind"] == "alias"]
    assert (moves[-1]["actor"], moves[-1]["reason"]) == (caller, "looks right")
    # The token was taken with the answer: a second answer finds no run waiting.
    again = stack.request("POST", f"/models/{model}/versions/1/reject", {"reason": "changed"})
    assert again.status == 409


def test_a_forged_answer_for_another_version_promotes_nothing(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    """Someone who got hold of the token (and states:SendTaskSuccess) answers for version 1, an
    old Rejected one, while the run waits for version 2: the run fails by name, production and
    both versions stay as they were, one alert."""
    model = "forged-answer"
    rows = penguin_rows()
    labels = [row[TARGET] for row in rows]
    random.Random(3).shuffle(labels)  # no signal: the gate rejects it
    rejected = to_csv([{**row, TARGET: label} for row, label in zip(rows, labels, strict=True)])
    upload = stack.upload_dataset(model, rejected, {"target": TARGET}, file_name="v1.csv")
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    assert stack.registry.get_version(model, 1)["status"] == "Rejected"
    spec = {"target": TARGET, "approval": "manual"}
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), spec, file_name="v2.csv")
    execution_arn = stack.find_execution(upload)
    _wait_for_pending(stack, model, 2)
    alerts.drain()

    forged = {"approved": True, "version": 1, "actor": "arn:aws:iam::123:user/x", "reason": "x"}
    cloud.client("stepfunctions").send_task_success(
        taskToken=_held_token(cloud, model, 2), output=json.dumps(forged)
    )
    result = cloud.wait_for_execution(execution_arn)

    assert result["status"] == "FAILED"
    assert result["error"] == "ApprovalForAnotherVersion"
    assert stack.registry.get_alias(model) is None
    assert stack.registry.get_version(model, 1)["status"] == "Rejected"
    # Never approved: pending until the RunEnded rule delivers the failed run's end, which
    # rejects the version it left waiting.
    assert stack.registry.get_version(model, 2)["status"] in ("PendingApproval", "Rejected")
    failed = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert [m["MessageAttributes"]["error"]["Value"] for m in failed] == [
        "ApprovalForAnotherVersion"
    ]


def test_a_forged_actor_resumes_nothing_without_the_recorded_answer(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    """Someone who read the token in the execution's history (and may call
    states:SendTaskSuccess) answers yes for the right version, in someone else's name: Register
    finds no answer the approval function recorded, so the run fails by name and nothing is
    promoted."""
    model = "forged-actor"
    execution_arn = manual_run(stack, cloud, model)
    alerts.drain()

    forged = {
        "approved": True,
        "version": 1,
        "actor": "arn:aws:iam::123456789012:user/the-ceo",
        "reason": "approved by the board",
    }
    cloud.client("stepfunctions").send_task_success(
        taskToken=_held_token(cloud, model, 1), output=json.dumps(forged)
    )
    result = cloud.wait_for_execution(execution_arn)

    assert result["status"] == "FAILED"
    assert result["error"] == "ApprovalNotRecorded"
    assert stack.registry.get_alias(model) is None
    # The run ended, so the RunEnded rule may already have rejected the version: never Approved.
    assert stack.registry.get_version(model, 1)["status"] in ("PendingApproval", "Rejected")
    assert all(h["actor"] != forged["actor"] for h in stack.registry.history(model))
    failed = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert [m["MessageAttributes"]["error"]["Value"] for m in failed] == ["ApprovalNotRecorded"]


def test_while_a_version_waits_the_model_is_not_locked(
    cloud: LocalCloud, stack: StackClient
) -> None:
    """A later upload trains and promotes while version 1 waits; approving version 1 afterwards
    fails as ChampionChanged instead of overwriting the newer production."""
    model = "waits-unlocked"
    execution_arn = manual_run(stack, cloud, model)
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), {"target": TARGET}, "later.csv")
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    assert stack.registry.get_alias(model) == 2

    assert main(["approve", model, "1", "--reason", "late"]) == 0
    result = cloud.wait_for_execution(execution_arn)
    assert result["status"] == "FAILED"
    assert result["error"] == "ChampionChanged"
    assert stack.registry.get_alias(model) == 2


def test_the_uploader_cannot_approve_their_own_data_when_the_stack_says_so(
    cloud: LocalCloud, stack: StackClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ApproverMustDiffer: CloudTrail's record of the upload (delivered by EventBridge to the
    approval function) names the uploader; the same principal is refused, another is not."""
    model = "four-eyes"
    execution_arn = manual_run(stack, cloud, model)
    document = stack.registry.get_version(model, 1)
    with function_environment(cloud, "ApprovalFunction", APPROVER_MUST_DIFFER="true"):
        uploader = cloud.identify("testing")
        # Before CloudTrail reports the upload, the answer must wait.
        early = stack.request("POST", f"/models/{model}/versions/1/approve", {"reason": "mine"})
        assert early.status == 409
        assert "CloudTrail has not yet reported" in early.body["error"]

        event = json.loads((EVENTS / "cloudtrail_s3_put_object.json").read_text())
        detail = event["detail"]
        dataset = document["dataset"]
        detail["userIdentity"]["arn"] = uploader
        detail["requestParameters"].update(bucketName=dataset["bucket"], key=dataset["key"])
        detail["responseElements"]["x-amz-version-id"] = dataset["version_id"]
        cloud.invoke_function("ApprovalFunction", event)

        mine = stack.request("POST", f"/models/{model}/versions/1/approve", {"reason": "mine"})
        assert mine.status == 403
        assert "ApproverMustDiffer" in mine.body["error"]

        iam = cloud.client("iam")
        iam.create_user(UserName="reviewer")
        key = iam.create_access_key(UserName="reviewer")["AccessKey"]
        reviewer = StackClient(
            stack.stack_name,
            session=boto3.Session(
                aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"],
                region_name="us-east-1",
            ),
        )
        answer = reviewer.request("POST", f"/models/{model}/versions/1/approve", {"reason": "ok"})
        assert answer.status == 200, answer.body
        assert answer.body["actor"].endswith(":user/reviewer")
        assert cloud.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"
        assert stack.registry.get_alias(model) == 1


def _wait_for_pending(stack: StackClient, model: str, version: int) -> None:
    from tests.helpers.local_cloud import wait_for_status

    wait_for_status(stack, model, version, "PendingApproval")
