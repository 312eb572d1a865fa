"""Scheduled (EventBridge) → data-drift check of every model in production; may start retraining."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import logger, metrics, tracer
from mlstack_core.settings import FunctionSettings, guard_settings, stack_settings
from mlstack_monitor.monitor import monitor_all

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings(
    "monitor",
    required=("DATA_BUCKET", "STATE_MACHINE_ARN", "ALERTS_TOPIC_ARN"),
    reads=(stack_settings, guard_settings),
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    SETTINGS.check()
    logger.set_correlation_id(str(event.get("id") or getattr(context, "aws_request_id", "")))
    models = event.get("models") if isinstance(event, dict) else None
    return monitor_all(models=models)
