"""Trigger: EventBridge "Object Created" events → exactly one training run per object version."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlstack_core.settings import stack_settings
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import PLACEHOLDER_ARNS, load_handler

pytestmark = pytest.mark.unit

EVENT = json.loads(
    (Path(__file__).parents[1] / "events/eventbridge_s3_object_created.json").read_text()
)
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture
def state_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="training",
            definition=PASS_MACHINE,
            roleArn="arn:aws:iam::123456789012:role/training",
        )["stateMachineArn"]
        monkeypatch.setenv("STATE_MACHINE_ARN", arn)
        for variable in ("SCORING_STATE_MACHINE_ARN", "ALERTS_TOPIC_ARN"):
            monkeypatch.setenv(variable, PLACEHOLDER_ARNS[variable])
        monkeypatch.setenv("MODEL_BUCKET", "models")
        monkeypatch.setenv("REGISTRY_TABLE", "registry")
        stack_settings.cache_clear()
        yield sfn, arn
    stack_settings.cache_clear()


def _event(key: str | None = None, version_id: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    if key is not None:
        event["detail"]["object"]["key"] = key
    if version_id is not None:
        event["detail"]["object"]["version-id"] = version_id
    return event


def test_a_dataset_upload_starts_one_run_with_the_object_identity(state_machine) -> None:
    sfn, arn = state_machine
    result = load_handler("trigger")(_event(), FakeLambdaContext())

    assert result["started"] is True
    assert result["model"] == "penguins"
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(executions) == 1
    run_input = json.loads(
        sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"]
    )
    assert run_input == {
        "model": "penguins",
        "dataset": {
            "bucket": "mlstack-databucket",
            "key": "datasets/penguins/penguins.csv",
            "version_id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "size": 15241,
        },
    }


def test_the_same_object_version_delivered_twice_starts_one_run(state_machine) -> None:
    sfn, arn = state_machine
    handler = load_handler("trigger")
    first = handler(_event(), FakeLambdaContext())
    second = handler(_event(), FakeLambdaContext())

    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    assert first["started"] is True
    # Step Functions answers a repeated name with the same input by returning the same execution.
    assert second.get("execution_arn", first["execution_arn"]) == first["execution_arn"]


def test_a_new_version_of_the_same_key_starts_another_run(state_machine) -> None:
    sfn, arn = state_machine
    handler = load_handler("trigger")
    handler(_event(version_id="v1"), FakeLambdaContext())
    handler(_event(version_id="v2"), FakeLambdaContext())
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 2


def test_a_dataset_the_monitor_derived_starts_a_run_of_its_model(state_machine) -> None:
    """Quality retraining writes under datasets/_derived/<model>/ (expired with the captures)."""
    sfn, arn = state_machine
    key = "datasets/_derived/penguins/feedback-v3-0123456789abcdef.csv"
    result = load_handler("trigger")(_event(key=key), FakeLambdaContext())

    assert result["started"] is True
    assert result["model"] == "penguins"
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    run_input = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert run_input["dataset"]["key"] == key


@pytest.mark.parametrize(
    "key",
    [
        "datasets/_derived/penguins/nested/data.csv",
        "datasets/_derived/data.csv",  # "_derived" is not a model name
        "datasets/penguins/spec.json",  # the spec is read by a run, it does not start one
        "datasets/penguins.csv",  # no model folder
        "datasets/penguins/nested/data.csv",
        "datasets/bad name!/data.csv",
        "elsewhere/penguins/data.csv",
    ],
)
def test_objects_that_are_not_datasets_start_nothing(state_machine, key: str) -> None:
    sfn, arn = state_machine
    result = load_handler("trigger")(_event(key=key), FakeLambdaContext())
    assert result["started"] is False
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_a_dataset_under_a_bad_model_name_is_refused_with_the_rule(
    state_machine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meant as a dataset, so it is a warning that names the rule, and counted."""
    from mlstack_core.observability.pipeline import logger

    warnings: list[str] = []
    monkeypatch.setattr(logger, "warning", lambda message, **_: warnings.append(message))
    sfn, arn = state_machine
    result = load_handler("trigger")(
        _event(key="datasets/Customer Churn/data.csv"), FakeLambdaContext()
    )
    assert result["started"] is False
    assert "'Customer Churn' is not a model name" in result["reason"]
    assert warnings == ["Dataset upload starts no run"]
    assert "IgnoredObjects" in capsys.readouterr().out
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_an_imports_manifest_starts_a_run_of_the_import_naming_who_uploaded_it(
    state_machine,
) -> None:
    sfn, arn = state_machine
    key = "imports/churn/20261206T090000Z-0a1b2c3d/manifest.json"
    result = load_handler("trigger")(_event(key=key), FakeLambdaContext())

    assert result["started"] is True
    assert result["model"] == "churn"
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    run_input = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert run_input["source"] == "import"
    assert run_input["dataset"]["key"] == key
    assert run_input["dataset"]["requester"] == EVENT["detail"]["requester"]


@pytest.mark.parametrize(
    "key",
    [
        "imports/churn/20261206T090000Z-0a1b2c3d/model.onnx",  # only the manifest starts it
        "imports/churn/20261206T090000Z-0a1b2c3d/holdout.csv",
        "imports/bad name!/upload/manifest.json",
        "imports/churn/manifest.json",
    ],
)
def test_an_imports_other_files_start_nothing(state_machine, key: str) -> None:
    sfn, arn = state_machine
    result = load_handler("trigger")(_event(key=key), FakeLambdaContext())
    assert result["started"] is False
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []
