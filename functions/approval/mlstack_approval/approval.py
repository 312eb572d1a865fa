"""Approvals: the paused run's task token, kept where only this function reads it, and the
answer a person gives through the API.

The token of a run waiting for approval is a bearer credential: whoever holds it (and
``states:SendTaskSuccess``) resumes the run. It is stored in the approvals table, which no other
role of the stack can read, and it is taken out with a conditional delete when a person answers,
so two answers cannot both be sent. The answer names the version Register created before the run
paused; the state machine compares it with the version fixed in its own state.

The token also shows in the execution's history, so whoever may read that history and call
``states:SendTaskSuccess`` could resume the run with an answer of their own. Before sending a
person's answer, this function records it (``mlstack_core.approval_answers``) in the approval
answers table, which only its role writes; Register acts on that record, never on the answer's
words.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from mlstack_core.approval_answers import RecordedAnswer, answer_key
from mlstack_core.errors import ApprovalForbidden, ApprovalRefused
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model
from mlstack_core.registry import Registry
from mlstack_core.registry_keys import STATUS_PENDING_APPROVAL
from mlstack_core.settings import approval_settings, stack_settings

# How long an answer waits for a run that registered its version but has not paused yet.
PAUSE_WAIT_SECONDS = 10
# A held token outlives the state machine's approval window by a day, then DynamoDB's TTL drops it.
TOKEN_TTL_SECONDS = 8 * 24 * 3600


def _table() -> Any:
    return boto3.resource("dynamodb").Table(approval_settings().approvals_table)


def _key(model: str, version: int) -> dict[str, str]:
    return {"pk": f"{model}#{version}"}


def hold(model: str, version: int, task_token: str, execution_arn: str) -> None:
    """Keep the paused run's token until a person answers (AwaitApproval's task)."""
    per_model(model)  # the state machine's model: a registered name
    _table().put_item(
        Item={
            **_key(model, version),
            "task_token": task_token,
            "execution_arn": execution_arn,
            "expires_at": int(time.time()) + TOKEN_TTL_SECONDS,
        }
    )
    metrics.add_metric(name="ApprovalsRequested", unit=MetricUnit.Count, value=1)
    logger.info("Awaiting approval", extra={"model": model, "version": version})


@dataclass(frozen=True)
class Answer:
    model: str
    version: int
    approved: bool
    actor: str
    reason: str

    def payload(self) -> str:
        return json.dumps(
            {
                "approved": self.approved,
                "version": self.version,
                "actor": self.actor,
                "reason": self.reason,
            }
        )


def answer(answer: Answer) -> dict[str, Any]:
    """Send a person's decision to the run waiting for it; the run records it in the registry."""
    if not answer.actor:
        raise ApprovalForbidden("an approval needs an IAM-signed request: no caller identity")
    registry = Registry(stack_settings().registry_table)
    document = registry.get_version(answer.model, answer.version)  # ModelNotFound: 404
    if document.get("status") != STATUS_PENDING_APPROVAL:
        raise ApprovalRefused(
            f"version {answer.version} of {answer.model!r} is {document.get('status')}, "
            "not awaiting approval",
        )
    if approval_settings().distinct_approver:
        _check_another_principal(answer, document.get("dataset") or {})
    held = _take_token_once_paused(registry, answer.model, answer.version)
    per_model(answer.model)  # the registry has this version: a registered name
    _record(answer, str(held["execution_arn"]))
    try:
        boto3.client("stepfunctions").send_task_success(
            taskToken=held["task_token"], output=answer.payload()
        )
    except ClientError as error:
        if error.response["Error"]["Code"] in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
            raise ApprovalRefused(
                f"the run of version {answer.version} no longer waits (its approval window "
                "passed or it was stopped)",
            ) from error
        raise
    decision = "approved" if answer.approved else "rejected"
    metrics.add_metric(name="ApprovalsAnswered", unit=MetricUnit.Count, value=1)
    logger.info(
        "Approval answered",
        extra={"model": answer.model, "version": answer.version, "decision": decision},
    )
    return {
        "model": answer.model,
        "version": answer.version,
        "decision": decision,
        "actor": answer.actor,
        "reason": answer.reason,
        "execution_arn": str(held["execution_arn"]),
    }


