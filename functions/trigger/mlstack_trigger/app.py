"""EventBridge "Object Created" in the data bucket → one training run per dataset version, one
scoring job per batch file version."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import logger, metrics, tracer
from mlstack_core.settings import FunctionSettings, guard_settings, stack_settings
from mlstack_trigger.trigger import Upload, start_run

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings(
    "trigger",
    required=("STATE_MACHINE_ARN", "SCORING_STATE_MACHINE_ARN", "ALERTS_TOPIC_ARN"),
    reads=(stack_settings, guard_settings),
)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    SETTINGS.check()
    notification = S3EventBridgeNotificationEvent(event)
    detail = notification.detail
    upload = Upload(
        bucket=detail.bucket.name,
        key=detail.object.key,
        version_id=detail.object.version_id,
        etag=detail.object.etag,
        size=detail.object.size,
        sequencer=detail.object.sequencer,
        requester=detail.requester,
    )
    return start_run(upload)
