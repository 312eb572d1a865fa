"""A per-model run lock, in a table of its own (``mlstack_runlock.lock_table``).

A second upload for a model whose run is still in flight waits: AcquireRunLock fails with
ModelBusy and the state machine's Retry backs off and tries again, so the runs queue instead of
interleaving (two runs evaluating against the same champion, promoting over each other).

The lease outlasts any legitimate run and still expires: it is taken for the steps before the
grid is known, then renewed by RenewRunLock for the grid the run trains (``lease_for_grid``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from mlstack_core.errors import ModelBusy, RunLockLost
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics
from mlstack_core.settings import RunLockSettings, run_lock_settings, stack_settings
from mlstack_runlock.lock_table import RunLockTable


def _locks() -> RunLockTable:
    return RunLockTable(run_lock_settings().lock_table)


def lease_for_grid(
    settings: RunLockSettings,
    candidate_count: int,
    max_concurrency: int,
    candidate_seconds: int | None = None,
) -> int:
    """Seconds the rest of a run can take once its grid is known, until it frees the lock: the
    Map's rounds (each candidate within its time limit, ``max_concurrency`` at a time), then
    Evaluate, Register, an alert and the release. ``candidate_seconds``: a training task's limit
    (MeasureDataset's), when the run trains on Fargate; the Train function's otherwise."""
    rounds = math.ceil(max(candidate_count, 1) / max(max_concurrency, 1))
    per_candidate = candidate_seconds or settings.candidate_seconds
    return rounds * per_candidate + settings.after_training_seconds


def acquire(model: str, execution_arn: str) -> dict[str, Any]:
    acquisition = _locks().acquire(model, execution_arn, run_lock_settings().lease_seconds)
    if acquisition.held_by is not None:
        holder = acquisition.held_by
        metrics.add_metric(name="RunsQueued", unit=MetricUnit.Count, value=1)
        logger.info("Queued behind another run", extra={"model": model, "holder": holder})
        raise ModelBusy(f"model {model!r} is being trained by {holder}; this run waits for it")
    if acquisition.taken_over_from is not None:
        # The abnormal case: a run's lease ran out before it released the lock (its release was
        # lost, or it ran past its lease). Its own late release then finds the lock taken.
        logger.warning(
            "Run lock taken over from a run whose lease ran out",
            extra={"model": model, "previous_holder": acquisition.taken_over_from},
        )
    metrics.add_metric(name="RunLocksAcquired", unit=MetricUnit.Count, value=1)
    return {"model": model, "holder": execution_arn}


def renew(
    model: str,
    execution_arn: str,
    candidate_count: int,
    max_concurrency: int,
    candidate_seconds: int | None = None,
) -> dict[str, Any]:
    """RenewRunLock, once Preprocess has listed the candidates: the lease now lasts as long as
    this grid can take to train and evaluate. RunLockLost if another run took the lock over."""
    lease = lease_for_grid(run_lock_settings(), candidate_count, max_concurrency, candidate_seconds)
    return renew_for(model, execution_arn, lease)


def renew_for(model: str, execution_arn: str, lease: int) -> dict[str, Any]:
    """RenewRunLockForPreprocessTask (a lease of ``lease`` seconds: the preprocess task's limit),
    and RenewRunLock's renewal. RunLockLost if another run took the lock over."""
    if not _locks().renew(model, execution_arn, lease):
        raise RunLockLost(
            f"the run lock of {model!r} is no longer held by this run (its lease ran out and "
            f"{_locks().holder(model) or 'no run'} holds it now)"
        )
    return {"model": model, "holder": execution_arn, "lease_seconds": lease}


def release(model: str, execution_arn: str) -> dict[str, Any]:
    """ReleaseRunLockWhileWaiting (a version waits for a person) and ReleaseRunLock (every run's
    end). Finding the lock not held is normal: a run that waited for a person released it
    already, and a later upload may hold it now; a retried release finds its first one done. The
    abnormal case, a lease that ran out under a running run, is told where it shows: a takeover at
    acquire, RunLockLost at renew."""
    released = _locks().release(model, execution_arn)
    if not released:
        logger.info(
            "Run lock already released", extra={"model": model, "holder": _locks().holder(model)}
        )
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
    released = _locks().release(model, execution_arn)
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
