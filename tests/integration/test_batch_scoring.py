"""Batch scoring end to end in the local cloud: an upload of batch/<model>/<job>.csv runs the
scoring state machine (statemachine/scoring.asl.json): ItemReader over the CSV, ItemBatcher
batches, the scoring function, ResultWriter, a manifest."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from tests.integration.conftest import AlertInbox, penguin_rows, to_csv

pytestmark = pytest.mark.integration

MODEL = "batch-penguins"
SPEC = {"target": "species", "candidates": ["logistic_regression"]}


@pytest.fixture(scope="module")
def production(cloud: LocalCloud, stack: StackClient) -> int:
    upload = stack.upload_dataset(MODEL, to_csv(penguin_rows()), SPEC)
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    version = stack.registry.get_alias(MODEL)
    assert version is not None
    return version


def _scoring_execution(cloud: LocalCloud, job: str, timeout: float = 60) -> dict[str, Any]:
    sfn = cloud.client("stepfunctions")
    machine = cloud.outputs["ScoringStateMachineArn"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
            if execution["name"].startswith(f"{MODEL}-{job}-"):
                return cloud.wait_for_execution(execution["executionArn"], timeout=300)
        time.sleep(0.1)
    raise AssertionError(f"no scoring job {job} started")


def _upload(cloud: LocalCloud, job: str, body: bytes) -> None:
    key = f"batch/{MODEL}/{job}.csv"
    cloud.client("s3").put_object(Bucket=cloud.outputs["DataBucketName"], Key=key, Body=body)


def _read(cloud: LocalCloud, key: str) -> str:
    bucket = cloud.outputs["DataBucketName"]
    return cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def _rows() -> list[dict[str, str]]:
    rows = [
        {"customer": f"c{i:04d}", **{k: v for k, v in row.items() if k != "species"}}
        for i, row in enumerate(penguin_rows())
    ]
    rows[10]["flipper_length_mm"] = "long"
    return rows


def _table(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def test_an_uploaded_file_is_scored_in_order_and_matches_the_api(
    cloud: LocalCloud, stack: StackClient, production: int
) -> None:
    rows = _rows()
    _upload(cloud, "nightly", _table(rows))
    result = _scoring_execution(cloud, "nightly")
    assert result["status"] == "SUCCEEDED", result.get("cause")

    manifest = json.loads(_read(cloud, f"batch/{MODEL}/nightly/manifest.json"))
    assert manifest["version"] == production
    assert (manifest["rows_in"], manifest["rows_scored"], manifest["rows_refused"]) == (
        len(rows),
        len(rows) - 1,
        1,
    )
    scored: list[dict[str, str]] = []
    for key in manifest["parts"]:
        scored += list(csv.DictReader(io.StringIO(_read(cloud, key))))
    assert [r["customer"] for r in scored] == [r["customer"] for i, r in enumerate(rows) if i != 10]
    (refused,) = csv.DictReader(io.StringIO(_read(cloud, manifest["errors"])))
    assert refused["data_row"] == "11"
    assert "'flipper_length_mm'" in refused["reason"]

    by_id = {r["customer"]: r for r in rows}
    instances = [as_instance(by_id[r["customer"]], "customer") for r in scored]
    answer = stack.request("POST", f"/models/{MODEL}/predict", {"instances": instances})
    assert answer.status == 200, answer.body
    assert [r["prediction"] for r in scored] == answer.body["predictions"]


def test_a_file_whose_header_lacks_a_feature_fails_by_name_with_an_alert(
    cloud: LocalCloud, alerts: AlertInbox, production: int
) -> None:
    alerts.drain()
    _upload(cloud, "narrow", b"island,bill_length_mm\nTorgersen,39.1\n")
    result = _scoring_execution(cloud, "narrow")
    assert result["status"] == "FAILED"
    assert result["error"] == "HeaderLacksFeature"
    failed = [
        m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "BatchFailed"
    ]
    assert len(failed) == 1
    assert json.loads(failed[0]["Message"])["Error"] == "HeaderLacksFeature"
