"""A per-model run lock in the registry table.

A second upload for a model whose run is still in flight waits: AcquireRunLock fails with
ModelBusy and the state machine's Retry backs off and tries again, so the runs queue instead of
interleaving (two runs evaluating against the same champion, promoting over each other).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from mlstack_core.errors import ModelBusy
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics
from mlstack_core.registry import Registry
from mlstack_core.settings import stack_settings


def acquire(model: str, execution_arn: str) -> dict[str, Any]:
    settings = stack_settings()
    holder = Registry(settings.registry_table).acquire_run_lock(
        model, execution_arn, settings.run_lock_lease_seconds
    )
    if holder is not None:
        metrics.add_metric(name="RunsQueued", unit=MetricUnit.Count, value=1)
        logger.info("Queued behind another run", extra={"model": model, "holder": holder})
        raise ModelBusy(f"model {model!r} is being trained by {holder}; this run waits for it")
    metrics.add_metric(name="RunLocksAcquired", unit=MetricUnit.Count, value=1)
    return {"model": model, "holder": execution_arn}


def release(model: str, execution_arn: str) -> dict[str, Any]:
    released = Registry(stack_settings().registry_table).release_run_lock(model, execution_arn)
    if not released:
        # The lease ran out and another run took over; nothing of ours to release.
        logger.warning("Run lock was not held at release", extra={"model": model})
    metrics.add_metric(name="RunLocksReleased", unit=MetricUnit.Count, value=int(released))
    return {"model": model, "released": released}


def release_after_run_ended(event: EventBridgeEvent) -> dict[str, Any]:
    """A run ended FAILED, TIMED_OUT or ABORTED (Step Functions' status change event).

    A run that failed through its own Catch has released its lock and alerted already; here the
    release finds nothing and nothing more is said. A stopped or timed-out run, or a failure no
    Catch reaches, still holds the lock: it is released and the ending alerted, once.
    """
    detail = event.detail
    execution_arn = str(detail["executionArn"])
    status = str(detail["status"])
    model = str(json.loads(detail.get("input") or "{}").get("model") or "")
    logger.set_correlation_id(execution_arn)
    if not model:
        logger.warning("Ended run without a model in its input", extra={"execution": execution_arn})
        return {"released": False, "status": status}
    released = Registry(stack_settings().registry_table).release_run_lock(model, execution_arn)
    metrics.add_metric(name="RunLocksReleased", unit=MetricUnit.Count, value=int(released))
    if released or status != "FAILED":
        _alert_ended_run(model, execution_arn, status, detail)
    logger.info(
        "Run ended",
        extra={"model": model, "status": status, "released_here": released},
    )
    return {"model": model, "status": status, "released": released}


def _alert_ended_run(model: str, execution_arn: str, status: str, detail: dict[str, Any]) -> None:
    error = {"FAILED": "RunFailed", "TIMED_OUT": "RunTimedOut", "ABORTED": "RunAborted"}[status]
    cause = detail.get("cause") or detail.get("error") or f"the run ended {status}"
    boto3.client("sns").publish(
        TopicArn=stack_settings().alerts_topic_arn,
        Subject=f"mlstack: training run {status.lower().replace('_', ' ')}",
        Message=json.dumps(
            {"model": model, "execution": execution_arn, "error": error, "cause": str(cause)}
        ),
        MessageAttributes={
            "event": {"DataType": "String", "StringValue": "Failed"},
            "model": {"DataType": "String", "StringValue": model},
            "error": {"DataType": "String", "StringValue": error},
        },
    )
    metrics.add_metric(name="RunsEndedWithoutCleanup", unit=MetricUnit.Count, value=1)
