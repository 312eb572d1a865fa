"""A run that fails anywhere fails cleanly, and a retried step never acts twice.

Faults are injected into the real state machine in the local cloud (mlstack.localcloud.faults):
each run either recovers through its retries or fails by name; production stays as it was; one
alert is published; the model's lock is released. docs/reliability.md tabulates these tests.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack.localcloud.faults import Fault
from mlstack_runlock.lock_table import RunLockTable
from tests.helpers.local_cloud import (
    AlertInbox,
    execution_events,
    function_environment,
    penguin_rows,
    predict_one,
    to_csv,
)

pytestmark = pytest.mark.integration

TARGET = "species"
SPEC = {"target": TARGET, "candidates": ["logistic_regression", "random_forest"]}


@pytest.fixture
def faults(cloud: LocalCloud) -> Iterator[Any]:
    assert cloud.lambdas is not None
    plan = cloud.lambdas.faults
    plan.clear()
    yield plan
    plan.clear()


def _lock_holder(stack: StackClient, model: str) -> str | None:
    """Who holds the model's run lock, in the stack's lock table."""
    pages = stack.session.client("cloudformation").get_paginator("list_stack_resources")
    (table,) = [
        r["PhysicalResourceId"]
        for page in pages.paginate(StackName=stack.stack_name)
        for r in page["StackResourceSummaries"]
        if r["LogicalResourceId"] == "RunLockTable"
    ]
    return RunLockTable(table, stack.session.resource("dynamodb")).holder(model)


def _failed_alerts(alerts: AlertInbox, model: str, expected: int = 0) -> list[dict[str, Any]]:
    """The failure alerts about ``model``, waiting (a few seconds at most) for ``expected``."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while True:
        found += [
            m
            for m in alerts.drain()
            if m["MessageAttributes"]["event"]["Value"] == "Failed"
            and m["MessageAttributes"]["model"]["Value"] == model
        ]
        if len(found) >= expected or time.monotonic() > deadline:
            time.sleep(0.3)  # and no more arrive
            found += [
                m
                for m in alerts.drain()
                if m["MessageAttributes"]["model"]["Value"] == model
                and m["MessageAttributes"]["event"]["Value"] == "Failed"
            ]
            return found
        time.sleep(0.1)


def _train(stack: StackClient, cloud: LocalCloud, model: str, spec: Any = SPEC) -> dict[str, Any]:
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), spec)
    return cloud.wait_for_execution(stack.find_execution(upload))


def _production(stack: StackClient, model: str) -> tuple[int | None, int]:
    return stack.registry.get_alias(model), len(stack.registry.list_versions(model))


# -------------------------------------------------------------------------- retries, idempotency
def test_a_register_that_ran_but_reported_a_service_exception_promotes_once(
    cloud: LocalCloud, stack: StackClient, faults: Any, alerts: AlertInbox
) -> None:
    """AWS can raise Lambda.ServiceException after the function ran: the retry returns the first
    attempt's result (Powertools Idempotency), so the run succeeds with one version promoted."""
    model = "reported-register"
    alerts.drain()
    faults.inject(Fault("RegisterFunction", "ran_but_reported"))
    result = _train(stack, cloud, model)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    events = execution_events(cloud, result["executionArn"])
    failures = [
        e["lambdaFunctionFailedEventDetails"]["error"]
        for e in events
        if e["type"] == "LambdaFunctionFailed"
    ]
    assert failures == ["Lambda.ServiceException"]
    assert _production(stack, model) == (1, 1)
    moves = [h for h in stack.registry.history(model) if h["kind"] == "alias"]
    assert len(moves) == 1
    assert json.loads(result["output"])["registration"]["version"] == 1
    assert _lock_holder(stack, model) is None
    assert _failed_alerts(alerts, model) == []


