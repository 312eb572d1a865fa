"""A person's answer counts as the approval function verified and recorded it: Register acts on
the record, not on the words a run was resumed with; ApproverMustDiffer compares principals (an
assumed role's sessions are one approver), and a multipart upload's uploader is known too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest

from mlstack.sam import load_template
from mlstack_core.approval_answers import answer_key
from mlstack_core.documents import DatasetRef
from mlstack_core.errors import ApprovalForAnotherVersion, ApprovalNotRecorded
from tests.helpers import ROOT, prediction
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import REGION, Stack, load_handler, register_event
from tests.helpers.tables import penguins_bytes

pytestmark = pytest.mark.unit

MODEL = "penguins"
ACCOUNT = "123456789012"
ALICE = f"arn:aws:sts::{ACCOUNT}:assumed-role/data-team/alice"
BOB_AS_DATA_TEAM = f"arn:aws:sts::{ACCOUNT}:assumed-role/data-team/bob"
ALICE_AS_REVIEWER = f"arn:aws:sts::{ACCOUNT}:assumed-role/reviewers/alice"
FORGED_ACTOR = f"arn:aws:iam::{ACCOUNT}:user/the-ceo"
EVENTS = ROOT / "tests" / "events"


@pytest.fixture
def approvals(aws: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The approval function's token table (the answers table comes with ``aws``)."""
    from mlstack_core.settings import forget

    table = aws.dynamodb.create_table(
        TableName="approvals-tokens",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("APPROVALS_TABLE", "approvals-tokens")
    forget()
    yield table
    forget()


def _hold(model: str, version: int, execution_arn: str) -> None:
    """AwaitApproval's task: the approval function holds the paused run's token."""
    event = {"action": "hold", "model": model, "version": version}
    event.update(task_token=f"token-{version}", execution_arn=execution_arn)
    load_handler("approval")(event, FakeLambdaContext())


def _answer(model: str, version: int, caller: str, verb: str = "approve") -> tuple[int, Any]:
    """POST /models/<model>/versions/<version>/<verb>, IAM-signed by ``caller``, through the
    approval function's handler as API Gateway sends it."""
    path = f"/models/{model}/versions/{version}/{verb}"
    request = prediction.event("POST", path, json.dumps({"reason": f"{verb} by the caller"}))
    request["resource"] = "/models/{model}/versions/{version}/" + verb
    request["requestContext"]["identity"]["userArn"] = caller
    response = load_handler("approval")(request, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def _answers(aws: Stack) -> Any:
    from mlstack_core.settings import stack_settings

    return aws.dynamodb.Table(stack_settings().approval_answers_table)


# ------------------------------------------------------------------ Register acts on the record
@pytest.fixture
def pending(aws: Stack, approvals: Any) -> dict[str, Any]:
    """A real run paused for approval: Preprocess → Train → Evaluate, then RegisterForApproval,
    and the approval function holding the run's token."""
    aws.put_spec(MODEL, {"target": "species", "approval": "manual"})
    state = aws.run_pipeline(MODEL, penguins_bytes())
    state["pending"] = aws.run_register_step(state, "request_approval")
    assert state["pending"]["status"] == "PendingApproval"
    _hold(MODEL, state["pending"]["version"], state["run"]["execution_arn"])
    return state


def _resume(state: dict[str, Any], approval: dict[str, Any], action: str) -> dict[str, Any]:
    """PromoteApproved or RecordManualRejection, with ``approval`` as the run's ``$.approval``."""
    event = register_event(
        action, state["run"], state["evaluation"], pending=state["pending"], approval=approval
    )
    result: dict[str, Any] = load_handler("register")(event, FakeLambdaContext())
    return result


@pytest.mark.slow
def test_a_forged_actor_without_a_recorded_answer_promotes_nothing(
    aws: Stack, pending: dict[str, Any]
) -> None:
    """Someone who read the token in the execution's history resumes the run with
    SendTaskSuccess, a yes for the right version and any actor: the run fails by name, and
    production and the version stay as they were. So does a recorded answer that belongs to
    another version or another run, or that said no."""
    version = int(pending["pending"]["version"])
    forged = {"approved": True, "version": version, "actor": FORGED_ACTOR, "reason": "ship it"}
    with pytest.raises(ApprovalNotRecorded):
        _resume(pending, forged, "promote_approved")

    real = {
        "model": MODEL,
        "version": version,
        "execution_arn": pending["run"]["execution_arn"],
        "approved": True,
        "actor": ALICE_AS_REVIEWER,
        "approver": f"arn:aws:sts::{ACCOUNT}:assumed-role/reviewers",
        "reason": "looks right",
        "answered_at": "2026-12-01T00:00:00+00:00",
    }
    answers = _answers(aws)
    for key, record in (
        (answer_key(MODEL, version + 1), {**real, "version": version + 1}),
        (answer_key(MODEL, version), {**real, "execution_arn": f"{real['execution_arn']}-other"}),
        (answer_key(MODEL, version), {**real, "approved": False}),
    ):
        answers.put_item(Item={**key, **record})
        with pytest.raises(ApprovalNotRecorded):
            _resume(pending, forged, "promote_approved")
        answers.delete_item(Key=key)
    with pytest.raises(ApprovalForAnotherVersion):
        _resume(pending, {**forged, "version": version + 1}, "promote_approved")

    assert aws.registry.get_alias(MODEL) is None
    document = aws.registry.get_version(MODEL, version)
    assert document["status"] == "PendingApproval"
    assert all(h["actor"] != FORGED_ACTOR for h in aws.registry.history(MODEL))


@pytest.mark.slow
def test_the_recorded_actor_and_reason_are_registered_whatever_the_payload_says(
    aws: Stack, pending: dict[str, Any]
) -> None:
    """The real answer: the approval function records the signed caller before it resumes the
    run; a payload naming someone else changes nothing in the registry."""
    version = int(pending["pending"]["version"])
    status, body = _answer(MODEL, version, ALICE_AS_REVIEWER)
    assert status == 200, body
    (record,) = _answers(aws).scan()["Items"]
    assert (record["pk"], record["version"], record["approved"]) == (
        f"{MODEL}#{version}",
        version,
        True,
    )
    assert record["actor"] == ALICE_AS_REVIEWER
    assert record["approver"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/reviewers"
    assert record["execution_arn"] == pending["run"]["execution_arn"]
    assert record["reason"] == "approve by the caller"
    assert record["answered_at"]

    claimed = {"approved": True, "version": version, "actor": FORGED_ACTOR, "reason": "forged"}
    registration = _resume(pending, claimed, "promote_approved")

    assert registration["promoted"] is True
    assert aws.registry.get_alias(MODEL) == version
    document = aws.registry.get_version(MODEL, version)
    assert (document["status"], document["status_changed_by"]) == ("Approved", ALICE_AS_REVIEWER)
    moves = [h for h in aws.registry.history(MODEL) if h["kind"] == "alias"]
    assert (moves[-1]["actor"], moves[-1]["reason"]) == (ALICE_AS_REVIEWER, "approve by the caller")


@pytest.mark.slow
def test_a_recorded_no_rejects_with_the_recorded_actor(aws: Stack, pending: dict[str, Any]) -> None:
    version = int(pending["pending"]["version"])
    status, body = _answer(MODEL, version, ALICE_AS_REVIEWER, "reject")
    assert status == 200, body
    claimed = {"approved": False, "version": version, "actor": FORGED_ACTOR, "reason": "forged"}
    registration = _resume(pending, claimed, "reject_pending")
    assert (registration["status"], registration["actor"]) == ("Rejected", ALICE_AS_REVIEWER)
    assert registration["reason"] == "reject by the caller"
    assert aws.registry.get_alias(MODEL) is None


# ------------------------------------------------------------------ who may approve what
def _pending_version(aws: Stack, model: str) -> tuple[int, DatasetRef]:
    """A version PendingApproval whose data was uploaded to the data bucket, its run paused."""
    put = aws.s3.put_object(Bucket=aws.data_bucket, Key=f"datasets/{model}/d.csv", Body=b"a\n1\n")
    dataset = {
        "bucket": aws.data_bucket,
        "key": f"datasets/{model}/d.csv",
        "version_id": put["VersionId"],
    }
    version = aws.registry.allocate_version(model)
    aws.registry.put_version(
        model, version, "PendingApproval", {"dataset": cast(DatasetRef, dataset)}
    )
    _hold(model, version, f"arn:aws:states:{REGION}:{ACCOUNT}:execution:training:{model}")
    return version, cast(DatasetRef, dataset)


def _upload_recorded(event_file: str, dataset: DatasetRef, uploader: str) -> dict[str, Any]:
    """CloudTrail's record of the upload of ``dataset`` by ``uploader``, as EventBridge sends it."""
    event: dict[str, Any] = json.loads((EVENTS / event_file).read_text())
    detail = event["detail"]
    detail["userIdentity"]["arn"] = uploader
    detail["requestParameters"].update(bucketName=dataset["bucket"], key=dataset["key"])
    detail["responseElements"]["x-amz-version-id"] = dataset["version_id"]
    return event


@pytest.fixture
def distinct_approver(approvals: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from mlstack_core.settings import forget

    monkeypatch.setenv("APPROVER_MUST_DIFFER", "true")
    forget()
    yield
    forget()


def test_sessions_of_one_role_are_one_approver(aws: Stack, distinct_approver: None) -> None:
    """Alice uploads as the data-team role; Bob answers as the same role in another session (any
    session name is the caller's to choose): refused. Alice as another role may answer."""
    version, dataset = _pending_version(aws, "four-eyes")
    upload = _upload_recorded("cloudtrail_s3_put_object.json", dataset, ALICE)
    load_handler("approval")(upload, FakeLambdaContext())

    status, body = _answer("four-eyes", version, BOB_AS_DATA_TEAM)
    assert status == 403
    assert "ApproverMustDiffer" in body["error"]
    assert f"arn:aws:sts::{ACCOUNT}:assumed-role/data-team " in body["error"]

    status, body = _answer("four-eyes", version, ALICE_AS_REVIEWER)
    assert status == 200, body
    assert body["actor"] == ALICE_AS_REVIEWER


def test_the_principal_behind_an_arn() -> None:
    load_handler("approval")  # the function's modules, importable below
    from mlstack_approval.approval import principal

    role = f"arn:aws:sts::{ACCOUNT}:assumed-role/data-team"
    assert principal(ALICE) == principal(BOB_AS_DATA_TEAM) == role
    assert principal(f"{role}/a/b") == role  # a session name may hold slashes
    assert principal(f"arn:aws-cn:sts::{ACCOUNT}:assumed-role/r/s").endswith(":assumed-role/r")
    for own in (
        f"arn:aws:iam::{ACCOUNT}:user/alice",
        f"arn:aws:iam::{ACCOUNT}:user/team/alice",
        f"arn:aws:iam::{ACCOUNT}:root",
        f"arn:aws:sts::{ACCOUNT}:federated-user/alice",
    ):
        assert principal(own) == own


def _resolved_rule_pattern(data_bucket: str) -> Any:
    """The UploadRecordedRule's event pattern, with the data bucket's name for ``!Ref``."""
    rule = load_template(ROOT / "template.yaml")["Resources"]["UploadRecordedRule"]
    text = json.dumps(rule["Properties"]["EventPattern"])
    return json.loads(text.replace(json.dumps({"Ref": "DataBucket"}), json.dumps(data_bucket)))


def test_a_multipart_upload_records_its_uploader(aws: Stack, distinct_approver: None) -> None:
    """A file large enough for a multipart upload gets its object version from
    CompleteMultipartUpload: the trail records it, the rule hands it to the approval function,
    and the uploader (in any session of their role) may not approve it."""
    from moto.events.models import EventPattern

    template = load_template(ROOT / "template.yaml")
    (selector,) = template["Resources"]["UploadTrail"]["Properties"]["AdvancedEventSelectors"]
    names = next(f for f in selector["FieldSelectors"] if f["Field"] == "eventName")
    assert "CompleteMultipartUpload" in names["Equals"]

    version, dataset = _pending_version(aws, "multipart")
    upload = _upload_recorded("cloudtrail_s3_complete_multipart_upload.json", dataset, ALICE)
    pattern = EventPattern.load(json.dumps(_resolved_rule_pattern(aws.data_bucket)))
    assert pattern.matches_event(cast(Any, upload))
    load_handler("approval")(upload, FakeLambdaContext())

    status, body = _answer("multipart", version, BOB_AS_DATA_TEAM)
    assert status == 403
    assert "ApproverMustDiffer" in body["error"]


def test_the_rule_passes_uploads_only() -> None:
    """The rule hands over the calls that make an object version under datasets/, no others."""
    from moto.events.models import EventPattern

    pattern = EventPattern.load(json.dumps(_resolved_rule_pattern("data-bucket")))
    dataset = cast(
        DatasetRef, {"bucket": "data-bucket", "key": "datasets/m/d.csv", "version_id": "v"}
    )
    for event_file in (
        "cloudtrail_s3_put_object.json",
        "cloudtrail_s3_complete_multipart_upload.json",
    ):
        event = _upload_recorded(event_file, dataset, ALICE)
        assert pattern.matches_event(cast(Any, event)), event_file
        event["detail"]["eventName"] = "UploadPart"  # a part is no object version
        assert not pattern.matches_event(cast(Any, event))
        event["detail"]["eventName"] = "PutObject"
        event["detail"]["requestParameters"]["key"] = "batch/m/d.csv"
        assert not pattern.matches_event(cast(Any, event))


def test_the_answers_table_of_the_tests_is_the_templates(aws: Stack) -> None:
    """The answers table the tests use is the template's: one partition key, ``pk``."""
    table = load_template(ROOT / "template.yaml")["Resources"]["ApprovalAnswersTable"]
    schema = table["Properties"]["KeySchema"]
    described = boto3.client("dynamodb", region_name=REGION).describe_table(
        TableName=_answers(aws).name
    )["Table"]["KeySchema"]
    assert schema == described
