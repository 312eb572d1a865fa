"""A per-model run lock in the registry table.

A second upload for a model whose run is still in flight waits: AcquireRunLock fails with
ModelBusy and the state machine's Retry backs off and tries again, so the runs queue instead of
interleaving (two runs evaluating against the same champion, promoting over each other).
"""

from __future__ import annotations

from typing import Any

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
