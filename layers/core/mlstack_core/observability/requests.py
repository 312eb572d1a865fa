"""Logging and metrics of the prediction function, priced for a request path of a few microseconds.

- The Powertools Logger, as in every function (same JSON format, service, correlation id).
- Metrics are written as CloudWatch Embedded Metric Format by ``RequestMetrics`` below instead of
  Powertools ``Metrics``: the same EMF document (namespace ``POWERTOOLS_METRICS_NAMESPACE``,
  dimension ``service`` from ``POWERTOOLS_SERVICE_NAME``) at a fraction of the cost (under
  cProfile, Powertools' ``add_metric`` took ~12 µs a call; docs/performance.md).
- No Tracer: importing the X-Ray SDK cost ~190 ms of every cold start and its per-request
  subsegments ~100 µs even with tracing disabled. ``Tracing: Active`` on the function still gives
  X-Ray the invocation's own segment without the SDK.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, Final

import orjson
from aws_lambda_powertools.logging import Logger

from mlstack_core.settings import PowertoolsSettings

logger = Logger()

COUNT: Final = "Count"
MILLISECONDS: Final = "Milliseconds"
PERCENT: Final = "Percent"
NONE: Final = "None"


class RequestMetrics:
    """One EMF record per invocation: metrics keep their order of first use, values are lists."""

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self._units: dict[str, str] = {}
        self._dimensions: dict[str, str] = {}
        self._metadata: dict[str, Any] = {}
        self._served: tuple[str, int, str, int, float] | None = None

    def served(self, model: str, version: int, variant: str, rows: int, latency_ms: float) -> None:
        """The record of an answered prediction request: PredictionRequests, PredictedRows and
        PredictionLatency by model, with the version and variant as metadata. Alone in its
        invocation (the usual case) it is written from a per-model template."""
        self._served = (model, version, variant, rows, latency_ms)

    def _merge_served(self) -> None:
        if self._served is None:
            return
        model, version, variant, rows, latency_ms = self._served
        self._served = None
        self.add_metric("PredictionRequests", COUNT, 1)
        self.add_metric("PredictedRows", COUNT, rows)
        self.add_metric("PredictionLatency", MILLISECONDS, latency_ms)
        self.add_dimension("model", model)
        self.add_metadata("model_version", version)
        self.add_metadata("variant", variant)

    def add_metric(self, name: str, unit: str, value: float) -> None:
        if not math.isfinite(value):  # CloudWatch rejects NaN/Infinity values: nothing to record
            return
        values = self._values.get(name)
        if values is None:
            self._values[name] = [float(value)]
            self._units[name] = unit
        else:
            values.append(float(value))

    def add_dimension(self, name: str, value: str) -> None:
        self._dimensions[name] = str(value)

    def add_metadata(self, key: str, value: Any) -> None:
        self._metadata[key] = value

    def clear(self) -> None:
        self._served = None
        if self._values or self._dimensions or self._metadata:
            self._values.clear()
            self._units.clear()
            self._dimensions.clear()
            self._metadata.clear()

    def flush(self) -> None:
        """Print the record (Lambda ships stdout to CloudWatch Logs, which extracts the metrics)."""
        namespace, service, disabled = _settings[0] if _settings else _environment()
        if disabled:
            self.clear()
            return
        served = self._served
        if served is not None and not self._values and not self._metadata:
            self._served = None
            self._dimensions.clear()
            model, version, variant, rows, latency_ms = served
            head, tail = _served_template(namespace, service, model, variant)
            sys.stdout.write(
                f"{head}{int(time.time() * 1000)}{tail}{int(version)},"
                f'"PredictedRows":[{float(rows)!r}],"PredictionLatency":[{float(latency_ms)!r}]}}\n'
            )
            return
        self._merge_served()
        if not self._values:
            self.clear()
            return
        dimensions = self._dimensions
        dimensions["service"] = service
        # The directive (names, units, dimension names) repeats request after request: it is
        # serialised once per shape, only the values are encoded each time.
        shape = (tuple(dimensions), tuple(self._units.items()))
        directive = _directives.get(shape)
        if directive is None:
            directive = _directive(namespace, list(dimensions), self._units)
            _directives[shape] = directive
        values = orjson.dumps(dimensions | self._metadata | self._values, default=str)
        self.clear()
        sys.stdout.write(
            f'{{"_aws":{{"Timestamp":{int(time.time() * 1000)},"CloudWatchMetrics":{directive}}},'
            f"{values[1:].decode()}\n"
        )


_directives: dict[tuple[Any, ...], str] = {}
_served_templates: dict[tuple[str, ...], tuple[str, str]] = {}
_SERVED_UNITS: Final = {
    "PredictionRequests": COUNT,
    "PredictedRows": COUNT,
    "PredictionLatency": MILLISECONDS,
}


def _directive(namespace: str, dimensions: list[str], units: dict[str, str]) -> str:
    """The ``CloudWatchMetrics`` part of an EMF record, as JSON."""
    return json.dumps(
        [
            {
                "Namespace": namespace,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit in units.items()],
            }
        ],
        separators=(",", ":"),
    )


def _served_template(namespace: str, service: str, model: str, variant: str) -> tuple[str, str]:
    """The EMF line of a served request around its timestamp and values, built once per model
    and variant: the same document RequestMetrics.flush writes, without assembling it each time."""
    key = (namespace, service, model, variant)
    template = _served_templates.get(key)
    if template is None:
        directive = _directive(namespace, ["model", "service"], _SERVED_UNITS)
        fixed = json.dumps(
            {"model": model, "service": service, "variant": variant}, separators=(",", ":")
        )[1:-1]
        template = (
            '{"_aws":{"Timestamp":',
            f',"CloudWatchMetrics":{directive}}},{fixed},"PredictionRequests":[1.0],'
            '"model_version":',
        )
        if len(_served_templates) > 256:  # bounded: models are few, but never let it grow
            _served_templates.clear()
        _served_templates[key] = template
    return template


_settings: list[tuple[str, str, bool]] = []


def _environment() -> tuple[str, str, bool]:
    """(namespace, service, disabled), read from the environment once per container."""
    if not _settings:
        read = PowertoolsSettings.from_env()
        _settings.append(
            (
                read.metrics_namespace or "mlstack",
                read.service_name or "predict",
                read.metrics_disabled,
            )
        )
    return _settings[0]


def refresh() -> None:
    """Re-read the environment (tests, and the local cloud, change it between invocations)."""
    _settings.clear()
    _directives.clear()
    _served_templates.clear()
    _formatter.clear()


metrics = RequestMetrics()

_cold_start = True
_warm_keys = False  # cold_start=False and the context keys are on the logger already
# The logger's formatter, looked up once: Logger.append_keys resolves handler and formatter
# through properties on every call (~1 µs of a ~50 µs request).
_formatter: list[Any] = []


def start_invocation(context: Any, request_id: str | None) -> None:
    """Per invocation: Lambda context keys on the logger (as Powertools' inject_lambda_context
    does), the correlation id, and the ColdStart metric on the first invocation."""
    global _cold_start, _warm_keys  # noqa: PLW0603 - one container, one cold start
    metrics.clear()
    if _warm_keys and _formatter and not _cold_start:  # every warm invocation after the first
        _formatter[0].append_keys(
            function_request_id=getattr(context, "aws_request_id", None),
            correlation_id=request_id,
        )
        return
    if not _formatter:
        _formatter.append(logger.registered_formatter)
    if _cold_start:
        _cold_start = False
        if context is not None:
            logger.append_keys(
                function_name=getattr(context, "function_name", None),
                function_memory_size=getattr(context, "memory_limit_in_mb", None),
                function_arn=getattr(context, "invoked_function_arn", None),
            )
        cold = RequestMetrics()
        cold.add_metric("ColdStart", COUNT, 1)
        if context is not None:
            cold.add_dimension("function_name", getattr(context, "function_name", ""))
        cold.flush()
        cold_start = True
    else:
        cold_start = False
        _warm_keys = True
    logger.append_keys(
        cold_start=cold_start,
        function_request_id=getattr(context, "aws_request_id", None),
        correlation_id=request_id,
    )


__all__ = [
    "COUNT",
    "MILLISECONDS",
    "NONE",
    "PERCENT",
    "RequestMetrics",
    "logger",
    "metrics",
    "refresh",
    "start_invocation",
]
