"""Serving logic: registry aliases → verified ONNX session → the serving contract → predictions.

Turning a request body into tensors and outputs into the answer is the serving contract
(``mlstack_core.contract``), shared with the training gate so that what is scored is what is
served. This module adds what only a live endpoint needs: aliases, canary and shadow routing,
the session cache, fallback to the last good version, drift sampling. scikit-learn never loads
on this path: its import alone costs seconds of cold start (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np

from mlstack_core.contract import (
    Batch,
    LoadedModel,
    ModelLoadError,
    ModelUnavailableError,
    RequestError,
    format_outputs,
    load_model,
    parse_body,
    shown,
)
from mlstack_core.drift import DriftRecorder
from mlstack_core.errors import ModelNotFound
from mlstack_core.settings import ServingSettings, serving_settings, stack_settings
from mlstack_predict.awshttp import CANARY, PRODUCTION, SHADOW, AwsHttp, AwsHttpError, HttpRegistry
from mlstack_predict.telemetry import COUNT, MILLISECONDS, NONE, PERCENT, logger, metrics, refresh

# Metric dimension for requests whose model is not in the registry: the path segment is caller
# input, and using it as a dimension would let anyone create unbounded CloudWatch metrics.
UNKNOWN_MODEL_DIMENSION: Final = "(unknown)"
VARIANT_PRODUCTION: Final = "production"
VARIANT_CANARY: Final = "canary"
VARIANT_PINNED: Final = "pinned"


# the service ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Routing:
    """What the registry says about one model's traffic, cached for alias_ttl_seconds."""

    production: int | None
    canary: int | None = None
    canary_share: float = 0.0
    shadow: int | None = None

    @classmethod
    def from_aliases(cls, aliases: dict[str, dict[str, Any]]) -> Routing:
        def version(alias: str) -> int | None:
            entry = aliases.get(alias)
            return None if entry is None else int(entry["version"])

        canary = aliases.get(CANARY)
        return cls(
            production=version(PRODUCTION),
            canary=version(CANARY),
            canary_share=float(canary.get("share") or 0.0) if canary else 0.0,
            shadow=version(SHADOW),
        )


