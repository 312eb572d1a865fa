"""Step Functions task: measure the candidates' ONNX exports and production, decide the gate."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.payloads import EvaluateInput, Evaluation
from mlstack_evaluate.evaluate import handle


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: EvaluateInput, context: LambdaContext) -> Evaluation:
    correlate(event)
    return handle(event)
