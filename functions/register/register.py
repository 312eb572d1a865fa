"""Registry writes at the end of a training run.

Every evaluated challenger becomes a registry version, promoted or not, so each run can be explained
from its registry entry. Promotion is a conditional alias move: it succeeds only if production still
points at the champion that Evaluate compared against.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import boto3

from mlstack_core.errors import ChampionChanged
from mlstack_core.observability import MetricUnit, logger, metrics
from mlstack_core.registry import (
    STATUS_APPROVED,
    STATUS_REGISTERED,
    STATUS_REJECTED,
    AliasConflict,
    Registry,
)
from mlstack_core.settings import stack_settings

PIPELINE_ACTOR = "pipeline"


def version_document(run: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to explain and reproduce this version."""
    best = evaluation["best"]
    return {
        "family": best["family"],
        "candidate_id": best["candidate_id"],
        "params": best.get("params", {}),
        "task": run["task"],
        "metric": evaluation["metric"],
        "metrics": best.get("metrics", {}),
        "parity": best.get("parity", {}),
        "schema": run["schema"],
        "classes": run["schema"].get("classes"),
        "dataset": run["dataset"],
        "splits": run.get("splits", {}),
        "warnings": run.get("warnings", []),
        "spec": run["spec"],
        "run_id": run["run_id"],
        "execution_arn": run.get("execution_arn"),
        "library_versions": best.get("library_versions", {}),
        "timings": {
            "fit_seconds": best.get("fit_seconds"),
            "export_seconds": best.get("export_seconds"),
        },
        "champion": evaluation.get("champion"),
        "baseline": evaluation.get("baseline"),
        "decision_reasons": evaluation.get("reasons", []),
        "evaluation_key": evaluation.get("report_key"),
    }


def publish_artifact(model: str, version: int, source_key: str) -> dict[str, Any]:
    """Copy the winning ONNX file to its permanent versioned place and fingerprint it."""
    bucket = stack_settings().model_bucket
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=bucket, Key=source_key)["Body"].read()
    key = f"models/{model}/{version}/model.onnx"
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
    return {
        "bucket": bucket,
        "key": key,
        "version_id": put.get("VersionId"),
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
    }


def run_seconds(execution_started: str | None) -> float | None:
    """Seconds since the execution started ($$.Execution.StartTime, ISO 8601)."""
    if not execution_started:
        return None
    started = datetime.fromisoformat(execution_started.replace("Z", "+00:00"))
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return (datetime.now(UTC) - started).total_seconds()


def register_challenger(
    action: str,
    run: dict[str, Any],
    evaluation: dict[str, Any],
    execution_started: str | None = None,
) -> dict[str, Any]:
    model = run["model"]
    duration = run_seconds(execution_started)
    if duration is not None:
        metrics.add_metric(name="PipelineDuration", unit=MetricUnit.Seconds, value=duration)
    registry = Registry(stack_settings().registry_table)
    version = registry.allocate_version(model)
    document = version_document(run, evaluation)
    document["timings"]["run_seconds_before_register"] = duration
    document["artifact"] = publish_artifact(model, version, evaluation["best"]["onnx_key"])
    boto3.client("s3").put_object(
        Bucket=document["artifact"]["bucket"],
        Key=f"models/{model}/{version}/metadata.json",
        Body=json.dumps(document, indent=2, default=str).encode(),
        ContentType="application/json",
    )
    metrics.add_dimension(name="model", value=model)

    if action == "reject":
        reason = "; ".join(evaluation.get("reasons", [])) or "rejected by the gate"
        registry.put_version(model, version, STATUS_REJECTED, {**document, "status_reason": reason})
        metrics.add_metric(name="Rejections", unit=MetricUnit.Count, value=1)
        logger.info(
            "Challenger rejected", extra={"model": model, "version": version, "reason": reason}
        )
        return {
            "model": model,
            "version": version,
            "status": STATUS_REJECTED,
            "promoted": False,
            "reason": reason,
            "production": registry.get_alias(model),
        }

    champion = evaluation.get("champion") or {}
    expected = champion.get("version")
    registry.put_version(model, version, STATUS_REGISTERED, document)
    reason = "; ".join(evaluation.get("reasons", [])) or "passed the gate"
    try:
        registry.move_alias(model, version, expected=expected, actor=PIPELINE_ACTOR, reason=reason)
    except AliasConflict as conflict:
        metrics.add_metric(name="PromotionConflicts", unit=MetricUnit.Count, value=1)
        registry.set_status(
            model, version, STATUS_REGISTERED, PIPELINE_ACTOR, f"not promoted: {conflict}"
        )
        raise ChampionChanged(
            f"production of {model!r} moved during this run ({conflict}); version {version} is "
            "registered but not promoted"
        ) from conflict
    registry.set_status(model, version, STATUS_APPROVED, PIPELINE_ACTOR, reason)
    metrics.add_metric(name="Promotions", unit=MetricUnit.Count, value=1)
    logger.info("Promoted", extra={"model": model, "version": version, "previous": expected})
    return {
        "model": model,
        "version": version,
        "status": STATUS_APPROVED,
        "promoted": True,
        "previous": expected,
        "artifact": document["artifact"],
    }