def test_a_register_that_timed_out_after_moving_production_promotes_once(
    cloud: LocalCloud, stack: StackClient, faults: Any, alerts: AlertInbox
) -> None:
    """Register stopped at its timeout right after the alias move, before Powertools recorded a
    result: Step Functions retries it, and the retry finds this run's version and move done
    instead of meeting the alias it moved itself (ChampionChanged, "Registered / not
    promoted"). The card, written by WriteCard after the retry, describes the promoted version."""
    model = "timed-out-register"
    alerts.drain()
    after = "mlstack_core.registry:Registry.move_alias"
    faults.inject(Fault("RegisterFunction", "timeout_after", after=after))
    result = _train(stack, cloud, model)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    events = execution_events(cloud, result["executionArn"])
    failures = [
        e["lambdaFunctionFailedEventDetails"]["error"]
        for e in events
        if e["type"] == "LambdaFunctionFailed"
    ]
    assert failures == ["Sandbox.Timedout"]
    assert _production(stack, model) == (1, 1)
    assert stack.registry.get_version(model, 1)["status"] == "Approved"
    history = stack.registry.history(model)
    assert [(h["version"], h["previous"]) for h in history if h["kind"] == "alias"] == [(1, None)]
    assert [h["status"] for h in history if h["kind"] == "status"] == ["Approved"]
    registration = json.loads(result["output"])["registration"]
    assert (registration["version"], registration["promoted"]) == (1, True)
    card = cloud.client("s3").get_object(
        Bucket=cloud.outputs["ModelBucketName"], Key=f"models/{model}/1/card.md"
    )
    assert "Approved" in card["Body"].read().decode()
    assert _lock_holder(stack, model) is None
    assert _failed_alerts(alerts, model) == []


def test_a_card_that_cannot_be_written_never_fails_a_promotion(
    cloud: LocalCloud, stack: StackClient, faults: Any, alerts: AlertInbox
) -> None:
    """WriteCard times out (Register's second invocation): the run still ends Promoted, and the
    card's error is kept apart from the run's."""
    model = "card-timed-out"
    alerts.drain()
    faults.inject(Fault("RegisterFunction", "timeout", invocations=frozenset({2})))
    result = _train(stack, cloud, model)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    output = json.loads(result["output"])
    assert output["card_error"]["Error"] == "Sandbox.Timedout"
    assert "error" not in output
    assert output["registration"]["promoted"] is True
    assert _production(stack, model) == (1, 1)
    assert _lock_holder(stack, model) is None
    assert _failed_alerts(alerts, model) == []


# ------------------------------------------------------------------------------- lock on ending
def test_a_stopped_run_releases_its_lock_and_alerts_once(
    cloud: LocalCloud,
    stack: StackClient,
    alerts: AlertInbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """StopExecution ends a run where no Catch runs: the RunEnded rule releases the lock and
    alerts, so the next upload starts at once instead of waiting out the lease."""
    import mlstack_preprocess.app as preprocess_app

    model = "stopped-run"
    alerts.drain()
    entered, resume = threading.Event(), threading.Event()
    original = preprocess_app.handle

    def held_preprocess(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        resume.wait(timeout=60)
        return original(*args, **kwargs)

    monkeypatch.setattr(preprocess_app, "handle", held_preprocess)
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), SPEC, file_name="a.csv")
    first = stack.find_execution(upload)
    assert entered.wait(timeout=60)
    assert _lock_holder(stack, model) == first

    cloud.client("stepfunctions").stop_execution(executionArn=first, cause="operator stopped it")
    resume.set()
    assert cloud.wait_for_execution(first)["status"] == "ABORTED"
    deadline = time.monotonic() + 30
    while _lock_holder(stack, model) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _lock_holder(stack, model) is None
    (alert,) = _failed_alerts(alerts, model, expected=1)
    assert json.loads(alert["Message"])["error"] == "RunAborted"

    monkeypatch.setattr(preprocess_app, "handle", original)
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), None, file_name="b.csv")
    second = stack.find_execution(upload)
    assert cloud.wait_for_execution(second)["status"] == "SUCCEEDED"
    waited = [
        e
        for e in execution_events(cloud, second)
        if e["type"] == "LambdaFunctionFailed"
        and e["lambdaFunctionFailedEventDetails"]["error"] == "ModelBusy"
    ]
    assert waited == [], "the second run started at once"
    assert _production(stack, model) == (1, 1)


