"""EventBridge delivers at least once: the same object version delivered again is still one run."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from tests.helpers.local_cloud import penguin_rows, to_csv

pytestmark = pytest.mark.integration


def test_redelivered_event_starts_exactly_one_execution(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "redelivered"
    upload = stack.upload_dataset(
        model, to_csv(penguin_rows()), {"target": "species"}, file_name="d.csv"
    )
    execution_arn = stack.find_execution(upload)
    original = _trigger_event_that_started(cloud, execution_arn)

    for _ in range(2):  # EventBridge redelivers the very same event
        cloud.invoke_function("TriggerFunction", original)

    runs = [e["executionArn"] for e in cloud.executions() if e["name"].startswith(f"{model}-")]
    assert runs == [execution_arn]
    assert cloud.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"
    assert [v["version"] for v in stack.registry.list_versions(model)] == [1]


def _trigger_event_that_started(cloud: LocalCloud, execution_arn: str) -> dict[str, Any]:
    assert cloud.lambdas is not None
    for invocation in cloud.lambdas.invocations:
        result = invocation.result if isinstance(invocation.result, dict) else {}
        if result.get("execution_arn") == execution_arn:
            event: dict[str, Any] = invocation.event
            return event
    raise AssertionError("the trigger invocation that started the run was not recorded")
