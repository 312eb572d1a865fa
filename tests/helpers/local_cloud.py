"""Driving the local cloud from tests: its alerts, executions and batch jobs, the penguins as rows,
and a version waiting for a person's approval."""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator
from typing import Any

from mlstack.cli.demo import csv_records, penguins_csv
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.errors import ModelNotFound
from tests.helpers.tables import records_csv


class AlertInbox:
    """An SQS queue subscribed to the stack's alerts topic."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._sqs = cloud.client("sqs")
        self.queue_url = self._sqs.create_queue(QueueName="test-alerts")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        cloud.client("sns").subscribe(
            TopicArn=cloud.outputs["AlertsTopicArn"],
            Protocol="sqs",
            Endpoint=arn["Attributes"]["QueueArn"],
        )

    def drain(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return messages
            for message in batch["Messages"]:
                messages.append(json.loads(message["Body"]))
                self._sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def penguin_rows() -> list[dict[str, str]]:
    return csv_records(penguins_csv())


to_csv = records_csv


def split_rows(
    rows: list[dict[str, str]], holdout_share: float, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * (1 - holdout_share))
    return shuffled[:cut], shuffled[cut:]


def served_score(task: str, truth: list[str], predictions: list[Any]) -> float:
    """Accuracy of a classifier's answers, R² of a regressor's, against the true labels."""
    import numpy as np

    if task == "classification":
        return float(np.mean([str(p) == t for p, t in zip(predictions, truth, strict=True)]))
    y = np.asarray([float(t) for t in truth])
    p = np.asarray(predictions, dtype=np.float64)
    return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))


def batch_predictions(cloud: LocalCloud, model: str, rows: list[dict[str, str]]) -> list[str]:
    """Upload ``rows`` as batch/<model>/unseen.csv, wait for the scoring job, and read back the
    predictions of its rows in order; every row must be scored."""
    import csv
    import io
    import time

    s3 = cloud.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    s3.put_object(Bucket=bucket, Key=f"batch/{model}/unseen.csv", Body=records_csv(rows))
    sfn = cloud.client("stepfunctions")
    machine = cloud.outputs["ScoringStateMachineArn"]
    deadline = time.monotonic() + 120
    arn = None
    while arn is None and time.monotonic() < deadline:
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
            if execution["name"].startswith(f"{model}-unseen-"):
                arn = execution["executionArn"]
        time.sleep(0.1)
    assert arn is not None, f"no scoring job started for {model}"
    result = cloud.wait_for_execution(arn, timeout=600)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"batch/{model}/unseen/manifest.json")["Body"].read()
    )
    assert manifest["rows_refused"] == 0
    predictions: list[str] = []
    for key in manifest["parts"]:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        predictions += [row["prediction"] for row in csv.DictReader(io.StringIO(body))]
    assert len(predictions) == len(rows)
    return predictions


def predict_one(cloud: LocalCloud, model: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST the first penguin to the local API's prediction route: status, headers, body."""
    import urllib.error
    import urllib.request

    from mlstack.cli.demo import as_instance

    row = as_instance(penguin_rows()[0], TARGET)
    request = urllib.request.Request(
        cloud.api_url.rstrip("/") + f"/models/{model}/predict",
        data=json.dumps({"instances": [row]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def execution_events(cloud: LocalCloud, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = cloud.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    return events


def entered_states(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]


@contextlib.contextmanager
def function_environment(cloud: LocalCloud, logical_id: str, **variables: str) -> Iterator[None]:
    """Run with some of a function's environment variables changed (LocalCloud's helper)."""
    with cloud.function_environment(logical_id, **variables):
        yield


TARGET = "species"  # the penguins' label


def wait_for_status(stack: StackClient, model: str, version: int, status: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if stack.registry.get_version(model, version)["status"] == status:
                return
        except ModelNotFound:
            pass
        time.sleep(0.1)
    raise AssertionError(f"version {version} of {model} never became {status}")


def manual_run(stack: StackClient, cloud: LocalCloud, model: str, **spec: Any) -> str:
    """Version 1 of ``model`` trained and waiting for a person's approval."""
    spec = {"target": TARGET, "approval": "manual", **spec}
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), spec, file_name="d.csv")
    execution_arn = stack.find_execution(upload)
    wait_for_status(stack, model, 1, "PendingApproval")
    # Paused on the task token: nothing is promoted while it waits.
    assert (
        cloud.client("stepfunctions").describe_execution(executionArn=execution_arn)["status"]
        == "RUNNING"
    )
    assert stack.registry.get_alias(model) is None
    return execution_arn