def test_a_spec_with_a_300_kb_description_fails_by_name_and_unlocks(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    """User text can never push a state's payload past Step Functions' 256 KB: the spec's texts
    are bounded, so the run fails by name in Preprocess, alerts once and releases the lock."""
    model = "huge-description"
    assert _train(stack, cloud, model)["status"] == "SUCCEEDED"
    alerts.drain()
    result = _train(stack, cloud, model, {**SPEC, "description": "x" * 300_000})

    assert result["status"] == "FAILED"
    assert result["error"] == "SpecError"
    assert "description" in json.loads(result["cause"])["errorMessage"]
    assert _production(stack, model) == (1, 1)
    assert _lock_holder(stack, model) is None
    assert len(_failed_alerts(alerts, model, expected=1)) == 1


# ------------------------------------------------------------------------------ faults, by step
@dataclass(frozen=True)
class FaultCase:
    id: str
    fault: Fault
    # None: the run recovers (SUCCEEDED, promoted or rejected); else the error it fails with.
    fails_with: str | None
    note: str = ""


def _cases() -> list[FaultCase]:
    dynamo = {"aws_service": "dynamodb", "aws_error": "ProvisionedThroughputExceededException"}
    s3 = {"aws_service": "s3", "aws_error": "SlowDown"}
    steps: dict[str, tuple[str, dict[str, str]]] = {
        "lock": ("RunLockFunction", dynamo),
        "preprocess": ("PreprocessFunction", s3),
        "train": ("TrainFunction", s3),
        "evaluate": ("EvaluateFunction", s3),
        "register": ("RegisterFunction", dynamo),
    }
    # What the state machine does with each fault at each step (docs/reliability.md).
    outcome: dict[tuple[str, str], str | None] = {
        **{(step, "throttle"): None for step in steps},  # Lambda.* errors are retried
        **{(step, "aws_error"): None for step in steps},  # the SDK retries throttling
        ("lock", "exception"): "InjectedFault",
        ("preprocess", "exception"): "InjectedFault",
        ("train", "exception"): None,  # one failed candidate of two: the gate uses the other
        ("evaluate", "exception"): "InjectedFault",
        ("register", "exception"): "InjectedFault",
        ("lock", "timeout"): None,  # idempotent: retried on Sandbox.Timedout
        ("preprocess", "timeout"): "Sandbox.Timedout",
        ("train", "timeout"): None,
        ("evaluate", "timeout"): "Sandbox.Timedout",
        ("register", "timeout"): None,  # idempotent: retried on Sandbox.Timedout
    }
    cases = []
    for (step, kind), fails_with in outcome.items():
        function, aws = steps[step]
        fault = Fault(function, kind, **aws) if kind == "aws_error" else Fault(function, kind)  # type: ignore[arg-type]
        cases.append(FaultCase(f"{step}-{kind}", fault, fails_with))
    return cases


@pytest.fixture(scope="module")
def faulted_model(cloud: LocalCloud, stack: StackClient) -> str:
    """A model with a production version, which every fault below must leave alone when its
    run fails."""
    model = "faulted"
    result = _train(stack, cloud, model)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert stack.registry.get_alias(model) == 1
    return model


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.id)
def test_a_fault_at_any_step_recovers_or_fails_cleanly(
    case: FaultCase,
    cloud: LocalCloud,
    stack: StackClient,
    alerts: AlertInbox,
    faults: Any,
    faulted_model: str,
) -> None:
    model = faulted_model
    alerts.drain()
    before = _production(stack, model)
    faults.inject(case.fault)
    result = _train(stack, cloud, model, None)
    answered = faults.aws_errors_answered
    faults.clear()

    events = execution_events(cloud, result["executionArn"])
    injected = [
        e["lambdaFunctionFailedEventDetails"]["error"]
        for e in events
        if e["type"] == "LambdaFunctionFailed"
    ]
    if case.fault.kind == "aws_error":
        assert answered == 1, "the SDK met the error (and retried)"
    else:
        assert injected, "the fault reached the state machine"
    if case.fails_with is None:
        assert result["status"] == "SUCCEEDED", result.get("cause")
        assert json.loads(result["output"])["registration"]["status"] in {"Approved", "Rejected"}
        assert _failed_alerts(alerts, model) == []
    else:
        assert result["status"] == "FAILED"
        assert result["error"] == case.fails_with, result.get("cause")
        assert _production(stack, model) == before
        assert len(_failed_alerts(alerts, model, expected=1)) == 1
    assert _lock_holder(stack, model) is None


