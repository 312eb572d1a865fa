"""Step Functions tasks: MeasureDataset (where the run trains) and Preprocess (validate the spec
and the uploaded CSV, split it, list the candidates)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.payloads import Compute, ExecutionInput, Run
from mlstack_core.settings import (
    FunctionSettings,
    guard_settings,
    stack_settings,
    training_compute_settings,
)
from mlstack_preprocess.preprocess import handle, measure_dataset

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings(
    "preprocess",
    required=("DATA_BUCKET",),
    reads=(stack_settings, guard_settings, training_compute_settings),
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: ExecutionInput, context: LambdaContext) -> Run | Compute:
    SETTINGS.check()
    correlate(event)
    if event.get("action") == "measure":
        return measure_dataset(event)
    return handle(event)