@dataclass
class Predictor:
    """Per-container state: alias cache, LRU of sessions, last version served per model."""

    registry: Any  # mlstack_core.registry.Registry, or awshttp.HttpRegistry (same reads)
    s3: Any
    settings: ServingSettings
    # What a failed AWS call raises with this registry/S3 client (botocore's or awshttp's).
    aws_errors: tuple[type[Exception], ...] = (AwsHttpError,)
    _routing: dict[str, tuple[Routing, float]] = field(default_factory=dict)
    _sessions: OrderedDict[tuple[str, int], LoadedModel] = field(default_factory=OrderedDict)
    _last_good: dict[str, int] = field(default_factory=dict)
    _failures: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)
    # The local cloud serves from threads; Lambda never runs two requests in one container.
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _random: random.Random = field(default_factory=random.Random)
    # Sessions are also bounded by the bytes of their artifacts (a forest's session takes about as
    # much memory as its ONNX file). SESSION_CACHE_BYTES, default 256 MiB of a 1 GiB function.
    session_cache_bytes: int = field(
        default_factory=lambda: int(os.environ.get("SESSION_CACHE_BYTES", str(256 * 2**20)))
    )
    # Sampled input/output counts for the Monitor function's drift check (DRIFT_* settings).
    drift: DriftRecorder = field(default_factory=DriftRecorder.from_env)

    def routing(self, model: str) -> Routing:
        """Production, canary and shadow of ``model``: one registry query at most every
        alias_ttl_seconds, so a promotion, rollback or challenger change is served within it."""
        now = time.monotonic()
        cached = self._routing.get(model)
        if cached and cached[1] > now:
            return cached[0]
        try:
            routing = Routing.from_aliases(self.registry.aliases(model))
        except self.aws_errors:
            if cached:  # a registry hiccup must not take down a model we already know
                logger.warning(
                    "Registry read failed; serving cached aliases",
                    exc_info=True,
                    extra={"model": model, "version": cached[0].production},
                )
                return cached[0]
            raise
        if routing.production is None:
            self._routing.pop(model, None)
            raise ModelNotFound(f"no model named {model!r} is in production")
        self._routing[model] = (routing, now + self.settings.alias_ttl_seconds)
        return routing

    def production_version(self, model: str) -> int:
        """The version "production" points at (re-read at most every alias_ttl_seconds)."""
        return cast(int, self.routing(model).production)

    def model_for(self, model: str) -> LoadedModel:
        """The session to serve ``model`` with; falls back to the last good version on failure."""
        with self._lock:
            return self._production(model, self.routing(model))

    def _production(self, model: str, routing: Routing) -> LoadedModel:
        version = cast(int, routing.production)
        loaded = self._cached(model, version)
        if loaded is None:
            try:
                loaded = self._load_once(model, version)
            except ModelLoadError as error:
                loaded = self._fallback(model, version, str(error))
        self._last_good[model] = loaded.version
        return loaded

    def choose(self, model: str) -> tuple[LoadedModel, str, Routing]:
        """The model answering this request: the canary for its share of requests (when it
        loads), else production."""
        with self._lock:
            routing = self.routing(model)
            if (
                routing.canary is not None
                and routing.canary != routing.production
                and self._random.random() < routing.canary_share
            ):
                canary = self._optional(model, routing.canary)
                if canary is not None:
                    return canary, VARIANT_CANARY, routing
                metrics.add_metric("CanaryFallbacks", COUNT, 1)
            return self._production(model, routing), VARIANT_PRODUCTION, routing

    def pinned(self, model: str, version: int) -> LoadedModel:
        """``?version=N``: exactly that version, or 404 (no such version) / 503 (unloadable)."""
        with self._lock:
            loaded = self._cached(model, version)
            if loaded is not None:
                return loaded
            document = self.registry.get_version(model, version)  # ModelNotFound → 404
            try:
                return self._load_once(model, version, document)
            except ModelLoadError as error:
                raise ModelUnavailableError(
                    f"model {model!r} version {version} cannot be served",
                    [{"field": "version", "message": str(error)}],
                ) from error

    def _optional(self, model: str, version: int) -> LoadedModel | None:
        """A challenger's session, or None when it cannot be loaded (production answers)."""
        loaded = self._cached(model, version)
        if loaded is not None:
            return loaded
        try:
            return self._load_once(model, version)
        except ModelLoadError:
            return None

    def _cached(self, model: str, version: int) -> LoadedModel | None:
        loaded = self._sessions.get((model, version))
        if loaded is not None:
            self._sessions.move_to_end((model, version))
        return loaded

    def _load_once(
        self, model: str, version: int, document: dict[str, Any] | None = None
    ) -> LoadedModel:
        """Load, remembering a failure for alias_ttl_seconds so a bad artifact is not re-fetched
        on every request."""
        failure = self._failures.get((model, version))
        if failure and failure[1] > time.monotonic():
            raise ModelLoadError(failure[0])
        try:
            loaded = self._load(model, version, document)
        except ModelLoadError as error:
            self._failures[(model, version)] = (
                str(error),
                time.monotonic() + self.settings.alias_ttl_seconds,
            )
            metrics.add_metric("ModelLoadFailures", COUNT, 1)
            logger.error(
                "Model version refused",
                extra={
                    "model": model,
                    "version": version,
                    "reason": str(error),
                    "still_serving": self._last_good.get(model),
                },
            )
            raise
        self._failures.pop((model, version), None)
        self._sessions[(model, version)] = loaded
        self._evict()
        return loaded

    def _evict(self) -> None:
        """Bound the cache by count and by artifact bytes, least recently used first; the session
        just loaded always stays."""
        sessions = self._sessions
        count_limit = max(1, self.settings.session_cache_size)
        byte_limit = self.session_cache_bytes
        total = sum(entry.artifact_bytes for entry in sessions.values())
        while len(sessions) > 1 and (len(sessions) > count_limit or total > byte_limit):
            _, evicted = sessions.popitem(last=False)
            total -= evicted.artifact_bytes

    def _fallback(self, model: str, version: int, reason: str) -> LoadedModel:
        previous = self._last_good.get(model)
        if previous is not None and previous != version:
            loaded = self._cached(model, previous)
            if loaded is None:
                try:
                    loaded = self._load_once(model, previous)
                except ModelLoadError:
                    loaded = None
            if loaded is not None:  # the refusal itself was logged once, by _load_once
                return loaded
        raise ModelUnavailableError(
            f"model {model!r} version {version} cannot be served",
            [{"field": "model", "message": reason}],
        )

    def _load(
        self, model: str, version: int, document: dict[str, Any] | None = None
    ) -> LoadedModel:
        started = time.perf_counter()
        try:
            if document is None:
                document = self.registry.get_version(model, version)
            artifact = document["artifact"]
            request = {"Bucket": artifact["bucket"], "Key": artifact["key"]}
            if artifact.get("version_id"):
                request["VersionId"] = artifact["version_id"]
            body = self.s3.get_object(**request)["Body"].read()
            expected = str(artifact["sha256"]).lower()
        except (ModelNotFound, *self.aws_errors) as error:  # type: ignore[misc]
            raise ModelLoadError(f"artifact could not be read: {error}") from error
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelLoadError(f"version document is malformed: {error!r}") from error
        actual = hashlib.sha256(body).hexdigest()
        if actual != expected:
            # Checked before onnxruntime parses a byte of it: never run an unverified graph.
            raise ModelLoadError(
                f"artifact checksum mismatch: s3://{artifact['bucket']}/{artifact['key']} "
                f"has sha256 {actual}, the registry expects {expected}"
            )
        loaded = load_model(body, document, self.settings, model=model, version=version)
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.add_metric("ModelLoadTime", MILLISECONDS, elapsed_ms)
        logger.info(
            "Model loaded",
            extra={
                "model": model,
                "version": version,
                "bytes": len(body),
                "load_ms": round(elapsed_ms, 1),
            },
        )
        return loaded

    # requests -----------------------------------------------------------------------------------
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
            feeds, outputs = loaded.score(batch)
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
        if routing is not None and routing.shadow is not None and routing.shadow != loaded.version:
            shadow = self._shadow(model, routing.shadow, batch, loaded, outputs)
            if shadow is not None:
                result["shadow_version"] = shadow
        return result

    def _record_drift(
        self, model: str, loaded: LoadedModel, feeds: dict[str, np.ndarray], outputs: list[Any]
    ) -> None:
        """Count a sample of what was served; write the summaries that are due. Best effort: a
        failed write is logged and the prediction is answered anyway."""
        # Drift counts the prediction only: the first output (label, or a regressor's variable).
        predicted = {loaded.layout.output_names[0]: outputs[0]}
        for key, body in self.drift.record(
            model, loaded.version, loaded.document, feeds, predicted
        ):
            try:
                self.s3.put_object(
                    Bucket=stack_settings().model_bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/json",
                )
            except Exception:
                logger.warning("Drift summary not written", extra={"key": key}, exc_info=True)

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
            with self._lock:
                shadow = self._optional(model, version)
            if shadow is None:
                raise ModelLoadError("shadow version cannot be loaded")
            _, outputs = shadow.score(batch)
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
            "production": current,
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
            **document,
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


