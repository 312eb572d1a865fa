"""The Monitor: spec.drift decides retrain or alert only; retraining is started once per production
version and dataset version; too few sampled rows decide nothing; ground truth is compared with the
version's stored holdout answers, or its holdout score when they are gone."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import boto3
import numpy as np
import pytest

from mlstack_core.drift import DriftRecorder
from mlstack_core.settings import stack_settings
from mlstack_core.storage_keys import capture_key
from mlstack_core.tabular import feature_feeds, read_split
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import REGION, Stack, load_handler, register_event
from tests.helpers.tables import penguins_bytes

pytestmark = [pytest.mark.unit, pytest.mark.slow]

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
    feeds = feature_feeds(holdout, document["schema"])
    numeric, categorical = feeds["numeric"], feeds["categorical"]
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


def _serve_holdout(aws: Stack) -> tuple[np.ndarray, np.ndarray]:
    """Version 1's stored holdout answers, captured as if served; returns the rows' truth and
    answers."""
    document = aws.registry.get_version(MODEL, 1)
    body = aws.s3.get_object(Bucket=aws.model_bucket, Key=document["files"]["predictions"])
    with np.load(io.BytesIO(body["Body"].read()), allow_pickle=False) as stored:
        truth, answers = stored["y"].astype(str), stored["best_label"].astype(str)
        probabilities = stored["best_probabilities"].tolist()
    lines = [
        json.dumps(
            {
                "request_id": "served",
                "row": row,
                "version": 1,
                "features": {},
                "prediction": answer,
                "probabilities": probabilities[row],
            }
        )
        for row, answer in enumerate(answers.tolist())
    ]
    key = capture_key(MODEL, 1, time.time(), "test", 1)
    aws.s3.put_object(Bucket=aws.model_bucket, Key=key, Body="\n".join(lines).encode())
    return truth, answers


def _label(aws: Stack, labels: list[str]) -> None:
    """A feedback file labelling the served rows in order."""
    feedback = "request_id,row,species\n" + "".join(
        f"served,{row},{label}\n" for row, label in enumerate(labels)
    )
    aws.s3.put_object(
        Bucket=aws.data_bucket, Key=f"feedback/{MODEL}/labels.csv", Body=feedback.encode()
    )


def test_ground_truth_is_compared_with_the_versions_stored_holdout_answers(
    aws: Stack, deployed: dict[str, Any]
) -> None:
    _promote(aws, {"target": "species", "quality": {"capture": True, "min_rows": 20}})
    holdout = aws.registry.get_version(MODEL, 1)["metrics"]["accuracy"]

    # The stored holdout answers, labelled with their truth: as right as on the holdout.
    truth, answers = _serve_holdout(aws)
    rows = truth.size
    _label(aws, truth.tolist())
    report = _monitor()["quality"]
    (entry,) = report["versions"]
    assert entry["status"] == "holding"
    assert entry["compared_with"] == "holdout rows"
    assert entry["test"] == "Welch"
    assert entry["holdout_rows"] == rows
    assert entry["rows"] == rows
    # Centred on the registered score; under cross-validation the stored answers are one
    # repeat's out-of-fold answers, so the labelled rows' accuracy may differ from it a little.
    assert entry["holdout_interval"]["estimate"] == holdout
    assert entry["drop"] == pytest.approx(holdout - entry["value"])
    assert entry["drop_interval"]["low"] < 0 < entry["drop_interval"]["high"]
    assert "within noise and the margin 0.05" in entry["summary"]
    assert aws.read_json(f"monitoring/{MODEL}/quality-latest.json")["versions"] == [entry]
    assert _alerts(deployed) == []

    # Every answer labelled wrong: fallen beyond noise, and the alert carries the intervals.
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    _label(aws, [classes[(classes.index(a) + 1) % 3] for a in answers.tolist()])
    report = _monitor()["quality"]
    (entry,) = report["versions"]
    assert entry["status"] == "fallen"
    assert entry["drop_beyond_noise"] is True
    assert report["action"] == "alert"
    (alert,) = _alerts(deployed)
    assert alert["Subject"] == "mlstack: model quality fell"
    message = json.loads(alert["Message"])
    assert message["value"] == 0.0
    assert message["drop"] == pytest.approx(holdout)
    assert message["drop_interval"] == entry["drop_interval"]
    assert message["holdout_interval"]["rows"] == rows
    assert message["confidence"] == 0.95
    assert f"accuracy on {rows} labelled rows 0.000 (95% interval" in message["summary"]
    assert "beyond noise: worse than the holdout" in message["reasons"][0]


def test_without_stored_holdout_answers_the_holdout_score_is_compared(
    aws: Stack, deployed: dict[str, Any]
) -> None:
    _promote(aws, {"target": "species", "quality": {"capture": True, "min_rows": 20}})
    truth, _ = _serve_holdout(aws)
    _label(aws, truth.tolist())
    # Register's copy next to the version, and Evaluate's original under the run.
    for item in aws.s3.list_objects_v2(Bucket=aws.model_bucket)["Contents"]:
        if item["Key"].endswith("holdout_predictions.npz"):
            aws.s3.delete_object(Bucket=aws.model_bucket, Key=item["Key"])
    (entry,) = _monitor()["quality"]["versions"]
    assert entry["status"] == "holding"
    assert entry["compared_with"] == "holdout score"
    assert entry["test"] == "one-sample t"
    assert entry["holdout_interval"] is None
    assert entry["interval"]["rows"] == truth.size
    assert "(score only: its holdout answers (" in entry["summary"]
