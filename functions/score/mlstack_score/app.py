"""Step Functions tasks of a batch scoring job: resolve, score a batch, summarise."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.settings import FunctionSettings, serving_settings, stack_settings
from mlstack_score.score import resolve_job, score_batch, summarise_job

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings("score", reads=(stack_settings, serving_settings))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    SETTINGS.check()
    action = event["action"]
    if action == "resolve":
        correlate(event["request"])
        return resolve_job(event["request"])
    if action == "score":
        return score_batch(event["BatchInput"]["job"], event["Items"])
    if action == "summarise":
        correlate(event["job"])
        return summarise_job(event["job"], event["scored"])
    raise ValueError(f"unknown action {action!r}")
