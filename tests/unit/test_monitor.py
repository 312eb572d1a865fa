"""The Monitor: spec.drift decides retrain or alert only; retraining is started once per production
version and dataset version; too few sampled rows decide nothing; ground truth is compared with the
version's stored holdout answers, or its holdout score when they are gone."""

from __future__ import annotations

import csv
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


def _serve_with_features(
    aws: Stack, rows: int, keys: list[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of the uploaded table captured as version 1 answered them (every one "Adelie"), as
    the prediction function writes them: request id and row, and the key column's value when
    ``keys`` gives what the callers sent. Returns the captured features."""
    table = list(csv.DictReader(io.StringIO(penguins_bytes().decode())))[:rows]
    served = [{c: v for c, v in row.items() if c != "species"} for row in table]
    lines = []
    for row, features in enumerate(served):
        line = {"request_id": "served", "row": row, "version": 1, "at": time.time()}
        line |= {"features": features, "prediction": "Adelie"}
        if keys is not None:
            line["key"] = keys[row]
        lines.append(json.dumps(line))
    key = capture_key(MODEL, 1, time.time(), "test", 1)
    aws.s3.put_object(Bucket=aws.model_bucket, Key=key, Body="\n".join(lines).encode())
    return served


def _feedback(aws: Stack, name: str, header: str, rows: list[str]) -> None:
    body = header + "\n" + "".join(f"{row}\n" for row in rows)
    aws.s3.put_object(Bucket=aws.data_bucket, Key=f"feedback/{MODEL}/{name}", Body=body.encode())


def _dataset_rows(aws: Stack, key: str) -> list[dict[str, str]]:
    body = aws.s3.get_object(Bucket=aws.data_bucket, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_retraining_adds_each_labelled_row_once_to_the_original_upload(
    aws: Stack, deployed: dict[str, Any]
) -> None:
    """Two feedback files, two retrainings: the second dataset is the user's upload plus every
    labelled row once, not the first derived dataset plus the rows again; it is written where
    the captures' retention expires it, and a run reads it as any upload."""
    quality = {"capture": True, "min_rows": 20, "action": "retrain"}
    state = _promote(aws, {"target": "species", "quality": quality})
    upload = state["dataset"]["key"]
    uploaded = _dataset_rows(aws, upload)
    served = _serve_with_features(aws, 60)

    # Rows 0-29 labelled wrong: quality fell, the first retraining.
    _feedback(aws, "a.csv", "request_id,row,species", [f"served,{r},Gentoo" for r in range(30)])
    first = _monitor()["quality"]["retraining"]
    assert first["started"] is True
    assert first["labelled_rows"] == 30
    # Rows 0-59, the first ten again (a later file wins): the second retraining.
    _feedback(aws, "b.csv", "request_id,row,species", [f"served,{r},Chinstrap" for r in range(60)])
    second = _monitor()["quality"]["retraining"]
    assert second["started"] is True
    assert second["dataset"] != first["dataset"]

    rows = _dataset_rows(aws, second["dataset"])
    assert second["labelled_rows"] == 60
    assert len(rows) == len(uploaded) + 60
    assert rows[: len(uploaded)] == uploaded
    added = rows[len(uploaded) :]
    assert [{c: v for c, v in r.items() if c != "species"} for r in added] == served
    assert {r["species"] for r in added} == {"Chinstrap"}
    assert second["from"] == upload

    # Both derived datasets fall under the data bucket's rule with the captures' retention.
    from mlstack.sam import load_template, project_root

    template = load_template(project_root() / "template.yaml")
    rules = template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    for derived in (first["dataset"], second["dataset"]):
        (rule,) = [r for r in rules if derived.startswith(r.get("Prefix", "\0"))]
        assert rule["Status"] == "Enabled"
        assert rule["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
        assert not rule["Prefix"].startswith(f"datasets/{MODEL}/")  # never the user's uploads

    # The derived dataset is a dataset of the model: its run's Preprocess reads it.
    derived = {"bucket": aws.data_bucket, "key": second["dataset"]}
    derived["version_id"] = aws.s3.head_object(Bucket=aws.data_bucket, Key=derived["key"])[
        "VersionId"
    ]
    run = aws.preprocess({**state, "dataset": derived})
    assert run["model"] == MODEL


@pytest.mark.parametrize("trusted", [False, True])
def test_labels_join_by_a_key_callers_send_only_when_the_spec_trusts_it(
    aws: Stack, deployed: dict[str, Any], trusted: bool
) -> None:
    """The key's values are what callers sent: without ``quality.key_trusted`` a label naming
    one is not joined (and the report says why); the API's own request id and row always are."""
    quality: dict[str, Any] = {"capture": True, "min_rows": 20, "key": "customer"}
    if trusted:
        quality["key_trusted"] = True
    _promote(aws, {"target": "species", "quality": quality})
    _serve_with_features(aws, 40, keys=[f"c{row}" for row in range(40)])
    _feedback(aws, "by-key.csv", "customer,species", [f"c{row},Gentoo" for row in range(30)])
    report = _monitor()["quality"]
    (entry,) = report["versions"]
    if trusted:
        assert entry["rows"] == 30
        assert report["feedback_problems"] == []
    else:
        assert entry["rows"] == 0
        (problem,) = report["feedback_problems"]
        assert "customer joins only with quality.key_trusted" in problem

    # Labels by the request id and row the API answered join whatever the key's trust.
    _feedback(
        aws, "by-request.csv", "request_id,row,species", [f"served,{r},Gentoo" for r in range(35)]
    )
    (entry,) = _monitor()["quality"]["versions"]
    assert entry["rows"] == 35


def test_an_earlier_derived_dataset_is_never_the_upload_retraining_starts_from(aws: Stack) -> None:
    """Before derived datasets had a prefix of their own they sat beside the uploads; a newer
    one there is still not the user's upload."""
    from mlstack_monitor.datasets import latest_dataset

    upload = aws.upload(MODEL, b"a,b\n1,2\n", name="upload.csv")["dataset"]["key"]
    aws.upload(MODEL, b"a,b\n1,2\n1,2\n", name="feedback-v1-0123456789abcdef.csv")
    newest = latest_dataset(aws.s3, aws.data_bucket, MODEL)
    assert newest is not None
    assert newest["key"] == upload
