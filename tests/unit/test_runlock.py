"""The run lock: a repeated acquire or release has the effect of one, a long legitimate run
keeps its lock, and only a lease that ran out is warned of, through its real events."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlstack_core.errors import ModelBusy, RunLockLost
from mlstack_runlock.lock_table import KEY
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import REGION, Stack, load_handler

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
RUN = "arn:aws:states:us-east-1:123456789012:execution:mlstack-training:penguins-1"
OTHER = "arn:aws:states:us-east-1:123456789012:execution:mlstack-training:penguins-2"


def _lock(action: str, execution_arn: str) -> Any:
    event = {"action": action, "model": "penguins", "execution_arn": execution_arn}
    return load_handler("runlock")(event, FakeLambdaContext())


def _holder(aws: Stack) -> str | None:
    table = aws.dynamodb.Table(os.environ["RUN_LOCK_TABLE"])
    item = table.get_item(Key={KEY: "penguins"}, ConsistentRead=True).get("Item")
    return None if item is None else str(item["holder"])


def _renew(execution_arn: str, candidate_count: int, max_concurrency: int) -> Any:
    """RenewRunLock's input, as its Parameters build it from Preprocess's output."""
    event = {
        "action": "renew",
        "model": "penguins",
        "execution_arn": execution_arn,
        "candidate_count": candidate_count,
        "max_concurrency": max_concurrency,
    }
    return load_handler("runlock")(event, FakeLambdaContext())


class Clock:
    """time.time for the lock table, moved on by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("mlstack_runlock.lock_table.time.time", clock)
    return clock


def test_a_run_longer_than_the_old_lease_keeps_its_lock(aws: Stack, clock: Clock) -> None:
    """40 candidates at concurrency 4: ten rounds of up to 15 minutes, longer than the 7,500 s
    lease every run used to get. Renewed for its grid, the run keeps its lock throughout: a
    second upload queues instead of training beside it."""
    _lock("acquire", RUN)
    clock.now += 600  # Preprocess
    renewed = _renew(RUN, candidate_count=40, max_concurrency=4)
    assert renewed["lease_seconds"] >= 10 * 900
    clock.now += 10 * 900 + 600  # the Map's ten rounds, then Evaluate: 9,600 s > 7,500 s
    with pytest.raises(ModelBusy):
        _lock("acquire", OTHER)
    assert _holder(aws) == RUN
    assert _lock("release", RUN)["released"] is True


def test_a_lock_whose_release_was_lost_still_expires(aws: Stack, clock: Clock) -> None:
    """The renewed lease is finite: once the grid's run would have ended, another run takes it
    over, and the first run's late renewal or release changes nothing."""
    _lock("acquire", RUN)
    lease = _renew(RUN, candidate_count=40, max_concurrency=4)["lease_seconds"]
    clock.now += lease + 1
    assert _lock("acquire", OTHER) == {"model": "penguins", "holder": OTHER}
    with pytest.raises(RunLockLost):
        _renew(RUN, candidate_count=40, max_concurrency=4)
    assert _lock("release", RUN)["released"] is False
    assert _holder(aws) == OTHER


def test_a_lock_taken_before_the_grid_is_known_expires_soon(aws: Stack, clock: Clock) -> None:
    """A run that lost its release before RenewRunLock holds the model only as long as
    Preprocess can take, not for a whole grid."""
    _lock("acquire", RUN)
    clock.now += 30 * 60
    assert _lock("acquire", OTHER) == {"model": "penguins", "holder": OTHER}


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


@pytest.fixture
def pipeline_log(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """The records the pipeline functions' Powertools logger writes during the test (its handler
    holds the stdout it was created with, so capsys cannot see it)."""
    from mlstack_core.observability.pipeline import logger

    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line]


def _release_as_the_state_machine_sends_it(state: str, execution_arn: str) -> Any:
    """The release task's input as training.asl.json's ``state`` builds it for a penguins run."""
    definition = json.loads((ROOT / "statemachine/training.asl.json").read_text())
    paths = {"$.model": "penguins", "$$.Execution.Id": execution_arn}
    parameters = definition["States"][state]["Parameters"]
    event = {
        name.removesuffix(".$"): paths[value] if name.endswith(".$") else value
        for name, value in parameters.items()
    }
    return load_handler("runlock")(event, FakeLambdaContext())


def test_the_manual_approval_path_releases_without_a_warning(
    aws: Stack, pipeline_log: Callable[[], list[dict[str, Any]]]
) -> None:
    """A version that waits for a person frees the lock while it waits, and the run's end releases
    again: finding it freed already, or held by a later upload, is the normal course."""
    _lock("acquire", RUN)
    assert _release_as_the_state_machine_sends_it("ReleaseRunLockWhileWaiting", RUN)["released"]
    _lock("acquire", OTHER)  # a later upload trains while the person decides
    assert not _release_as_the_state_machine_sends_it("ReleaseRunLock", RUN)["released"]
    _lock("release", OTHER)
    assert not _release_as_the_state_machine_sends_it("ReleaseRunLock", RUN)["released"]

    assert [r["message"] for r in pipeline_log() if r["level"] == "WARNING"] == []
    assert _holder(aws) is None


def test_a_lease_that_ran_out_under_a_run_is_warned_of_at_takeover(
    aws: Stack, clock: Clock, pipeline_log: Callable[[], list[dict[str, Any]]]
) -> None:
    _lock("acquire", RUN)
    clock.now += 30 * 60  # past the lease taken before the grid is known; RUN never released
    _lock("acquire", OTHER)

    (warning,) = [r for r in pipeline_log() if r["level"] == "WARNING"]
    assert warning["message"] == "Run lock taken over from a run whose lease ran out"
    assert warning["previous_holder"] == RUN


def test_a_run_on_fargate_keeps_its_lock_through_its_preprocess_task_and_its_tasks(
    aws: Stack, clock: Clock
) -> None:
    """RenewRunLockForPreprocessTask leases the preprocess task's limit; RenewRunLock then
    leases each round of the Map at a training task's limit, not the Train function's."""
    _lock("acquire", RUN)
    event = {"action": "renew", "model": "penguins", "execution_arn": RUN, "lease_seconds": 14520}
    assert load_handler("runlock")(event, FakeLambdaContext())["lease_seconds"] == 14520
    clock.now += 14000  # a long preprocess task, far past the lease taken at the start
    with pytest.raises(ModelBusy):
        _lock("acquire", OTHER)
    grid = {
        "action": "renew",
        "model": "penguins",
        "execution_arn": RUN,
        "candidate_count": 8,
        "max_concurrency": 4,
        "candidate_seconds": 14520,
    }
    renewed = load_handler("runlock")(grid, FakeLambdaContext())["lease_seconds"]
    assert renewed >= 2 * 14520
    clock.now += 2 * 14000
    with pytest.raises(ModelBusy):
        _lock("acquire", OTHER)
    # On the Lambda path MeasureDataset gives no task limit: the function's own is used.
    lambda_path = {**grid, "candidate_seconds": None}
    assert load_handler("runlock")(lambda_path, FakeLambdaContext())["lease_seconds"] < renewed
