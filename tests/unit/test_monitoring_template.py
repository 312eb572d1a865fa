"""Alarms, dashboard and the alerts topic in template.yaml, checked against the metrics catalogue.

Every metric an alarm or the dashboard names must be one the code emits
(mlstack/checks/catalogue.py, held to the code by tests/unit/test_metrics_catalogue.py). The
mutation tests change the name on one side only, template or code (catalogue), and the check must
report it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.checks import catalogue
from mlstack.checks.catalogue import AWS_METRICS, FUNCTIONS, METRICS
from mlstack.checks.template.metric_refs import check_metric_names, metric_references
from mlstack.checks.template.translated import Resolver
from tests.helpers.template import mutate, real

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in real()["Resources"].items() if v["Type"] == kind}


def test_every_alarm_and_dashboard_metric_is_emitted_by_the_code() -> None:
    assert check_metric_names(real(), METRICS, AWS_METRICS) == []
    named = {(r.namespace, r.name) for r in metric_references(real())}
    # The alarms: 5xx rate, p99 latency, throttles, pipeline failures, gate rejections in a
    # row, drift score.
    assert {
        ("AWS/ApiGateway", "5XXError"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/States", "ExecutionsFailed"),
        ("mlstack/mlstack", "ConsecutiveRejections"),
        ("mlstack/mlstack", "DriftScore"),
    } <= named
    assert len(named) >= 30, "the dashboard shows serving, pipeline, registry and drift"
    explanations = {"ExplainRequests", "ExplainErrors", "ExplainedRows", "ExplainLatency"}
    assert {("mlstack/mlstack", name) for name in explanations} <= named


def test_catalogue_services_are_the_templates_functions() -> None:
    functions = _resources("AWS::Lambda::Function")
    services = {
        logical_id: function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for logical_id, function in functions.items()
    }
    assert services == FUNCTIONS
    assert {m.service for m in METRICS} <= set(FUNCTIONS.values())


def test_metrics_doc_is_generated_from_the_catalogue() -> None:
    assert (ROOT / "docs/metrics.md").read_text() == catalogue.render(), (
        "run: .venv/bin/python -m mlstack.checks.catalogue --write"
    )


def test_every_alarm_alerts_the_topic() -> None:
    alarms = _resources("AWS::CloudWatch::Alarm")
    assert "TriggerDeadLettersAlarm" in alarms  # an upload that started no run is not silent
    assert "QualityAlarm" in alarms  # fallen ground-truth quality is an alarm state too
    assert len(alarms) == 9
    for name, alarm in alarms.items():
        assert {"Ref": "AlertsTopic"} in alarm["Properties"]["AlarmActions"], name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name


def test_alerts_topic_key_lets_cloudwatch_alarms_publish() -> None:
    """alias/aws/sns cannot be used by CloudWatch alarms; the topic has its own key whose policy
    lets cloudwatch.amazonaws.com use it, for this account's alarms of this stack only."""
    topic = real()["Resources"]["AlertsTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlertsKey"}
    key = real()["Resources"]["AlertsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    statements = key["KeyPolicy"]["Statement"]
    cloudwatch = next(
        s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    )
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    resolver = Resolver(real())
    assert resolver.value(cloudwatch["Condition"]["StringEquals"]["aws:SourceAccount"])
    source = resolver.value(cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"])
    prefix = source.split(":alarm:")[1]
    assert prefix == "mlstack-*"
    for alarm in _resources("AWS::CloudWatch::Alarm").values():
        assert resolver.value(alarm["Properties"]["AlarmName"]).startswith(prefix[:-1])


def test_monitor_runs_on_a_schedule_parameter() -> None:
    rule = real()["Resources"]["MonitorFunctionDriftCheck"]
    assert rule["Type"] == "AWS::Events::Rule"
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "DriftCheckSchedule"}


# ------------------------------------------------------------------------------ one side only
def _rename_alarm_metric(template: dict[str, Any]) -> None:
    template["Resources"]["DriftAlarm"]["Properties"]["MetricName"] = "DriftScores"


def _rename_dashboard_metric(template: dict[str, Any]) -> None:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    text, variables = body["Fn::Sub"]
    assert '"Promotions", "service", "register"' in text
    body["Fn::Sub"] = [text.replace('"Promotions", "service"', '"Promotion", "service"'), variables]


def _rename_dashboard_search(template: dict[str, Any]) -> None:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    text, variables = body["Fn::Sub"]
    assert 'MetricName=\\"PredictionLatency\\"' in text
    body["Fn::Sub"] = [text.replace("PredictionLatency", "PredictLatency"), variables]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_rename_alarm_metric, "DriftAlarm: mlstack/mlstack 'DriftScores'"),
        (_rename_dashboard_metric, "'Promotion' [service]: no function emits"),
        (_rename_dashboard_search, "'PredictLatency' [model, service]: no function emits"),
    ],
)
def test_a_metric_renamed_in_the_template_only_is_caught(
    tmp_path: Path, edit: Any, expected: str
) -> None:
    problems = check_metric_names(mutate(tmp_path, template=edit), METRICS, AWS_METRICS)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_a_metric_renamed_in_the_code_only_is_caught() -> None:
    """The catalogue is what the code emits (test_metrics_catalogue.py fails otherwise); renaming
    DriftScore there leaves the alarm and the dashboard naming a metric nobody emits."""
    renamed = [
        dataclasses.replace(m, name="DriftScores") if m.name == "DriftScore" else m for m in METRICS
    ]
    problems = check_metric_names(real(), renamed, AWS_METRICS)
    assert any("DriftAlarm" in p and "'DriftScore'" in p for p in problems), problems
    assert any("Dashboard" in p and "'DriftScore'" in p for p in problems), problems


def test_a_service_dimension_naming_the_wrong_function_is_caught(tmp_path: Path) -> None:
    def edit(template: dict[str, Any]) -> None:
        alarm = template["Resources"]["RejectionsInARowAlarm"]["Properties"]
        alarm["Dimensions"][0]["Value"] = "evaluate"

    problems = check_metric_names(mutate(tmp_path, template=edit), METRICS, AWS_METRICS)
    assert problems
    assert "emitted only as register" in problems[0]


def test_dashboard_body_is_valid_json_with_real_resources() -> None:
    resolver = Resolver(real())
    body = json.loads(
        resolver.value(real()["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    )
    alarms = next(w for w in body["widgets"] if w["type"] == "alarm")
    # Every alarm of the stack, each once.
    names = sorted(arn.rsplit(":", 1)[1] for arn in alarms["properties"]["alarms"])
    declared = _resources("AWS::CloudWatch::Alarm").values()
    assert names == sorted(str(resolver.value(a["Properties"]["AlarmName"])) for a in declared)
