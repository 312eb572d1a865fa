"""Drift closes the loop, in the local cloud: serve traffic like the training data (low drift, no
retraining), then shifted traffic (high drift: a retraining execution of the real state machine
and an alert on the stack's topic).

Predictions come from the stack's HTTP API: the real prediction function serves them and records
their input/output counts in the model bucket (DriftFlushSeconds=0 in the test stack, so after
every request); the Monitor is the stack's MonitorFunction, invoked as its schedule would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.storage_keys import summaries_prefix
from tests.helpers.emf import emf
from tests.helpers.local_cloud import AlertInbox, penguin_rows, to_csv
from tests.helpers.stack import monitoring_written

pytestmark = pytest.mark.integration

MODEL = "penguins-drift"
TARGET = "species"
SCHEDULED_EVENT = {
    "version": "0",
    "id": "5f1b8a52-0000-4000-8000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/mlstack-MonitorFunctionDriftCheck"],
    "detail": {},
}


def serve(stack: StackClient, instances: list[dict[str, Any]]) -> None:
    """POST the instances in requests of 50 through the stack's API."""
    for start in range(0, len(instances), 50):
        response = stack.predict(MODEL, instances[start : start + 50])
        assert response.status == 200, response.body
    monitoring_written()  # the summaries the requests made due


def summaries(cloud: LocalCloud, version: int) -> list[str]:
    """The drift summaries the prediction function wrote for this version."""
    listing = cloud.client("s3").list_objects_v2(
        Bucket=cloud.outputs["ModelBucketName"], Prefix=summaries_prefix(MODEL, version)
    )
    return [item["Key"] for item in listing.get("Contents", [])]


def run_monitor(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], float]:
    capsys.readouterr()
    result = cloud.invoke_function("MonitorFunction", SCHEDULED_EVENT)
    (ours,) = [m for m in result["models"] if m["model"] == MODEL]
    printed = capsys.readouterr().out
    scores = [
        json.loads(line)
        for line in printed.splitlines()
        if '"DriftScore"' in line and f'"model":"{MODEL}"' in line.replace(" ", "")
    ]
    assert ("DriftScore", "None", frozenset({"service", "model"})) in emf(printed)
    (record,) = scores
    value = record["DriftScore"]
    return ours, float(value[0] if isinstance(value, list) else value)


def test_drift_is_low_on_training_like_traffic_and_retrains_on_shifted_traffic(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = penguin_rows()
    upload = stack.upload_dataset(
        MODEL, to_csv(rows), {"target": TARGET, "drift": {"min_rows": 100}}, file_name="data.csv"
    )
    trained = cloud.wait_for_execution(stack.find_execution(upload))
    assert trained["status"] == "SUCCEEDED", trained.get("cause")
    production = stack.registry.get_alias(MODEL)
    assert production is not None
    document: Mapping[str, Any] = stack.registry.get_version(MODEL, production)
    assert document["drift_baseline"]["features"], "Register stored the training baseline"
    executions = len(cloud.executions())
    alerts.drain()

    # 1. Traffic drawn from the training distribution.
    instances = [as_instance(row, TARGET) for row in rows]
    serve(stack, instances)
    assert summaries(cloud, production), "the prediction function recorded what it served"
    calm, calm_score = run_monitor(cloud, capsys)
    assert calm["status"] == "stable", calm
    assert calm_score == calm["score"] < 0.1
    assert calm["rows"] >= 300
    assert "retraining" not in calm
    assert len(cloud.executions()) == executions
    assert not [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Drift"]

    # 2. The same kind of request, from a shifted population (three times as much of it).
    shifted = [
        {
            **instance,
            "island": "Torgersen",
            "bill_length_mm": (instance["bill_length_mm"] or 44.0) + 12,
            "body_mass_g": (instance["body_mass_g"] or 4200) * 1.4,
        }
        for instance in instances
    ] * 3
    serve(stack, shifted)
    drifted, drifted_score = run_monitor(cloud, capsys)
    assert drifted["status"] == "drift", drifted
    assert drifted_score == drifted["score"] >= 0.25
    top = [f["name"] for f in drifted["features"][:3]]
    assert {"island", "bill_length_mm", "body_mass_g"} & set(top)

    # A retraining run of the stack's own state machine, on the newest dataset, with the input
    # the upload trigger gives it.
    retraining = drifted["retraining"]
    assert retraining["started"] is True, retraining
    sfn = cloud.client("stepfunctions")
    execution = sfn.describe_execution(executionArn=retraining["execution_arn"])
    assert execution["stateMachineArn"] == cloud.outputs["TrainingStateMachineArn"]
    run_input = json.loads(execution["input"])
    assert run_input["model"] == MODEL
    assert run_input["dataset"]["key"] == upload["key"]
    assert run_input["dataset"]["version_id"] == upload["version_id"]
    assert set(run_input["dataset"]) == {"bucket", "key", "version_id", "etag", "size"}
    finished = cloud.wait_for_execution(retraining["execution_arn"])
    assert finished["status"] == "SUCCEEDED", finished.get("cause")
    history = sfn.get_execution_history(executionArn=retraining["execution_arn"], maxResults=1000)
    states = [
        e["stateEnteredEventDetails"]["name"]
        for e in history["events"]
        if "stateEnteredEventDetails" in e
    ]
    assert {"Preprocess", "TrainCandidates", "Evaluate"} <= set(states)

    # The alert, and the report where the Monitor said it would be.
    drift_alerts = [
        m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Drift"
    ]
    assert len(drift_alerts) == 1
    assert drift_alerts[0]["MessageAttributes"]["model"]["Value"] == MODEL
    message = json.loads(drift_alerts[0]["Message"])
    assert message["score"] == drifted["score"]
    assert message["retraining"]["execution_arn"] == retraining["execution_arn"]
    report = json.loads(
        cloud.client("s3")
        .get_object(Bucket=cloud.outputs["ModelBucketName"], Key=drifted["report_key"])["Body"]
        .read()
    )
    assert report["status"] == "drift"
    assert report["features"][0]["psi"] == drifted["score"]
