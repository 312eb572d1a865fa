"""Take or release a model's run lock, so runs of a model never overlap: a Step Functions task,
and the target of the RunEnded rule for runs that ended without releasing it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.settings import FunctionSettings, run_lock_settings, stack_settings
from mlstack_runlock.runlock import (
    acquire,
    release,
    release_after_run_ended,
    renew,
    renew_for,
)

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings(
    "runlock",
    required=("ALERTS_TOPIC_ARN", "RUN_LOCK_TABLE"),
    reads=(stack_settings, run_lock_settings),
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    SETTINGS.check()
    if "detail-type" in event:
        return release_after_run_ended(EventBridgeEvent(event))
    correlate(event)
    if event["action"] == "acquire":
        return acquire(event["model"], event["execution_arn"])
    if event["action"] == "renew" and "lease_seconds" in event:
        return renew_for(event["model"], event["execution_arn"], int(event["lease_seconds"]))
    if event["action"] == "renew":
        return renew(
            event["model"],
            event["execution_arn"],
            int(event["candidate_count"]),
            int(event["max_concurrency"]),
            event.get("candidate_seconds"),
        )
    return release(event["model"], event["execution_arn"])
