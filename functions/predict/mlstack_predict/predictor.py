"""The prediction service: one container's answer to each API request.

A request is routed (``routing``: production, canary, or a pinned version), its model comes from
the session cache (``sessions``), and the body becomes an answer through the serving contract
(``mlstack_core.contract``), the same code the training gate scores and rehearses with. Drift
samples and shadow comparisons are recorded on the way out; the summaries and captures that fall
due are written by a background thread (``monitoring_writer``), never by the request that made
them due. scikit-learn never loads on this path: its import alone costs seconds of cold start
(docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np

from mlstack_core.capture import CaptureRecorder
from mlstack_core.contract import Batch, LoadedModel, format_outputs, parse_body
from mlstack_core.drift import DriftRecorder
from mlstack_core.errors import AwsHttpError, ModelLoadError, ModelNotFound, RequestError, shown
from mlstack_core.observability.requests import (
    COUNT,
    MILLISECONDS,
    NONE,
    PERCENT,
    logger,
    metrics,
    refresh,
)
from mlstack_core.settings import ServingSettings, serving_settings, stack_settings
from mlstack_predict.awshttp import AwsHttp, HttpRegistry
from mlstack_predict.monitoring_writer import MonitoringWriter
from mlstack_predict.routing import (
    VARIANT_CANARY,
    VARIANT_PINNED,
    VARIANT_PRODUCTION,
    AliasCache,
    Routing,
    compare_outputs,
)
from mlstack_predict.sessions import SessionCache

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from mlstack_core.documents import VersionDocument
    from mlstack_core.registry import RegistryReader
    from mlstack_predict.explainer import BackgroundCache

# Metric dimension for requests whose model is not in the registry: the path segment is caller
# input, and using it as a dimension would let anyone create unbounded CloudWatch metrics.
UNKNOWN_MODEL_DIMENSION: Final = "(unknown)"


def production_of(routing: Routing) -> int:
    """Production's version: AliasCache.get refuses a model that has none."""
    return cast(int, routing.production)