def test_a_trigger_that_fails_is_delivered_again_and_starts_one_run(
    cloud: LocalCloud, stack: StackClient, faults: Any
) -> None:
    """EventBridge delivers an upload's event again when the trigger fails (a crash, throttling):
    one run starts, not none and not two."""
    model = "trigger-retried"
    s3, bucket = cloud.client("s3"), cloud.outputs["DataBucketName"]
    s3.put_object(Bucket=bucket, Key=f"datasets/{model}/spec.json", Body=json.dumps(SPEC).encode())
    first, second = Fault("TriggerFunction", "exception"), Fault("TriggerFunction", "throttle")
    faults.inject(first, Fault(second.function, second.kind, frozenset({2})))
    s3.put_object(Bucket=bucket, Key=f"datasets/{model}/data.csv", Body=to_csv(penguin_rows()))
    faults.clear()
    runs = [e for e in cloud.executions() if e["name"].startswith(f"{model}-")]
    assert len(runs) == 1
    assert cloud.wait_for_execution(runs[0]["executionArn"])["status"] == "SUCCEEDED"


def test_a_trigger_that_always_fails_leaves_the_event_in_its_dead_letter_queue(
    cloud: LocalCloud, stack: StackClient, faults: Any
) -> None:
    model = "trigger-dead"
    sqs = cloud.client("sqs")
    assert cloud.stack is not None
    queue = cloud.stack.physical_ids["TriggerDeadLetterQueue"]
    queue_url = sqs.get_queue_url(QueueName=queue.rsplit("/", 1)[-1])["QueueUrl"]
    faults.inject(Fault("TriggerFunction", "exception", frozenset(range(1, 10))))
    key = f"datasets/{model}/data.csv"
    cloud.client("s3").put_object(
        Bucket=cloud.outputs["DataBucketName"], Key=key, Body=to_csv(penguin_rows())
    )
    faults.clear()
    assert not [e for e in cloud.executions() if e["name"].startswith(f"{model}-")]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    keys = [json.loads(m["Body"])["detail"]["object"]["key"] for m in messages]
    assert key in keys


# --------------------------------------------------------------------------- serving in outages
EVERY_CALL = frozenset(range(1, 100_000))


def _outage() -> Fault:
    """The registry (DynamoDB) and S3 failing every call of the prediction function."""
    return Fault(
        "PredictFunction",
        "aws_error",
        EVERY_CALL,
        aws_service="dynamodb,s3",
        aws_error="InternalServerError",
        aws_failures=10**9,
    )


@pytest.fixture
def outage_model(cloud: LocalCloud, stack: StackClient) -> Iterator[str]:
    """A served model, with a short alias TTL and no SDK retries, so an outage shows at once."""
    model = "outage"
    if stack.registry.get_alias(model) is None:
        assert _train(stack, cloud, model)["status"] == "SUCCEEDED"
    from mlstack_predict.predictor import reset_predictor

    with function_environment(
        cloud, "PredictFunction", ALIAS_TTL_SECONDS="0.5", AWS_MAX_ATTEMPTS="1"
    ):
        reset_predictor()  # a new container, with these settings
        yield model
    reset_predictor()


def test_a_loaded_model_keeps_answering_through_a_registry_and_s3_outage(
    cloud: LocalCloud, faults: Any, outage_model: str
) -> None:
    status, _, body = predict_one(cloud, outage_model)
    assert (status, body.get("version")) == (200, 1), body
    faults.inject(_outage())
    time.sleep(0.6)  # the aliases are due for a refresh, which fails
    answers = [predict_one(cloud, outage_model) for _ in range(5)]
    assert faults.aws_errors_answered > 0, "the outage was met"
    assert [(s, b["version"]) for s, _, b in answers] == [(200, 1)] * 5


