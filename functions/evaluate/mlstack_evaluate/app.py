"""Step Functions task: measure the candidates' ONNX exports and production, decide the gate."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.payloads import EvaluateInput, EvaluationSummary
from mlstack_core.settings import FunctionSettings, guard_settings, serving_settings, stack_settings
from mlstack_evaluate.evaluate import handle

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings("evaluate", reads=(stack_settings, guard_settings, serving_settings))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: EvaluateInput, context: LambdaContext) -> EvaluationSummary:
    SETTINGS.check()
    correlate(event)
    return handle(event)
