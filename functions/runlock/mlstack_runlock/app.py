"""Step Functions task: take or release a model's run lock, so runs of a model never overlap."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_runlock.runlock import acquire, release


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate(event)
    if event["action"] == "acquire":
        return acquire(event["model"], event["execution_arn"])
    return release(event["model"], event["execution_arn"])
