"""Step Functions tasks CollectPreparedRun and CollectTrainedCandidate: what a training task on
Fargate left in S3, returned as Preprocess and Train return it, or its failure raised by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.settings import FunctionSettings, stack_settings
from mlstack_taskresult.collect import collect_prepared_run, collect_trained_candidate

if TYPE_CHECKING:  # the payloads import numpy, which this function's layer does not have
    from mlstack_core.payloads import CollectedCandidate, Run, TaskResultInput

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings("taskresult", reads=(stack_settings,))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: TaskResultInput, context: LambdaContext) -> Run | CollectedCandidate:
    SETTINGS.check()
    correlate(event)
    if event["step"] == "preprocess":
        return collect_prepared_run(event)
    return collect_trained_candidate(event)
