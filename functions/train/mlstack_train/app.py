"""Step Functions Map iteration: fit one candidate and export it to ONNX."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.payloads import TrainedEntry, TrainInput
from mlstack_core.settings import FunctionSettings, stack_settings
from mlstack_train.train import handle

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings("train", reads=(stack_settings,))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: TrainInput, context: LambdaContext) -> TrainedEntry:
    SETTINGS.check()
    correlate(event)
    return handle(event)
