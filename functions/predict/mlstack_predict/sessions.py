"""The container's sessions: each version's verified artifact loaded once through the serving
contract, kept in an LRU bounded by count and bytes, with fallback to the last version served.

A version that cannot be loaded (checksum, S3, malformed document, a graph that breaks the
contract) is refused: the refusal is remembered for ``ALIAS_TTL_SECONDS`` so a bad artifact is not
fetched on every request, and production falls back to the version this container served last.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlstack_core.contract import LoadedModel, load_model
from mlstack_core.errors import ModelLoadError, ModelNotFound, ModelUnavailableError
from mlstack_core.observability.requests import COUNT, MILLISECONDS, logger, metrics
from mlstack_core.servable import check_servable
from mlstack_core.settings import ServingSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from mlstack_core.documents import VersionDocument
    from mlstack_core.registry import RegistryReader
    from mlstack_predict.awshttp import AwsHttp


@dataclass
class SessionCache:
    """Loaded versions by (model, version), least recently used first."""

    registry: RegistryReader
    s3: S3Client | AwsHttp
    settings: ServingSettings
    # What a failed AWS call raises with this registry/S3 client (botocore's or awshttp's).
    aws_errors: tuple[type[Exception], ...]
    entries: OrderedDict[tuple[str, int], LoadedModel] = field(default_factory=OrderedDict)
    last_good: dict[str, int] = field(default_factory=dict)
    _failures: dict[tuple[str, int], tuple[ModelLoadError, float]] = field(default_factory=dict)

    def production(self, model: str, version: int) -> LoadedModel:
        """The session for production's ``version``; the last good version when it cannot load."""
        loaded = self.cached(model, version)
        if loaded is None:
            try:
                loaded = self.load_once(model, version)
            except ModelLoadError as error:
                loaded = self._fallback(model, version, error.public)
        self.last_good[model] = loaded.version
        return loaded

    def optional(self, model: str, version: int) -> LoadedModel | None:
        """A challenger's session, or None when it cannot be loaded (production answers)."""
        loaded = self.cached(model, version)
        if loaded is not None:
            return loaded
        try:
            return self.load_once(model, version)
        except ModelLoadError:
            return None

    def pinned(self, model: str, version: int, aliased: bool) -> LoadedModel:
        """``?version=N``: exactly that version, or 404 (no such version, or one the rule in
        ``mlstack_core.servable`` does not serve) / 503 (unloadable). Its status is read on each
        such request, aliased or not: an alias never serves a version that was not approved, and
        a version that leaves service stops serving at once. Versions that never serve are refused
        before anything is loaded, so cycling through them cannot flush the cache of those that
        are."""
        document = self.registry.get_version(model, version)  # ModelNotFound → 404
        # VersionNotServed → 404
        check_servable(model, version, document.get("status"), aliased=aliased)
        loaded = self.cached(model, version)
        if loaded is not None:
            return loaded
        try:
            return self.load_once(model, version, document)
        except ModelLoadError as error:
            raise ModelUnavailableError(
                f"model {model!r} version {version} cannot be served",
                [{"field": "version", "message": error.public}],
            ) from error

    def cached(self, model: str, version: int) -> LoadedModel | None:
        loaded = self.entries.get((model, version))
        if loaded is not None:
            self.entries.move_to_end((model, version))
        return loaded

    def load_once(
        self, model: str, version: int, document: VersionDocument | None = None
    ) -> LoadedModel:
        """Load, remembering a failure for alias_ttl_seconds."""
        failure = self._failures.get((model, version))
        if failure and failure[1] > time.monotonic():
            raise failure[0]
        try:
            loaded = self._load(model, version, document)
        except ModelLoadError as error:
            self._failures[(model, version)] = (
                error,
                time.monotonic() + self.settings.alias_ttl_seconds,
            )
            metrics.add_metric("ModelLoadFailures", COUNT, 1)
            logger.error(
                "Model version refused",
                extra={
                    "model": model,
                    "version": version,
                    "reason": str(error),
                    "still_serving": self.last_good.get(model),
                },
            )
            raise
        self._failures.pop((model, version), None)
        self.entries[(model, version)] = loaded
        self._evict()
        return loaded

    def _evict(self) -> None:
        """Bound the cache by count and by artifact bytes, least recently used first; the session
        just loaded always stays."""
        entries = self.entries
        count_limit = max(1, self.settings.session_cache_size)
        byte_limit = self.settings.session_cache_bytes
        total = sum(entry.artifact_bytes for entry in entries.values())
        while len(entries) > 1 and (len(entries) > count_limit or total > byte_limit):
            _, evicted = entries.popitem(last=False)
            total -= evicted.artifact_bytes

    def _fallback(self, model: str, version: int, reason: str) -> LoadedModel:
        previous = self.last_good.get(model)
        if previous is not None and previous != version:
            loaded = self.cached(model, previous)
            if loaded is None:
                try:
                    loaded = self.load_once(model, previous)
                except ModelLoadError:
                    loaded = None
            if loaded is not None:  # the refusal itself was logged once, by load_once
                return loaded
        raise ModelUnavailableError(
            f"model {model!r} version {version} cannot be served",
            [{"field": "model", "message": reason}],
        )

    def _load(
        self, model: str, version: int, document: VersionDocument | None = None
    ) -> LoadedModel:
        started = time.perf_counter()
        try:
            if document is None:
                document = self.registry.get_version(model, version)
            artifact = document["artifact"]
            bucket, key = artifact["bucket"], artifact["key"]
            version_id = artifact.get("version_id")
            if version_id:
                reply = self.s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)
            else:
                reply = self.s3.get_object(Bucket=bucket, Key=key)
            body = reply["Body"].read()
            expected = str(artifact["sha256"]).lower()
        except (ModelNotFound, *self.aws_errors) as error:  # type: ignore[misc]
            raise ModelLoadError(
                f"artifact could not be read: {error}", "the model's artifact could not be read"
            ) from error
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelLoadError(f"version document is malformed: {error!r}") from error
        actual = hashlib.sha256(body).hexdigest()
        if actual != expected:
            # Checked before onnxruntime parses a byte of it: never run an unverified graph.
            raise ModelLoadError(
                f"artifact checksum mismatch: s3://{artifact['bucket']}/{artifact['key']} "
                f"has sha256 {actual}, the registry expects {expected}",
                "artifact checksum mismatch: the stored model is not the registered one",
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