def _record(answer: Answer, execution_arn: str) -> None:
    """The answer as this function verified it, where Register reads it and no other role of
    the stack writes: written before the run resumes, so Register always finds it."""
    record: RecordedAnswer = {
        "model": answer.model,
        "version": answer.version,
        "execution_arn": execution_arn,
        "approved": answer.approved,
        "actor": answer.actor,
        "approver": principal(answer.actor),
        "reason": answer.reason,
        "answered_at": datetime.now(UTC).isoformat(),
    }
    item: dict[str, Any] = {**answer_key(answer.model, answer.version), **record}
    boto3.resource("dynamodb").Table(stack_settings().approval_answers_table).put_item(Item=item)


def principal(arn: str) -> str:
    """The IAM principal an ARN acts for, as ApproverMustDiffer compares them: the role behind
    an assumed-role session (``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`` ->
    ``arn:aws:sts::ACCOUNT:assumed-role/ROLE``), since anyone who may assume the role may name
    the session as they like; any other ARN (an IAM user, the account's root) as it is."""
    prefix, _, resource = arn.partition(":assumed-role/")
    if not resource or not prefix.startswith("arn:") or ":sts:" not in prefix:
        return arn
    role = resource.split("/", 1)[0]
    return f"{prefix}:assumed-role/{role}"


# ---------------------------------------------------------------------------- who uploaded
# With ApproverMustDiffer, CloudTrail records the data bucket's PutObject and
# CompleteMultipartUpload calls under datasets/ and EventBridge sends each here: the only
# unforgeable record of who uploaded an object version (S3's own event names the account, not
# the principal). A multipart upload's object version is made by its CompleteMultipartUpload
# call, by whoever completes it.
UPLOAD_TTL_SECONDS = 30 * 24 * 3600
UPLOAD_EVENTS = frozenset({"PutObject", "CompleteMultipartUpload"})


def _upload_key(bucket: str, key: str, version_id: str | None) -> dict[str, str]:
    return {"pk": f"UPLOAD#{bucket}/{key}#{version_id or ''}"}


def record_upload(event: dict[str, Any]) -> None:
    """An ``AWS API Call via CloudTrail`` event for s3:PutObject or s3:CompleteMultipartUpload:
    remember who wrote the object version."""
    detail = event["detail"]
    if detail.get("eventName") not in UPLOAD_EVENTS:
        logger.warning("Not an upload", extra={"event_name": str(detail.get("eventName"))[:64]})
        return
    request = detail.get("requestParameters") or {}
    version_id = (detail.get("responseElements") or {}).get("x-amz-version-id")
    _table().put_item(
        Item={
            **_upload_key(request["bucketName"], request["key"], version_id),
            "uploaded_by": detail["userIdentity"]["arn"],
            "expires_at": int(time.time()) + UPLOAD_TTL_SECONDS,
        }
    )
    metrics.add_metric(name="UploadsRecorded", unit=MetricUnit.Count, value=1)


def _check_another_principal(answer: Answer, dataset: Mapping[str, Any]) -> None:
    item = (
        _table()
        .get_item(
            Key=_upload_key(
                dataset.get("bucket", ""), dataset.get("key", ""), dataset.get("version_id")
            ),
            ConsistentRead=True,
        )
        .get("Item")
    )
    if item is None:
        raise ApprovalRefused(
            "this stack requires the approver to differ from the uploader, and CloudTrail has not "
            "yet reported who uploaded this data (it usually does within minutes): try again",
        )
    if principal(str(item["uploaded_by"])) == principal(answer.actor):
        raise ApprovalForbidden(
            f"{principal(answer.actor)} uploaded the data of version {answer.version} (another "
            "session of a role is the same principal); this stack requires another principal to "
            "answer for it (ApproverMustDiffer)",
        )


def _take_token_once_paused(registry: Registry, model: str, version: int) -> dict[str, Any]:
    """Register marks a version PendingApproval a moment before its run pauses and hands over
    its token (after writing the version's card): an answer in that moment waits for the pause,
    up to PAUSE_WAIT_SECONDS, rather than being refused."""
    deadline = time.monotonic() + PAUSE_WAIT_SECONDS
    while True:
        try:
            return _take_token(model, version)
        except ApprovalRefused:
            waiting = registry.get_version(model, version).get("status") == STATUS_PENDING_APPROVAL
            if not waiting or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _take_token(model: str, version: int) -> dict[str, Any]:
    """The held token, removed in the same conditional write: one answer per pause."""
    try:
        taken = _table().delete_item(
            Key=_key(model, version),
            ConditionExpression="attribute_exists(pk)",
            ReturnValues="ALL_OLD",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise ApprovalRefused(
                f"version {version} of {model!r} has no run waiting for an answer"
            ) from error
        raise
    attributes: dict[str, Any] = taken["Attributes"]
    return attributes
