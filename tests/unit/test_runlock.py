"""The run lock: a repeated acquire or release has the effect of one, through its real events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlstack_core.registry_keys import RUNLOCK_SK, model_pk
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import REGION, Stack, load_handler

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parents[1] / "events"
RUN = "arn:aws:states:us-east-1:123456789012:execution:mlstack-training:penguins-1"
OTHER = "arn:aws:states:us-east-1:123456789012:execution:mlstack-training:penguins-2"


def _lock(action: str, execution_arn: str) -> Any:
    event = {"action": action, "model": "penguins", "execution_arn": execution_arn}
    return load_handler("runlock")(event, FakeLambdaContext())


def _holder(aws: Stack) -> str | None:
    item = aws.registry._table.get_item(
        Key={"pk": model_pk("penguins"), "sk": RUNLOCK_SK}, ConsistentRead=True
    ).get("Item")
    return None if item is None else str(item["holder"])


def test_acquire_and_release_twice_have_the_effect_of_once(aws: Stack) -> None:
    assert _lock("acquire", RUN) == {"model": "penguins", "holder": RUN}
    assert _lock("acquire", RUN) == {"model": "penguins", "holder": RUN}  # a retried task
    assert _holder(aws) == RUN
    assert _lock("release", RUN)["released"] is True
    assert _lock("release", RUN)["released"] is False
    assert _holder(aws) is None


def test_a_late_release_never_frees_another_runs_lock(aws: Stack) -> None:
    _lock("acquire", RUN)
    _lock("release", RUN)
    _lock("acquire", OTHER)
    assert _lock("release", RUN)["released"] is False  # the first run's retried release
    assert _holder(aws) == OTHER


@pytest.fixture
def alerts_topic(aws: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="runlock-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="runlock-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    from mlstack_core.settings import forget

    forget()

    def received() -> list[dict[str, Any]]:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        return [json.loads(json.loads(m["Body"])["Message"]) for m in batch.get("Messages", [])]

    return received


def _ended(status: str, execution_arn: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(
        (EVENTS / "eventbridge_sfn_execution_aborted.json").read_text()
    )
    event["detail"].update(status=status, executionArn=execution_arn)
    event["detail"]["input"] = json.dumps({"model": "penguins"})
    return event


@pytest.mark.parametrize("status", ["ABORTED", "TIMED_OUT", "FAILED"])
def test_a_run_that_ended_holding_its_lock_is_released_and_alerted_once(
    aws: Stack, alerts_topic: Any, status: str
) -> None:
    _lock("acquire", RUN)
    handler = load_handler("runlock")
    assert handler(_ended(status, RUN), FakeLambdaContext())["released"] is True
    assert _holder(aws) is None
    (alert,) = alerts_topic()
    expected = {"ABORTED": "RunAborted", "TIMED_OUT": "RunTimedOut", "FAILED": "RunFailed"}
    assert alert["error"] == expected[status]
    # The same event delivered again: nothing more to free, and no second alert for a failure.
    again = handler(_ended(status, RUN), FakeLambdaContext())
    assert again["released"] is False
    assert len(alerts_topic()) == (0 if status == "FAILED" else 1)


def test_a_failed_run_that_cleaned_up_is_not_alerted_again(aws: Stack, alerts_topic: Any) -> None:
    """The run's own NotifyFailure alerted and its ReleaseRunLock freed the lock; the rule's
    event then finds nothing to do, and another run's lock stays."""
    _lock("acquire", OTHER)
    result = load_handler("runlock")(_ended("FAILED", RUN), FakeLambdaContext())
    assert result["released"] is False
    assert _holder(aws) == OTHER
    assert alerts_topic() == []
