"""The Monitor: spec.drift decides retrain or alert only; retraining is started once per production
version and dataset version; too few sampled rows decide nothing."""

from __future__ import annotations

import json
from typing import Any

import boto3
import numpy as np
import pytest

from mlstack_core.drift import DriftRecorder
from mlstack_core.settings import stack_settings
from mlstack_core.tabular import feature_matrices, read_split
from tests.conftest import (
    REGION,
    FakeLambdaContext,
    Stack,
    load_handler,
    penguins_bytes,
    register_event,
)

pytestmark = pytest.mark.unit

MODEL = "penguins"
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture
def deployed(aws: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="training", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    monkeypatch.setenv("STATE_MACHINE_ARN", machine)
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    stack_settings.cache_clear()
    return {"sfn": sfn, "machine": machine, "sqs": sqs, "queue": queue}


def _promote(aws: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    aws.put_spec(MODEL, spec)
    state = aws.run_pipeline(MODEL, penguins_bytes())
    event = register_event("promote", state["run"], state["evaluation"])
    load_handler("register")(event, FakeLambdaContext())
    return state


def _serve_shifted(aws: Stack, state: dict[str, Any], copies: int = 3) -> None:
    document = aws.registry.get_version(MODEL, 1)
    key = state["run"]["splits"]["holdout_key"]
    holdout = read_split(aws.s3.get_object(Bucket=aws.model_bucket, Key=key)["Body"].read())
    numeric, categorical = feature_matrices(holdout, document["schema"])
    recorder = DriftRecorder(flush_seconds=0)
    for _ in range(copies):
        feeds = {"numeric": numeric * np.float32(1.7), "categorical": categorical}
        labels = {"label": np.asarray(["Gentoo"] * numeric.shape[0], dtype=object)}
        for summary_key, body in recorder.record(MODEL, 1, document, feeds, labels):
            aws.s3.put_object(Bucket=aws.model_bucket, Key=summary_key, Body=body)


def _monitor() -> dict[str, Any]:
    result: dict[str, Any] = load_handler("monitor")({"id": "tick"}, FakeLambdaContext())
    (ours,) = result["models"]
    return ours


def _alerts(deployed: dict[str, Any]) -> list[dict[str, Any]]:
    messages = (
        deployed["sqs"]
        .receive_message(QueueUrl=deployed["queue"], MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def test_drift_retrains_once_per_production_and_dataset_version(
    aws: Stack, deployed: dict[str, Any]
) -> None:
    state = _promote(aws, {"target": "species"})
    _serve_shifted(aws, state)

    first = _monitor()
    assert first["status"] == "drift"
    assert first["action"] == "retrain"
    assert first["retraining"]["started"] is True
    executions = deployed["sfn"].list_executions(stateMachineArn=deployed["machine"])
    (execution,) = executions["executions"]
    described = deployed["sfn"].describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {
        "model": MODEL,
        "dataset": {
            "bucket": aws.data_bucket,
            "key": state["dataset"]["key"],
            "version_id": state["dataset"]["version_id"],
            "etag": state["dataset"]["etag"],
            "size": state["dataset"]["size"],
        },
    }
    assert execution["name"].startswith(f"{MODEL}-drift-v1-")

    second = _monitor()  # the next tick, still drifted: no second run on the same data
    assert second["status"] == "drift"
    assert second["retraining"]["started"] is False
    assert "already retrained" in second["retraining"]["reason"]
    executions = deployed["sfn"].list_executions(stateMachineArn=deployed["machine"])
    assert len(executions["executions"]) == 1
    subjects = [a["Subject"] for a in _alerts(deployed)]
    assert subjects == ["mlstack: data drift", "mlstack: data drift"]

    report = aws.read_json(f"monitoring/{MODEL}/latest.json")
    assert report["status"] == "drift"
    assert report["features"][0]["psi"] == report["score"]


def test_alert_only_spec_does_not_retrain(aws: Stack, deployed: dict[str, Any]) -> None:
    state = _promote(aws, {"target": "species", "drift": {"action": "alert", "threshold": 0.2}})
    _serve_shifted(aws, state)

    result = _monitor()
    assert result["status"] == "drift"
    assert result["threshold"] == 0.2
    assert "retraining" not in result
    assert deployed["sfn"].list_executions(stateMachineArn=deployed["machine"])["executions"] == []
    (alert,) = _alerts(deployed)
    message = json.loads(alert["Message"])
    assert message["action"] == "alert"
    assert alert["MessageAttributes"]["event"]["Value"] == "Drift"


def test_too_few_rows_decide_nothing(aws: Stack, deployed: dict[str, Any]) -> None:
    state = _promote(aws, {"target": "species", "drift": {"min_rows": 1000}})
    _serve_shifted(aws, state, copies=1)

    result = _monitor()
    assert result["status"] == "not enough data"
    assert result["rows"] < 1000
    assert _alerts(deployed) == []