def compare_outputs(
    served: LoadedModel,
    served_outputs: list[np.ndarray],
    shadow: LoadedModel,
    shadow_outputs: list[np.ndarray],
) -> tuple[float, float]:
    """(share of rows with the same prediction, largest absolute difference of any output).

    Classifiers: same label; probabilities compared when both list the same classes, else the
    difference is NaN (unknown). Regressors: agreement within 1e-6 relative, and the largest
    absolute prediction difference.
    """
    if served.layout.task != shadow.layout.task:
        raise ValueError("shadow and production are different tasks")
    if served.layout.task == "classification":
        same = np.asarray(served_outputs[0]).astype(str) == np.asarray(shadow_outputs[0]).astype(
            str
        )
        if served.layout.classes == shadow.layout.classes:
            difference = float(np.max(np.abs(served_outputs[1] - shadow_outputs[1])))
        else:
            difference = float("nan")
        return float(np.mean(same)), difference
    a = np.asarray(served_outputs[0], dtype=np.float64).reshape(-1)
    b = np.asarray(shadow_outputs[0], dtype=np.float64).reshape(-1)
    gap = np.abs(a - b)
    agree = gap <= 1e-6 * np.maximum(1.0, np.abs(a))
    return float(np.mean(agree)), float(np.max(gap))


def _version_summary(document: dict[str, Any]) -> dict[str, Any]:
    name = document.get("metric")
    scores = document.get("metrics") or {}
    return {
        "version": document.get("version"),
        "status": document.get("status"),
        "created_at": document.get("created_at"),
        "metric": {"name": name, "value": scores.get(name)} if name else None,
    }


_predictor: Predictor | None = None


def _use_http() -> AwsHttp | None:
    """awshttp (no boto3 on the cold path) unless moto mocks AWS in this process: its mocks patch
    botocore, so tests and the in-process local cloud need boto3. MLSTACK_AWS_CLIENT=boto3|http
    overrides."""
    choice = os.environ.get("MLSTACK_AWS_CLIENT", "auto")
    if choice == "boto3" or (choice == "auto" and "moto" in sys.modules):
        return None
    return AwsHttp.from_environment()


def get_predictor() -> Predictor:
    """The container's Predictor, built on first use (never at import: settings come from env)."""
    global _predictor  # noqa: PLW0603 - one per container is the point: it holds the caches
    if _predictor is None:
        table = stack_settings().registry_table
        aws = _use_http()
        if aws is not None:
            _predictor = Predictor(
                registry=HttpRegistry(table, aws), s3=aws, settings=serving_settings()
            )
        else:
            import boto3
            from botocore.exceptions import BotoCoreError, ClientError

            from mlstack_core.registry import Registry

            _predictor = Predictor(
                registry=Registry(table),
                s3=boto3.client("s3"),
                settings=serving_settings(),
                aws_errors=(AwsHttpError, BotoCoreError, ClientError),
            )
    return _predictor


def reset_predictor() -> None:
    """Forget every cache (tests, or the local cloud after redeploying)."""
    global _predictor  # noqa: PLW0603
    _predictor = None
    refresh()


__all__ = ["Predictor", "Routing", "compare_outputs", "get_predictor", "reset_predictor"]
