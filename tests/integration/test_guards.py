"""The stack, not the uploader, decides what may reach production and what a run may cost."""

from __future__ import annotations

import json
import time

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from tests.helpers.local_cloud import (
    TARGET,
    AlertInbox,
    function_environment,
    penguin_rows,
    to_csv,
    wait_for_status,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("model", "where", "why"),
    [
        ("foreign", "bucket", "not this stack's data bucket"),
        ("foreign", "key", "is not datasets/foreign/<file>.csv"),
        ("../models", "name", "is not a model name"),
    ],
)
def test_a_hand_started_run_for_a_foreign_object_fails_by_name(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox, model: str, where: str, why: str
) -> None:
    """Preprocess checks its own input, as if anyone could start the state machine: a
    principal allowed states:StartExecution cannot make it read another bucket or prefix."""
    data_bucket = cloud.outputs["DataBucketName"]
    dataset = {
        "bucket": cloud.outputs["ModelBucketName"] if where == "bucket" else data_bucket,
        "key": "runs/x/train.csv" if where == "key" else f"datasets/{model}/data.csv",
    }
    alerts.drain()
    sfn = cloud.client("stepfunctions")
    started = sfn.start_execution(
        stateMachineArn=cloud.outputs["TrainingStateMachineArn"],
        name=f"by-hand-{where}",
        input=json.dumps({"model": model, "dataset": dataset}),
    )
    result = cloud.wait_for_execution(started["executionArn"])

    assert result["status"] == "FAILED"
    assert result["error"] == "ForeignDataset"
    assert why in json.loads(result["cause"])["errorMessage"]
    failed = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert [m["MessageAttributes"]["error"]["Value"] for m in failed] == ["ForeignDataset"]


def test_an_upload_above_the_size_limit_starts_no_run_and_alerts(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    model = "oversized"
    alerts.drain()
    before = len(cloud.executions())
    with function_environment(cloud, "TriggerFunction", MAX_UPLOAD_MIB="0.01"):
        stack.upload_dataset(model, to_csv(penguin_rows()), {"target": TARGET}, "big.csv")
        deadline = time.monotonic() + 10
        refused: list[dict[str, object]] = []
        while not refused and time.monotonic() < deadline:
            refused = [m for m in alerts.drain() if m.get("Subject") == "mlstack: upload refused"]
            time.sleep(0.1)
    assert len(cloud.executions()) == before
    assert len(refused) == 1
    attributes = refused[0]["MessageAttributes"]
    assert attributes["error"]["Value"] == "DatasetTooLarge"  # type: ignore[index]
    assert attributes["model"]["Value"] == model  # type: ignore[index]
    assert "MaxUploadMiB" in json.loads(str(refused[0]["Message"]))["cause"]


def test_a_model_the_stack_lists_waits_for_a_person_whatever_its_spec_says(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "always-reviewed"
    with function_environment(cloud, "PreprocessFunction", MANUAL_APPROVAL_MODELS=f"x,{model}"):
        upload = stack.upload_dataset(
            model, to_csv(penguin_rows()), {"target": TARGET, "approval": "auto"}, "d.csv"
        )
        execution_arn = stack.find_execution(upload)
        wait_for_status(stack, model, 1, "PendingApproval")
    version = stack.registry.get_version(model, 1)
    assert "ManualApprovalRequired" in {w["code"] for w in version["warnings"]}
    assert stack.registry.get_alias(model) is None
    answer = stack.request("POST", f"/models/{model}/versions/1/reject", {"reason": "not now"})
    assert answer.status == 200
    assert cloud.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"