def test_a_cold_container_in_an_outage_answers_503_with_a_retry_hint_then_recovers(
    cloud: LocalCloud, faults: Any, outage_model: str
) -> None:
    faults.inject(_outage())
    status, headers, body = predict_one(cloud, outage_model)
    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    assert "registry cannot be reached" in body["error"]
    assert "InternalServerError" not in json.dumps(body)  # no AWS error text to clients

    faults.clear()  # the outage ends
    deadline = time.monotonic() + 10
    while (answer := predict_one(cloud, outage_model))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (answer[0], answer[2]["version"]) == (200, 1)


# --------------------------------------------------------------------- serving while models move
def _load_benchmark() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks/serving_under_moves.py"
    spec = importlib.util.spec_from_file_location("serving_under_moves", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serving_under_moves"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_serving_keeps_answering_while_models_move(cloud: LocalCloud, stack: StackClient) -> None:
    """8 clients, single rows and batches, while production is promoted and rolled back and a
    canary and a shadow come and go: no 5xx, no request without an answer, and every answer
    from a routing that held within ALIAS_TTL_SECONDS of it (benchmarks/serving_under_moves.py
    runs the same for minutes)."""
    bench = _load_benchmark()
    model = "moving"
    instances = bench.prepare(cloud, stack, model)
    with cloud.function_environment("PredictFunction", ALIAS_TTL_SECONDS=str(bench.TTL_SECONDS)):
        report = bench.run_load(
            cloud.api_url,
            model,
            instances,
            bench.alias_mover(stack, model, [1, 2]),
            seconds=12,
            clients=8,
            move_every=1.5,
        )
    summary = report.summary()
    assert summary["moves"] >= 6, summary
    assert summary["requests"] > 200, summary
    assert (summary["server_errors"], summary["other_non_200"], summary["dropped"]) == (0, 0, 0)
    assert report.violations == []
    assert len({a.version for a in report.answers}) >= 2, "the answers followed the moves"

    # The check itself: an answer from a version no routing of its window had is caught.
    stale = bench.Answer(report.moves[-1].at + 5, report.moves[-1].at + 5.1, "single", 200, 99)
    report.answers.append(stale)
    assert len(bench.check(report, bench.TTL_SECONDS)) == 1


# ----------------------------------------------------------------- two uploads, two models, one run
def test_uploads_for_different_models_run_side_by_side(
    cloud: LocalCloud, stack: StackClient
) -> None:
    """Each model has its own lock: a run of one never waits for a run of another."""
    data = to_csv(penguin_rows())
    first = stack.find_execution(stack.upload_dataset("side-a", data, SPEC))
    second = stack.find_execution(stack.upload_dataset("side-b", data, SPEC))
    histories = []
    for execution in (first, second):
        assert cloud.wait_for_execution(execution)["status"] == "SUCCEEDED"
        histories.append(execution_events(cloud, execution))
    for events in histories:
        busy = [
            e
            for e in events
            if e["type"] == "LambdaFunctionFailed"
            and e["lambdaFunctionFailedEventDetails"]["error"] == "ModelBusy"
        ]
        assert busy == []
    a_end, b_start = histories[0][-1]["timestamp"], histories[1][0]["timestamp"]
    assert b_start < a_end, "the second run started before the first ended"
    assert stack.registry.get_alias("side-a") == 1
    assert stack.registry.get_alias("side-b") == 1


@pytest.mark.parametrize("sns_failures", [1, 50], ids=["sns-blip", "sns-down"])
def test_a_failing_alert_never_keeps_the_model_locked(
    cloud: LocalCloud,
    stack: StackClient,
    alerts: AlertInbox,
    faults: Any,
    faulted_model: str,
    sns_failures: int,
) -> None:
    """NotifyFailure retries a failed publish; when SNS stays down the run still releases its
    lock and ends with its own error (the alert is lost: docs/reliability.md)."""
    model = faulted_model
    alerts.drain()
    before = _production(stack, model)
    faults.inject(Fault("PreprocessFunction", "exception"))
    faults.sns_failures = sns_failures
    result = _train(stack, cloud, model, None)
    faults.clear()
    assert result["status"] == "FAILED"
    assert result["error"] == "InjectedFault"
    assert _production(stack, model) == before
    assert _lock_holder(stack, model) is None
    assert len(_failed_alerts(alerts, model, expected=1)) == (1 if sns_failures == 1 else 0)
