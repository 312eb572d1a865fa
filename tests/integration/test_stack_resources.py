"""Everything the local cloud relies on is a resource of the translated stack in moto's
CloudFormation, not something created beside it (docs/local-cloud.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud, stack_resources
from tests.helpers.local_cloud import penguin_rows, to_csv

pytestmark = pytest.mark.integration

# Resources of the translated template that the local cloud removes before creating the stack:
# moto cannot deploy a RestApi from SAM's OpenAPI body, so mlstack.localcloud.api serves the routes.
DROPPED_TYPES = {"AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"}
# The local stack runs on the template's defaults: no AlertEmail, uploader may approve.
CONDITIONS_FALSE_BY_DEFAULT = {"HasAlertEmail", "ApproverMustDifferFromUploader"}


def _resources(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    return {
        r["LogicalResourceId"]: r
        for r in stack_resources(cloud.client("cloudformation"), cloud.stack_name)
    }


def test_every_translated_resource_is_a_stack_resource(cloud: LocalCloud) -> None:
    assert cloud.stack is not None
    resources = _resources(cloud)
    translated = cloud.stack.translated["Resources"]
    expected = {
        logical_id
        for logical_id, resource in translated.items()
        if resource["Type"] not in DROPPED_TYPES
        and resource.get("Condition") not in CONDITIONS_FALSE_BY_DEFAULT
    }
    assert expected <= set(resources)
    for logical_id in expected:
        assert resources[logical_id]["ResourceType"] == translated[logical_id]["Type"], logical_id


def test_what_the_local_cloud_uses_came_from_the_stack(cloud: LocalCloud) -> None:
    resources = _resources(cloud)

    def physical(logical_id: str, kind: str) -> str:
        assert resources[logical_id]["ResourceType"] == kind, logical_id
        return str(resources[logical_id]["PhysicalResourceId"])

    # The Outputs every tool reads name the stack's own resources.
    outputs = cloud.outputs
    assert outputs["DataBucketName"] == physical("DataBucket", "AWS::S3::Bucket")
    assert outputs["ModelBucketName"] == physical("ModelBucket", "AWS::S3::Bucket")
    assert outputs["RegistryTableName"] == physical("RegistryTable", "AWS::DynamoDB::Table")
    assert outputs["AlertsTopicArn"] == physical("AlertsTopic", "AWS::SNS::Topic")
    machine = physical("TrainingStateMachine", "AWS::StepFunctions::StateMachine")
    assert outputs["TrainingStateMachineArn"] == machine

    # The functions the in-process runner executes are the stack's, as moto's Lambda holds them.
    lambda_client = cloud.client("lambda")
    stack_functions = {
        logical_id: r["PhysicalResourceId"]
        for logical_id, r in resources.items()
        if r["ResourceType"] == "AWS::Lambda::Function"
    }
    assert set(stack_functions) == {
        "ApprovalFunction",
        "ScoreFunction",
        "TriggerFunction",
        "PreprocessFunction",
        "TrainFunction",
        "AdmitFunction",
        "EvaluateFunction",
        "RegisterFunction",
        "RunLockFunction",
        "PredictFunction",
        "MonitorFunction",
        "TaskResultFunction",
    }
    for logical_id, name in stack_functions.items():
        variables = lambda_client.get_function(FunctionName=name)["Configuration"]["Environment"]
        assert variables["Variables"]["DATA_BUCKET"] == outputs["DataBucketName"], logical_id
        assert cloud.stack is not None
        assert cloud.stack.function_name(logical_id) == name

    # The state machine the interpreter runs is the stack's, and it calls the stack's functions.
    definition = cloud.client("stepfunctions").describe_state_machine(stateMachineArn=machine)
    for logical_id in ("PreprocessFunction", "TrainFunction", "EvaluateFunction"):
        assert stack_functions[logical_id] in definition["definition"], logical_id

    # The rule that turns uploads into runs is the stack's and targets the stack's trigger.
    rule = physical("TriggerFunctionDatasetUploaded", "AWS::Events::Rule")
    (target,) = cloud.client("events").list_targets_by_rule(Rule=rule)["Targets"]
    assert target["Arn"].endswith(":function:" + stack_functions["TriggerFunction"])
    assert target["DeadLetterConfig"]["Arn"].endswith(
        physical("TriggerDeadLetterQueue", "AWS::SQS::Queue").rsplit("/", 1)[-1]
    )

    # The local HTTP API routes to the stack's functions (API Gateway itself is adapted).
    assert {route.function_logical_id for route in cloud.api.routes} == {
        "PredictFunction",
        "ApprovalFunction",
    }
    physical("Api", "AWS::ApiGateway::RestApi")

    # Alarms (an adaptation: moto's CloudFormation lacks the type) and the dashboard.
    alarms = cloud.client("cloudwatch").describe_alarms()["MetricAlarms"]
    for logical_id, r in resources.items():
        if r["ResourceType"] == "AWS::CloudWatch::Alarm":
            (alarm,) = [a for a in alarms if a["AlarmName"] == r["PhysicalResourceId"]]
            assert alarm["AlarmActions"] == [outputs["AlertsTopicArn"]], logical_id
    assert physical("Dashboard", "AWS::CloudWatch::Dashboard") == outputs["DashboardName"]

    # Log groups with retention, from the template.
    groups = cloud.client("logs").describe_log_groups()
    retention = {g["logGroupName"]: g.get("retentionInDays") for g in groups["logGroups"]}
    for logical_id, r in resources.items():
        if r["ResourceType"] == "AWS::Logs::LogGroup":
            assert retention[r["PhysicalResourceId"]] == 30, logical_id


def test_each_in_process_function_reports_under_its_own_service(
    cloud: LocalCloud, stack: StackClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """On AWS each function is its own process with its own POWERTOOLS_SERVICE_NAME; in the local
    cloud they share one, and every EMF record must still name the function that wrote it."""
    capsys.readouterr()
    upload = stack.upload_dataset(
        "service-names", to_csv(penguin_rows()), {"target": "species"}, "data.csv"
    )
    result = cloud.wait_for_execution(stack.find_execution(upload))
    assert result["status"] == "SUCCEEDED"
    records = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    owners = {name: metric.service for name, metric in _catalogue_metrics().items()}
    services = set()
    for record in records:
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if metric["Name"] in owners:
                    assert record["service"] == owners[metric["Name"]], metric["Name"]
                    services.add(record["service"])
    assert {"trigger", "preprocess", "train", "evaluate", "register"} <= services


def _catalogue_metrics() -> dict[str, Any]:
    from mlstack.checks.catalogue import by_name

    # Metrics only one function emits tell which function wrote a record.
    return {name: rows[0] for name, rows in by_name().items() if len(rows) == 1}


def test_the_drift_schedule_does_not_fire_on_uploads(cloud: LocalCloud, stack: StackClient) -> None:
    """The Monitor's schedule rule has no event pattern; it must not receive S3 events."""
    assert cloud.lambdas is not None
    monitor = cloud.stack.function_name("MonitorFunction") if cloud.stack else ""
    before = sum(1 for i in cloud.lambdas.invocations if i.function == monitor)
    upload = stack.upload_dataset(
        "no-monitor", to_csv(penguin_rows()), {"target": "species"}, "data.csv"
    )
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    assert sum(1 for i in cloud.lambdas.invocations if i.function == monitor) == before