@dataclass
class Predictor:
    """Per-container state: the alias cache, the session cache and the drift sample."""

    registry: RegistryReader  # mlstack_core.registry.Registry, or awshttp.HttpRegistry
    s3: S3Client | AwsHttp
    settings: ServingSettings
    # What a failed AWS call raises with this registry/S3 client (botocore's or awshttp's).
    aws_errors: tuple[type[Exception], ...] = (AwsHttpError,)
    # Sampled input/output counts for the Monitor function's drift check (DRIFT_* settings).
    drift: DriftRecorder = field(
        default_factory=lambda: DriftRecorder.from_settings(serving_settings())
    )
    # Sampled rows and answers of models that opted in, for ground-truth joins (CAPTURE_*).
    capture: CaptureRecorder = field(init=False)
    aliases: AliasCache = field(init=False)
    sessions: SessionCache = field(init=False)
    # Each version's background rows for its explanations, made on the first explain request.
    backgrounds: BackgroundCache | None = field(default=None, init=False)
    # Puts the due drift summaries and captures off the answer's path.
    monitoring: MonitoringWriter = field(init=False)
    _monitoring_http: tuple[AwsHttp, AwsHttp] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.aliases = AliasCache(self.registry, self.settings, self.aws_errors)
        self.sessions = SessionCache(self.registry, self.s3, self.settings, self.aws_errors)
        self.capture = CaptureRecorder.from_settings(
            self.settings.capture_sample_rate, self.settings.capture_flush_seconds
        )
        self.monitoring = MonitoringWriter(self._put_monitoring)

    def model_for(self, model: str) -> LoadedModel:
        """The session to serve ``model`` with; falls back to the last good version on failure."""
        routing = self.aliases.get(model)
        return self.sessions.production(model, production_of(routing))

    def choose(self, model: str) -> tuple[LoadedModel, str, Routing]:
        """The model answering this request: the canary for its share of requests (when it
        loads), else production."""
        routing = self.aliases.get(model)
        if routing.canary is not None and self.aliases.canary_turn(routing):
            canary = self.sessions.optional(model, routing.canary)
            if canary is not None:
                return canary, VARIANT_CANARY, routing
            metrics.add_metric("CanaryFallbacks", COUNT, 1)
        production = self.sessions.production(model, production_of(routing))
        return production, VARIANT_PRODUCTION, routing

    def pinned(self, model: str, version: int) -> LoadedModel:
        try:
            aliased = self.aliases.get(model).aliased(version)
        except ModelNotFound:  # no production yet: an approved version may still be pinned
            aliased = False
        return self.sessions.pinned(model, version, aliased)

    def predict(
        self,
        model: str,
        body: str | None,
        is_base64: bool = False,
        *,
        version: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """One POST /models/<model>/predict; records the request metrics whatever happens."""
        started = time.perf_counter()
        dimension = UNKNOWN_MODEL_DIMENSION
        try:
            if version is None:
                loaded, variant, routing = self.choose(model)
            else:
                loaded = self.pinned(model, parse_version(version, "version"))
                variant, routing = VARIANT_PINNED, None
            dimension = model  # a registered name: bounded cardinality
            batch = parse_body(body, is_base64, self.settings)
            feeds, outputs = loaded.run_request(batch)
            result = {
                "model": model,
                "version": loaded.version,
                "variant": variant,
                "request_id": request_id,
                **format_outputs(loaded.layout, outputs),
            }
        except Exception:
            metrics.add_metric("PredictionRequests", COUNT, 1)
            metrics.add_metric("PredictionErrors", COUNT, 1)
            metrics.add_dimension("model", dimension)
            raise
        if variant == VARIANT_CANARY:
            metrics.add_metric("CanaryRequests", COUNT, 1)
        metrics.served(
            model, loaded.version, variant, batch.size, (time.perf_counter() - started) * 1000
        )
        self._record_drift(model, loaded, feeds, outputs)
        if self.capture.sample_rate > 0:  # off (the usual case): nothing to do on the hot path
            self._capture(model, loaded, batch, result)
        if routing is not None and routing.shadow is not None and routing.shadow != loaded.version:
            shadow = self._shadow(model, routing.shadow, batch, loaded, outputs)
            if shadow is not None:
                result["shadow_version"] = shadow
        return result

    def explain(
        self,
        model: str,
        body: str | None,
        is_base64: bool = False,
        *,
        version: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """One POST /models/<model>/explain: production's answer (or ``version``'s) and why, per
        row; records the request metrics whatever happens."""
        # Imported here: the explanation code stays out of the predict path's cold start.
        from mlstack_predict.explainer import BackgroundCache, check_rows, explanation_answer

        started = time.perf_counter()
        dimension = UNKNOWN_MODEL_DIMENSION
        try:
            if version is None:
                loaded = self.model_for(model)
            else:
                loaded = self.pinned(model, parse_version(version, "version"))
            dimension = model  # a registered name: bounded cardinality
            batch = parse_body(body, is_base64, self.settings)
            check_rows(batch, self.settings)
            if self.backgrounds is None:
                self.backgrounds = BackgroundCache(self.s3, stack_settings().model_bucket)
            answer = explanation_answer(loaded, batch, self.backgrounds.get(loaded), self.settings)
        except Exception:
            metrics.add_metric("ExplainRequests", COUNT, 1)
            metrics.add_metric("ExplainErrors", COUNT, 1)
            metrics.add_dimension("model", dimension)
            raise
        metrics.add_metric("ExplainRequests", COUNT, 1)
        metrics.add_metric("ExplainedRows", COUNT, batch.size)
        metrics.add_metric("ExplainLatency", MILLISECONDS, (time.perf_counter() - started) * 1000)
        metrics.add_dimension("model", model)
        return {"model": model, "version": loaded.version, "request_id": request_id, **answer}

    def _capture(
        self, model: str, loaded: LoadedModel, batch: Batch, result: dict[str, Any]
    ) -> None:
        dropped = self.capture.dropped
        captures = self.capture.record(model, loaded.layout, loaded.document, batch, result)
        dropped = self.capture.dropped - dropped
        if dropped:  # the container's capture buffer was full: those rows are not kept
            metrics.add_metric("CaptureDropped", COUNT, dropped)
        self._write_monitoring(captures)

    def _record_drift(
        self, model: str, loaded: LoadedModel, feeds: dict[str, np.ndarray], outputs: list[Any]
    ) -> None:
        """Count a sample of what was served; write the summaries that are due. Best effort: a
        failed write is logged and the prediction is answered anyway."""
        # Drift counts the prediction only: the first output (label, or a regressor's variable).
        predicted = {loaded.layout.output_names[0]: outputs[0]}
        self._write_monitoring(
            self.drift.record(model, loaded.version, loaded.document, feeds, predicted)
        )

    def _write_monitoring(self, due: list[tuple[str, bytes]]) -> None:
        """Hand the drift summaries or captures that are due to the background writer: this
        request does not wait for S3. Best effort: a failed write, or one the full queue drops,
        is logged, and the prediction is answered anyway."""
        if due:
            self.monitoring.submit(due)

    def _put_monitoring(self, key: str, body: bytes) -> None:
        """One object into the model bucket (the background writer's thread)."""
        client: S3Client | AwsHttp = self.s3
        if isinstance(client, AwsHttp):  # its connections belong to the serving path's thread
            if self._monitoring_http is None or self._monitoring_http[0] is not client:
                self._monitoring_http = (client, client.for_another_thread())
            client = self._monitoring_http[1]
        client.put_object(
            Bucket=stack_settings().model_bucket,
            Key=key,
            Body=body,
            ContentType="application/x-ndjson" if key.endswith(".jsonl") else "application/json",
        )

    def _shadow(
        self,
        model: str,
        version: int,
        batch: Batch,
        served: LoadedModel,
        served_outputs: list[np.ndarray],
    ) -> int | None:
        """Score the shadow on the same rows and record how far it is from what was served.

        Runs after the answer is ready (its latency is not in PredictionLatency) but before the
        handler returns: Lambda freezes the container after that, so nothing can run later.
        A shadow that fails never changes the answer: it only counts ShadowErrors.
        """
        started = time.perf_counter()
        try:
            shadow = self.sessions.optional(model, version)
            if shadow is None:
                raise ModelLoadError("shadow version cannot be loaded")
            _, outputs = shadow.run_request(batch)
            agreement, difference = compare_outputs(served, served_outputs, shadow, outputs)
        except Exception as error:
            metrics.add_metric("ShadowErrors", COUNT, 1)
            logger.warning(
                "Shadow scoring failed",
                extra={"model": model, "shadow_version": version, "reason": repr(error)},
            )
            return None
        metrics.add_metadata("shadow_version", version)
        metrics.add_metric("ShadowRequests", COUNT, 1)
        metrics.add_metric("ShadowAgreement", PERCENT, agreement * 100)
        metrics.add_metric("ShadowMaxAbsDiff", NONE, difference)
        metrics.add_metric("ShadowLatency", MILLISECONDS, (time.perf_counter() - started) * 1000)
        return version

    def describe(self, model: str) -> dict[str, Any]:
        """GET /models/<model>: production metadata, challengers and every version, read fresh."""
        aliases = self.registry.aliases(model)
        routing = Routing.from_aliases(aliases)
        production = routing.production
        versions = sorted(self.registry.list_versions(model), key=lambda d: int(d["version"]))
        if production is None and not versions:
            raise ModelNotFound(f"no model named {model!r}")
        current = next((d for d in versions if int(d["version"]) == production), None)
        return {
            "model": model,
            "production_version": production,
            "production": public_view(current) if current else None,
            "canary": (
                {"version": routing.canary, "share": routing.canary_share}
                if routing.canary is not None
                else None
            ),
            "shadow": {"version": routing.shadow} if routing.shadow is not None else None,
            "versions": [_version_summary(d) for d in versions],
        }

    def version_document(self, model: str, version: str) -> dict[str, Any]:
        """GET /models/<model>/versions/<version>: metadata, metrics and schema of one version."""
        number = parse_version(version, "path", not_found=True)
        document = self.registry.get_version(model, number)
        aliases = self.registry.aliases(model)
        return {
            "model": model,
            **public_view(document),
            "aliases": sorted(
                name for name, entry in aliases.items() if entry["version"] == number
            ),
        }

    def list_models(self) -> dict[str, Any]:
        names = sorted(self.registry.list_models())
        return {
            "models": [
                {"model": name, "production_version": self.registry.get_alias(name)}
                for name in names
            ]
        }


def parse_version(text: str, where: str, *, not_found: bool = False) -> int:
    """A version number from the caller: a positive integer written in plain digits."""
    if text.isascii() and text.isdigit() and 0 < len(text) <= 9 and int(text) > 0:
        return int(text)
    message = f"version must be a positive integer, got {shown(text)!r}"
    if not_found:
        raise ModelNotFound(message)
    raise RequestError(message, [{"field": where, "message": message}])


# What a client may know of a version: what it predicts from which inputs, and how well. Not the
# buckets, keys and hashes of its files, the run and the people behind it, library versions, drift
# baselines or data warnings (which quote cell values): those are for the operators, through the
# registry (``mlstack models``, ``mlstack card``).
PUBLIC_FIELDS = ("version", "status", "created_at", "task", "family", "metric", "metrics")
# Not "reason": it quotes a cell of the training data.
PUBLIC_FEATURE_FIELDS = ("name", "kind", "categories", "format", "parts", "first", "last")


def public_view(document: VersionDocument) -> dict[str, Any]:
    """The allow-listed part of a version document served by GET /models/... routes."""
    schema: Mapping[str, Any] = document.get("schema") or {}
    view: dict[str, Any] = {name: document.get(name) for name in PUBLIC_FIELDS}
    view["schema"] = {
        "target": schema.get("target"),
        "task": schema.get("task"),
        "numeric": list(schema.get("numeric") or []),
        "categorical": list(schema.get("categorical") or []),
        "datetime": list(schema.get("datetime") or []),
        "text": list(schema.get("text") or []),
        "identifiers": [str(i["name"]) for i in schema.get("identifiers") or []],
        "features": [
            {k: feature[k] for k in PUBLIC_FEATURE_FIELDS if k in feature}
            for feature in schema.get("features") or []
        ],
    }
    if schema.get("classes") is not None:
        view["schema"]["classes"] = list(schema["classes"])
    return view


def _version_summary(document: VersionDocument) -> dict[str, Any]:
    name = document.get("metric")
    scores = document.get("metrics") or {}
    return {
        "version": document.get("version"),
        "status": document.get("status"),
        "created_at": document.get("created_at"),
        "metric": {"name": name, "value": scores.get(name)} if name else None,
    }


_predictor: Predictor | None = None


def get_predictor() -> Predictor:
    """The container's Predictor, built on first use (never at import: settings come from env).
    ``settings.aws_client`` picks the AWS client: ``http`` (template.yaml; no boto3 on the cold
    path) or ``boto3`` (the default: tests and the local cloud, where moto patches botocore)."""
    global _predictor  # noqa: PLW0603 - one per container is the point: it holds the caches
    if _predictor is None:
        settings = serving_settings()
        table = stack_settings().registry_table
        aws = AwsHttp.from_environment() if settings.aws_client == "http" else None
        if aws is not None:
            _predictor = Predictor(registry=HttpRegistry(table, aws), s3=aws, settings=settings)
        else:
            import boto3
            from botocore.exceptions import BotoCoreError, ClientError

            from mlstack_core.registry import Registry

            _predictor = Predictor(
                registry=Registry(table),
                s3=boto3.client("s3"),
                settings=settings,
                aws_errors=(AwsHttpError, BotoCoreError, ClientError),
            )
    return _predictor


def reset_predictor() -> None:
    """Forget every cache (tests, or the local cloud after redeploying)."""
    global _predictor  # noqa: PLW0603
    if _predictor is not None:  # what it still had to write goes where it was meant to
        _predictor.monitoring.wait(5.0)
    _predictor = None
    refresh()


__all__ = ["Predictor", "get_predictor", "reset_predictor"]
