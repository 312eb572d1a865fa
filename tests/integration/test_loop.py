"""The whole loop in the local cloud: S3 upload → real ASL → promoted ONNX → HTTP predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from tests.helpers.local_cloud import AlertInbox, penguin_rows, split_rows, to_csv

pytestmark = pytest.mark.integration

TARGET = "species"
ROOT = Path(__file__).resolve().parents[2]


def _run_for(stack: StackClient, cloud: LocalCloud, upload: dict[str, Any]) -> dict[str, Any]:
    execution_arn = stack.find_execution(upload)
    return cloud.wait_for_execution(execution_arn)


def _state_names(cloud: LocalCloud, execution_arn: str) -> list[str]:
    events = cloud.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]


def test_stack_runs_the_repository_state_machine(cloud: LocalCloud) -> None:
    deployed = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=cloud.outputs["TrainingStateMachineArn"]
    )
    definition = json.loads(deployed["definition"])
    source = json.loads((ROOT / "statemachine/training.asl.json").read_text())
    assert definition["States"].keys() == source["States"].keys()
    assert definition["States"]["Preprocess"]["Resource"].startswith("arn:aws:lambda:")
    assert "${" not in deployed["definition"], "every DefinitionSubstitution was applied"


def test_upload_trains_promotes_and_serves_accurate_predictions(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "penguins-loop"
    train_rows, unseen_rows = split_rows(penguin_rows(), holdout_share=0.2, seed=1)
    assert any(value == "NA" for row in train_rows for value in row.values())

    # Only S3 calls: the upload itself must start the run.
    s3 = cloud.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    s3.put_object(
        Bucket=bucket,
        Key=f"datasets/{model}/spec.json",
        Body=json.dumps({"target": TARGET}).encode(),
    )
    put = s3.put_object(Bucket=bucket, Key=f"datasets/{model}/train.csv", Body=to_csv(train_rows))

    upload = {
        "bucket": bucket,
        "key": f"datasets/{model}/train.csv",
        "version_id": put["VersionId"],
    }
    execution_arn = stack.find_execution(upload)
    result = cloud.wait_for_execution(execution_arn)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    states = _state_names(cloud, execution_arn)
    assert states[:8] == [
        "AcquireRunLock",
        "ChooseSource",
        "MeasureDataset",
        "ChooseTrainingPath",
        "Preprocess",
        "RenewRunLock",
        "ChooseMapMode",
        "TrainCandidates",
    ]
    assert "RegisterAndPromote" in states
    assert states[-1] == "Promoted"

    production = stack.registry.get_alias(model)
    assert production is not None
    version = stack.registry.get_version(model, production)
    assert version["status"] == "Approved"
    assert version["dataset"]["version_id"] == put["VersionId"]
    assert version["artifact"]["key"].endswith(".onnx")

    response = stack.predict(model, [as_instance(row, TARGET) for row in unseen_rows])
    assert response.status == 200, response.body
    body = response.body
    assert body["model"] == model
    assert body["version"] == production
    assert sorted(body["classes"]) == ["Adelie", "Chinstrap", "Gentoo"]
    assert len(body["probabilities"]) == len(unseen_rows)
    correct = sum(p == row[TARGET] for p, row in zip(body["predictions"], unseen_rows, strict=True))
    assert correct / len(unseen_rows) >= 0.9


def test_worse_challenger_is_rejected_and_production_kept(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    model = "penguins-gate"
    rows = penguin_rows()
    spec = {"target": TARGET, "threshold": 0.8}
    first = stack.upload_dataset(model, to_csv(rows), spec, file_name="good.csv")
    assert _run_for(stack, cloud, first)["status"] == "SUCCEEDED"
    production = stack.registry.get_alias(model)
    alerts.drain()

    # Same features, labels decoupled from them: no model trained on it can beat production.
    labels = [row[TARGET] for row in rows]
    shuffled = [{**row, TARGET: labels[(i * 7) % len(labels)]} for i, row in enumerate(rows)]
    second = stack.upload_dataset(model, to_csv(shuffled), None, file_name="worse.csv")
    execution_arn = stack.find_execution(second)
    result = cloud.wait_for_execution(execution_arn)

    assert result["status"] == "SUCCEEDED"
    assert _state_names(cloud, execution_arn)[-1] == "Rejected"
    assert stack.registry.get_alias(model) == production
    rejected = max(stack.registry.list_versions(model), key=lambda v: v["version"])
    assert rejected["status"] == "Rejected"
    assert rejected["dataset"]["key"] == second["key"]
    assert rejected["status_reason"]
    messages = alerts.drain()
    assert any(m["MessageAttributes"]["event"]["Value"] == "Rejected" for m in messages)


def test_a_coin_flip_table_is_rejected_by_name_with_an_alert(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    """Labels drawn at random: no candidate is better than the baseline beyond noise. The run
    ends Rejected (not failed), the alert names NotBetterThanBaseline and says why and what would
    help, and nothing is in production."""
    import random

    model = "coin-flip"
    generator = random.Random(11)
    rows = [
        {
            "x": f"{generator.gauss(0, 1):.4f}",
            "colour": generator.choice(["red", "green", "blue"]),
            "label": generator.choice(["heads", "tails"]),
        }
        for _ in range(1500)
    ]
    alerts.drain()
    upload = stack.upload_dataset(model, to_csv(rows), {"target": "label"}, file_name="flip.csv")
    execution_arn = stack.find_execution(upload)
    result = cloud.wait_for_execution(execution_arn)

    assert result["status"] == "SUCCEEDED"
    assert _state_names(cloud, execution_arn)[-1] == "Rejected"
    assert stack.registry.get_alias(model) is None
    (version,) = stack.registry.list_versions(model)
    assert version["status"] == "Rejected"
    assert version["status_reason"].startswith("NotBetterThanBaseline: no better than")
    (message,) = [
        m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Rejected"
    ]
    registration = json.loads(message["Message"])
    assert registration["error"] == "NotBetterThanBaseline"
    assert "interval" in registration["reason"]
    assert "more rows" in registration["advice"]


def test_failed_run_names_the_error_alerts_and_keeps_production(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    model = "penguins-fail"
    good = stack.upload_dataset(
        model, to_csv(penguin_rows()), {"target": TARGET}, file_name="good.csv"
    )
    assert _run_for(stack, cloud, good)["status"] == "SUCCEEDED"
    production = stack.registry.get_alias(model)
    versions = len(stack.registry.list_versions(model))
    alerts.drain()

    broken = stack.upload_dataset(
        model, b"island,bill_length_mm\nDream,40.1\nBiscoe,47.0\n", None, file_name="no-target.csv"
    )
    result = _run_for(stack, cloud, broken)

    assert result["status"] == "FAILED"
    assert result["error"] == "TargetColumnMissing"
    assert TARGET in result["cause"]
    assert stack.registry.get_alias(model) == production
    assert len(stack.registry.list_versions(model)) == versions
    failures = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert failures
    assert failures[0]["MessageAttributes"]["error"]["Value"] == "TargetColumnMissing"
    assert failures[0]["MessageAttributes"]["model"]["Value"] == model
