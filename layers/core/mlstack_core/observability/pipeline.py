"""The one place that creates the logger, metrics and tracer for every function.

Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE, set in
template.yaml Globals, so each function reports under its own service.

Dimensions (docs/metrics.md): every metric has the dimension set ``[service]``, so an alarm or a
dashboard can watch the whole stack with one series per function. Metrics about one model also get
``[service, model]`` (``per_model``): model names come from the registry or from the dataset key,
whose pattern bounds them, never from a request. Versions, run ids and candidate ids are metadata,
never dimensions, so the series count grows with the number of models only.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from mlstack_core.settings import PowertoolsSettings

logger = Logger()
metrics = Metrics()
tracer = Tracer()


def service_name() -> str:
    return str(metrics.service or PowertoolsSettings.from_env().service_name or "service_undefined")


def per_model(model: str) -> None:
    """Also publish this invocation's metrics under ``[service, model]``, once however often a
    step asks (a repeated set would count its metrics twice in that set's statistics)."""
    if not model:
        return
    dimensions = {"service": service_name(), "model": model}
    if all(dimensions.items() - existing.items() for existing in metrics.provider.dimension_sets):
        metrics.add_dimensions(**dimensions)


def correlate(event: Any) -> None:
    """Correlation id of a pipeline step: the execution's ARN, which every step of one run gets
    (``execution_arn`` in the event or in ``run``), so one Logs Insights filter follows a run
    across functions. Also puts ``model`` on every log line."""
    if not isinstance(event, dict):
        return
    nested = event.get("run")
    run: dict[str, Any] = nested if isinstance(nested, dict) else {}
    execution = event.get("execution_arn") or run.get("execution_arn")
    model = event.get("model") or run.get("model")
    if execution:
        logger.set_correlation_id(str(execution))
    if model:
        logger.append_keys(model=str(model))


__all__ = ["MetricUnit", "correlate", "logger", "metrics", "per_model", "service_name", "tracer"]
