"""Step Functions task: InspectImport, one ``mlstack import`` upload admitted as a candidate."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_admit.admit import handle
from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.payloads import Admitted, ExecutionInput
from mlstack_core.settings import FunctionSettings, guard_settings, stack_settings

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings("admit", reads=(stack_settings, guard_settings))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: ExecutionInput, context: LambdaContext) -> Admitted:
    SETTINGS.check()
    correlate(event)
    return handle(event)
