"""The Monitor: compare what production has been serving with what it was trained on.

Every schedule tick (template.yaml ``MonitorFunction`` ``Schedule``), for each model with a
production version:

1. Read the prediction function's summaries of that version from the last ``drift.window_hours``
   (``monitoring/<model>/<version>/summaries/<day>/``, written by ``mlstack_core.drift``).
2. With at least ``drift.min_rows`` sampled rows, compute PSI per feature and for the predictions
   against the version's training baseline; the drift score is the largest feature PSI. Each
   feature also reports the share of served values outside its training range, and the alert
   names it (a date years past training).
3. Emit ``DriftScore``, ``PredictionDrift``, ``DriftedFeatures`` and ``DriftSampleRows`` (per model,
   and stack-wide, where the ``DriftDetected`` alarm watches the maximum), and write the report to
   ``monitoring/<model>/<version>/reports/<time>.json`` and ``monitoring/<model>/latest.json``.
4. At or above ``drift.threshold``: publish an alert and, with ``drift.action`` ``retrain`` (the
   default), start a training run on the newest ``datasets/<model>/*.csv`` object version with
   exactly the input the Trigger gives the state machine. The execution name is derived from the
   production version and the dataset version, so the Monitor starts at most one retraining per
   pair however often it runs; a new upload or a new production version allows the next.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from mlstack_core import drift, storage_keys
from mlstack_core.documents import VersionDocument
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model, tracer
from mlstack_core.registry import Registry
from mlstack_core.settings import stack_settings
from mlstack_core.spec import spec_schema
from mlstack_monitor import alerts
from mlstack_monitor.datasets import latest_dataset
from mlstack_monitor.quality import check_quality

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_SUMMARIES = 2000  # newest first: a bounded read per model and tick


def drift_settings(document: VersionDocument) -> dict[str, Any]:
    """The version's spec.drift, with the schema's defaults for fields (or versions) without it."""
    defaults = dict(spec_schema()["properties"]["drift"]["default"])
    configured = (document.get("spec") or {}).get("drift") or {}
    return {**defaults, **configured}


@tracer.capture_method
def read_summaries(
    s3: S3Client, bucket: str, model: str, version: int, since: float, now: float
) -> list[dict[str, Any]]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for day in drift.days_between(since, now):
        prefix = storage_keys.summaries_prefix(model, version, day)
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                written = storage_keys.summary_time(item["Key"])
                if written is not None and written >= since - 1:
                    keys.append(item["Key"])
    keys = sorted(keys, reverse=True)[:MAX_SUMMARIES]
    summaries = []
    for key in keys:
        try:
            summaries.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        except Exception:  # one unreadable summary must not hide the others
            logger.warning("Unreadable drift summary", extra={"key": key}, exc_info=True)
    return summaries


def load_baseline(s3: S3Client, bucket: str, document: VersionDocument) -> dict[str, Any] | None:
    inline = document.get("drift_baseline")
    if isinstance(inline, dict):
        return inline
    key = (document.get("files") or {}).get("baseline")
    if not key:
        return None
    baseline: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return baseline


def retraining_name(model: str, production: int, dataset: dict[str, Any]) -> str:
    identity = json.dumps(["drift", model, production, dataset["key"], dataset["version_id"]])
    return f"{model[:40]}-drift-v{production}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


@tracer.capture_method
def start_retraining(model: str, production: int) -> dict[str, Any]:
    settings = stack_settings()
    dataset = latest_dataset(boto3.client("s3"), settings.data_bucket, model)
    if dataset is None:
        return {"started": False, "reason": f"no datasets/{model}/*.csv to retrain on"}
    client = boto3.client("stepfunctions")
    name = retraining_name(model, production, dataset)
    already = {
        "started": False,
        "reason": "already retrained this production version on this dataset version",
        "execution_name": name,
    }
    # Step Functions answers a repeated StartExecution of a *running* execution (same name and
    # input) with that execution, so ask first: only a new run counts as started.
    execution_arn = (
        settings.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
    )
    try:
        existing = client.describe_execution(executionArn=execution_arn)
        return {**already, "execution_arn": execution_arn, "status": existing["status"]}
    except client.exceptions.ExecutionDoesNotExist:
        pass
    try:
        response = client.start_execution(
            stateMachineArn=settings.state_machine_arn,
            name=name,
            input=json.dumps({"model": model, "dataset": dataset}),
        )
    except client.exceptions.ExecutionAlreadyExists:
        return already
    metrics.add_metric(name="RetrainingRunsStarted", unit=MetricUnit.Count, value=1)
    return {"started": True, "execution_arn": response["executionArn"], "dataset": dataset}


def described(feature: dict[str, Any]) -> str:
    """``placed_at.days_since_epoch (PSI 8.31, 100.0% outside the training range)``: the share
    outside says what PSI does not, that serving left the range the model was trained on."""
    outside = feature.get("outside_range")
    beyond = f", {outside:.1%} outside the training range" if outside else ""
    return f"{feature['name']} (PSI {feature['psi']:.2f}{beyond})"


def publish_alert(model: str, version: int, report: dict[str, Any], action: str) -> None:
    top = [described(f) for f in report["features"][:5]]
    message = {
        "model": model,
        "version": version,
        "score": report["score"],
        "threshold": report["threshold"],
        "prediction_psi": report["prediction_psi"],
        "top_features": top,
        "action": action,
        "retraining": report.get("retraining"),
        "report_key": report.get("report_key"),
    }
    alerts.publish_alert("mlstack: data drift", "Drift", model, message)
    metrics.add_metric(name="DriftAlerts", unit=MetricUnit.Count, value=1)


@tracer.capture_method
def monitor_model(
    model: str, registry: Registry, s3: S3Client, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    settings = stack_settings()
    version = registry.get_alias(model)
    if version is None:
        return {"model": model, "status": "no production version"}
    document = registry.get_version(model, version)
    config = drift_settings(document)
    baseline = load_baseline(s3, settings.model_bucket, document)
    if baseline is None:
        return {"model": model, "version": version, "status": "no baseline"}
    since = now - 3600 * float(config["window_hours"])
    summaries = read_summaries(s3, settings.model_bucket, model, version, since, now)
    report = drift.drift_report(baseline, drift.merge_summaries(summaries))
    report.update(
        model=model,
        version=version,
        threshold=config["threshold"],
        window_hours=config["window_hours"],
        summaries=len(summaries),
        at=datetime.fromtimestamp(now, UTC).isoformat(),
    )
    metrics.add_metric(name="DriftSampleRows", unit=MetricUnit.Count, value=report["rows"])
    if report["rows"] < int(config["min_rows"]):
        report["status"] = "not enough data"
    else:
        drifted = [f for f in report["features"] if f["psi"] >= config["threshold"]]
        report["drifted_features"] = [f["name"] for f in drifted]
        report["status"] = "drift" if report["score"] >= config["threshold"] else "stable"
        metrics.add_metric(name="DriftScore", unit=MetricUnit.NoUnit, value=report["score"])
        metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(drifted))
        if report["prediction_psi"] is not None:
            metrics.add_metric(
                name="PredictionDrift", unit=MetricUnit.NoUnit, value=report["prediction_psi"]
            )
    key = storage_keys.drift_report_key(model, version, now)
    report["report_key"] = key
    if report["status"] == "drift":
        report["action"] = config["action"]
        if config["action"] == "retrain":
            report["retraining"] = start_retraining(model, version)
        publish_alert(model, version, report, config["action"])
    body = json.dumps(report, default=str).encode()
    for target in (key, storage_keys.latest_drift_report_key(model)):
        s3.put_object(
            Bucket=settings.model_bucket, Key=target, Body=body, ContentType="application/json"
        )
    logger.info(
        "Drift checked",
        extra={
            "model": model,
            "version": version,
            "status": report["status"],
            "score": report["score"],
            "rows": report["rows"],
            "drifted_features": report.get("drifted_features", []),
            "retraining": report.get("retraining"),
        },
    )
    return {k: v for k, v in report.items() if k != "features"} | {
        "features": [
            {"name": f["name"], "psi": f["psi"], "outside_range": f.get("outside_range")}
            for f in report["features"]
        ]
    }


def monitor_all(models: Sequence[str] | None = None) -> dict[str, Any]:
    """Check every model (or the given ones): drift, then ground-truth quality
    (``mlstack_monitor.quality``). Each model's metrics are flushed as one EMF record with the
    dimension sets [service] and [service, model]."""
    settings = stack_settings()
    registry = Registry(settings.registry_table)
    s3 = boto3.client("s3")
    names = list(models) if models else registry.list_models()
    results = []
    for model in names:
        per_model(model)
        try:
            result = monitor_model(model, registry, s3)
        except Exception as error:  # one broken model must not stop the others' checks
            logger.exception("Drift check failed", extra={"model": model})
            metrics.add_metric(name="MonitorErrors", unit=MetricUnit.Count, value=1)
            result = {"model": model, "status": "error", "error": repr(error)[:500]}
        try:
            result["quality"] = check_quality(model, registry, s3, settings, time.time())
        except Exception as error:
            logger.exception("Quality check failed", extra={"model": model})
            metrics.add_metric(name="MonitorErrors", unit=MetricUnit.Count, value=1)
            result["quality"] = {"status": "error", "error": repr(error)[:500]}
        results.append(result)
        if metrics.metric_set:
            metrics.flush_metrics()
        else:
            metrics.clear_metrics()
    metrics.add_metric(name="ModelsMonitored", unit=MetricUnit.Count, value=len(names))
    return {"models": results}
