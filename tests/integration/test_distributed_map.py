"""A grid too large for the execution state runs as a Distributed Map reading its items from S3."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.candidates import INLINE_MAP_LIMIT
from tests.helpers.local_cloud import AlertInbox, penguin_rows, to_csv

pytestmark = pytest.mark.integration


def test_a_large_grid_trains_through_the_distributed_map(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "wide-grid"
    grid_size = INLINE_MAP_LIMIT + 8
    c_values = [round(0.01 * 1.2**i, 5) for i in range(grid_size)]
    spec: dict[str, Any] = {
        "target": "species",
        "max_concurrency": 8,
        "candidates": [
            {
                "family": "logistic_regression",
                "grid": {"C": [round(0.01 * 1.2**i, 5) for i in range(grid_size)]},
            }
        ],
    }
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), spec, file_name="d.csv")
    execution_arn = stack.find_execution(upload)
    result = cloud.wait_for_execution(execution_arn, timeout=600)
    assert result["status"] == "SUCCEEDED", result.get("cause")

    sfn = cloud.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]
    assert "TrainCandidatesDistributed" in entered
    assert "TrainCandidates" not in entered

    output = json.loads(result["output"])
    assert output["run"]["candidates"] == []  # the list lives in S3, not in the state
    assert output["run"]["candidate_count"] == grid_size
    s3 = cloud.client("s3")
    listed = json.loads(
        s3.get_object(
            Bucket=output["run"]["splits"]["bucket"], Key=output["run"]["candidates_key"]
        )["Body"].read()
    )
    assert len(listed) == grid_size
    report = output["evaluation"]["report_key"]  # every candidate is in the report, not the state
    scored = json.loads(
        s3.get_object(Bucket=output["run"]["splits"]["bucket"], Key=report)["Body"].read()
    )["candidates"]
    assert len(scored) == grid_size
    assert all(c["status"] == "trained" for c in scored)

    version = stack.registry.get_version(model, stack.registry.get_alias(model) or 0)
    assert version["family"] == "logistic_regression"
    assert version["params"]["C"] in c_values


def test_files_rewritten_under_the_run_cannot_change_what_the_map_reported(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the Distributed Map, something with write access to the run's prefix (Train's role)
    replaces every candidate's model.onnx and leaves a result.json next to it that vouches for
    the new bytes. Evaluate believes only the children's outputs Step Functions stored under
    map-runs/, so the run fails as ArtifactTampered: nothing is registered, one alert is sent."""
    import mlstack_evaluate.evaluate as evaluate_step

    real_entries = evaluate_step.trained_entries

    def after_a_compromised_write(run: Any, trained: Any, s3: Any, model_bucket: str) -> Any:
        bucket = run["splits"]["bucket"]
        listed = json.loads(s3.get_object(Bucket=bucket, Key=run["candidates_key"])["Body"].read())
        forged = b"not the model Train exported"
        for candidate in listed:
            prefix = f"runs/{run['model']}/{run['run_id']}/candidates/{candidate['candidate_id']}"
            put = s3.put_object(Bucket=bucket, Key=f"{prefix}/model.onnx", Body=forged)
            claim = {
                **candidate,
                "status": "trained",
                "onnx_key": f"{prefix}/model.onnx",
                "onnx_version_id": put["VersionId"],
                "onnx_sha256": hashlib.sha256(forged).hexdigest(),
            }
            s3.put_object(Bucket=bucket, Key=f"{prefix}/result.json", Body=json.dumps(claim))
        return real_entries(run, trained, s3, model_bucket)

    monkeypatch.setattr(evaluate_step, "trained_entries", after_a_compromised_write)
    alerts.drain()
    model = "tampered-grid"
    spec: dict[str, Any] = {
        "target": "species",
        "candidates": [
            {"family": "logistic_regression", "grid": {"C": [0.1 + i for i in range(41)]}}
        ],
    }
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), spec, file_name="d.csv")
    result = cloud.wait_for_execution(stack.find_execution(upload), timeout=600)

    assert result["status"] == "FAILED"
    assert result["error"] == "ArtifactTampered", result.get("cause")
    assert stack.registry.get_alias(model) is None
    assert stack.registry.list_versions(model) == []
    failed = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert [m["MessageAttributes"]["error"]["Value"] for m in failed] == ["ArtifactTampered"]
