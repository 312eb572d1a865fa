"""Serving logic: production alias → verified ONNX session → validated tensors → JSON predictions.

Only onnxruntime and numpy run models here; scikit-learn never loads on this path (its import alone
costs seconds of cold start, see ARCHITECTURE.md §3). The tensors follow the ONNX graph contract in
docs/internals.md: one float32 ``numeric`` input and one string ``categorical`` input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, Final, cast

import boto3
import numpy as np
import onnxruntime as ort
from botocore.exceptions import BotoCoreError, ClientError

from mlstack_core.errors import ModelNotFound
from mlstack_core.observability import MetricUnit, logger, metrics, tracer
from mlstack_core.registry import Registry
from mlstack_core.settings import ServingSettings, serving_settings, stack_settings

# Error details are capped so a 10,000-row request full of mistakes still gets a small response.
MAX_DETAILS: Final = 20
# Metric dimension for requests whose model is not in the registry: the path segment is caller
# input, and using it as a dimension would let anyone create unbounded CloudWatch metrics.
UNKNOWN_MODEL_DIMENSION: Final = "(unknown)"
PROBABILITY_DECIMALS: Final = 6
_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
_NUMERIC_OK: Final = frozenset({int, float, type(None)})


# errors -------------------------------------------------------------------------------------------
class RequestError(Exception):
    """The caller's request is unusable; carries the HTTP status and per-field details."""

    status: int = 400

    def __init__(self, message: str, details: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class BadRequestError(RequestError):
    status = 400


class PayloadTooLargeError(RequestError):
    status = 413


class ModelUnavailableError(Exception):
    """Production points at a version that cannot be loaded, and no earlier version is loaded."""

    status: int = 503

    def __init__(self, message: str, details: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class ModelLoadError(Exception):
    """One version's artifact could not be turned into a session (checksum, S3, ONNX, schema)."""


# model layout -------------------------------------------------------------------------------------
_LABEL_CASTS: Final[dict[str, Callable[[Any], Any]]] = {"str": str, "int": int, "float": float}
_LABEL_DTYPES: Final[dict[str, Any]] = {"str": str, "int": np.int64, "float": np.float64}


@dataclass(frozen=True)
class FeatureLayout:
    """What the feature schema of a version says about building its inputs and outputs."""

    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    required: frozenset[str]
    known: frozenset[str]  # required + schema features the graph does not use (allowed, ignored)
    target: str | None
    categories: dict[str, frozenset[str]]
    classes: list[Any] | None
    label_type: str

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> FeatureLayout:
        """KeyError/TypeError/ValueError here mean a malformed version document."""
        schema = document["schema"]
        numeric = tuple(str(name) for name in schema.get("numeric", []))
        categorical = tuple(str(name) for name in schema.get("categorical", []))
        features = schema.get("features", [])
        task = schema.get("task") or document.get("task") or "classification"
        label_type = str(schema.get("label_type") or "str")
        raw_classes = schema.get("classes") or document.get("classes")
        if task == "classification" and not raw_classes:
            raise ValueError("a classifier's schema must list its classes")
        to_label = _LABEL_CASTS.get(label_type, lambda value: value)
        required = frozenset(numeric) | frozenset(categorical)
        return cls(
            task=task,
            numeric=numeric,
            categorical=categorical,
            required=required,
            known=required | frozenset(str(f["name"]) for f in features),
            target=schema.get("target"),
            categories={
                str(f["name"]): frozenset(str(c) for c in f.get("categories") or [])
                for f in features
                if f.get("kind") == "categorical"
            },
            classes=[to_label(c) for c in raw_classes or []] if task == "classification" else None,
            label_type=label_type,
        )

    @property
    def output_names(self) -> list[str]:
        return ["label", "probabilities"] if self.task == "classification" else ["variable"]


@dataclass(frozen=True)
class LoadedModel:
    """One registry version, ready to serve."""

    model: str
    version: int
    document: dict[str, Any]
    session: ort.InferenceSession
    layout: FeatureLayout


def _check_graph(session: ort.InferenceSession, layout: FeatureLayout) -> None:
    """Refuse a graph that breaks the contract now, rather than failing every request later."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    for name, columns in (("numeric", layout.numeric), ("categorical", layout.categorical)):
        width = len(columns)
        if width and name not in inputs:
            raise ModelLoadError(f"graph has no {name!r} input but the schema has {width} columns")
        if not width and name in inputs:
            raise ModelLoadError(f"graph has a {name!r} input but the schema has no such columns")
        shape = inputs.get(name)
        if shape and len(shape) == 2 and isinstance(shape[1], int) and shape[1] != width:
            raise ModelLoadError(f"{name!r} input is {shape[1]} wide, schema says {width}")
    outputs = [o.name for o in session.get_outputs()]
    missing = [name for name in layout.output_names if name not in outputs]
    if missing:
        raise ModelLoadError(f"graph lacks outputs {missing} (has {outputs})")


def _warm_up(loaded: LoadedModel) -> None:
    """Score one all-missing row: proves the graph runs on contract inputs and its outputs fit the
    schema (class count, label type), and moves onnxruntime's first-run cost into the load."""
    layout = loaded.layout
    try:
        blank = dict.fromkeys(layout.required)
        outputs = loaded.session.run(layout.output_names, build_inputs([blank], loaded))
        format_outputs(loaded, outputs)
    except Exception as error:  # onnxruntime's own exception types are not exported
        raise ModelLoadError(f"warm-up prediction failed: {error!r}") from error
    if layout.classes is not None and outputs[1].shape != (1, len(layout.classes)):
        raise ModelLoadError(
            f"probabilities have shape {outputs[1].shape}, schema lists {len(layout.classes)} "
            "classes"
        )


def _session_options(settings: ServingSettings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # One thread by default: more threads changed tied forest votes (ARCHITECTURE.md §5).
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings would print into every cold start
    return options


# request parsing ----------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send null for a missing value")


def parse_instances(
    body: str | None, is_base64: bool, settings: ServingSettings
) -> list[dict[str, Any]]:
    """Body → the list of instance objects, or a RequestError naming what is wrong."""
    if not body:
        raise BadRequestError('request body is required: {"instances": [{...}, ...]}')
    if is_base64:
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise BadRequestError("body is not valid base64-encoded UTF-8 text") from error
    # len() counts characters, a lower bound of bytes: cheap, and API Gateway caps bytes at 10 MB.
    if len(body) > settings.max_body_bytes:
        raise PayloadTooLargeError(f"body is larger than {settings.max_body_bytes} bytes")
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except RecursionError as error:
        raise BadRequestError("body is not valid JSON: nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, ints over 4300 digits
        raise BadRequestError(f"body is not valid JSON: {error}") from error
    if not isinstance(payload, dict):
        raise BadRequestError(
            f"body must be a JSON object with an 'instances' list, got {_json_type(payload)}"
        )
    extra = [_shown(key) for key in sorted(set(payload) - {"instances"})][:MAX_DETAILS]
    extra_details = [
        {"field": key, "message": "unknown key; the body has only 'instances'"} for key in extra
    ]
    if "instances" not in payload:
        raise BadRequestError(
            "'instances' is required",
            [{"field": "instances", "message": "missing"}, *extra_details],
        )
    if extra:
        raise BadRequestError(f"unknown top-level keys: {', '.join(extra)}", extra_details)
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise BadRequestError(
            "'instances' must be a list of objects",
            [{"field": "instances", "message": f"expected array, got {_json_type(instances)}"}],
        )
    if not instances:
        raise BadRequestError(
            "'instances' is empty", [{"field": "instances", "message": "at least one instance"}]
        )
    if len(instances) > settings.max_rows:
        raise PayloadTooLargeError(
            f"{len(instances)} instances exceed the limit of {settings.max_rows} per request"
        )
    if set(map(type, instances)) != {dict}:
        bad = [i for i, row in enumerate(instances) if type(row) is not dict]
        raise BadRequestError(
            f"{len(bad)} instance(s) are not JSON objects",
            [
                {
                    "row": i,
                    "field": f"instances[{i}]",
                    "message": f"expected object, got {_json_type(instances[i])}",
                }
                for i in bad[:MAX_DETAILS]
            ],
        )
    return instances


def _shown(name: str) -> str:
    """A caller-supplied name, short enough to echo back in an error."""
    return name if len(name) <= 64 else f"{name[:61]}..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_columns(instances: list[dict[str, Any]], layout: FeatureLayout) -> None:
    required, known = layout.required, layout.known
    # dict_keys == frozenset runs in C; only rows that differ get the slow explanation below.
    odd = [i for i, keys in enumerate(map(dict.keys, instances)) if keys != required]
    details: list[dict[str, Any]] = []
    count = 0
    for i in odd:
        keys = instances[i].keys()
        missing = sorted(required - keys)
        unknown = [_shown(key) for key in sorted(keys - known)][:MAX_DETAILS]
        if not missing and not unknown:
            continue  # only extra-but-known columns (features the graph does not use)
        count += 1
        if len(details) >= MAX_DETAILS:
            continue
        parts = []
        if missing:
            parts.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            note = " (the target column is not an input)" if layout.target in unknown else ""
            parts.append(f"unknown columns: {', '.join(unknown)}{note}")
        details.append(
            {
                "row": i,
                "field": f"instances[{i}]",
                "message": "; ".join(parts),
                "missing": missing,
                "unknown": unknown,
            }
        )
    if count:
        raise BadRequestError(
            f"{count} instance(s) do not match the model's columns; expected exactly: "
            f"{', '.join(sorted(required))}",
            details,
        )


def _rows(instances: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Row tuples in column order; itemgetter over map keeps the N*k lookups in C."""
    getter = itemgetter(*columns)
    if len(columns) == 1:
        return [(value,) for value in map(getter, instances)]
    return list(map(getter, instances))


def _detail(row: int, column: str, message: str) -> dict[str, Any]:
    return {"row": row, "column": column, "field": f"instances[{row}].{column}", "message": message}


def _numeric_problem(value: Any) -> str | None:
    kind = type(value)
    if kind is float or kind is int:
        if not abs(value) <= _FLOAT32_MAX:  # also catches inf (1e400 parses as inf)
            return "number is outside the float32 range"
        return None
    if value is None:
        return None
    if kind is str:
        return "expected a number or null, got string (numbers in quotes are not converted)"
    return f"expected a number or null, got {_json_type(value)}"


def numeric_tensor(instances: list[dict[str, Any]], columns: tuple[str, ...]) -> np.ndarray:
    """float32 [N, k], null → NaN. bool and str are refused, not coerced."""
    rows = _rows(instances, columns)
    if set(map(type, chain.from_iterable(rows))) <= _NUMERIC_OK:
        try:
            wide = np.array(rows, dtype=np.float64)  # None → NaN here
        except OverflowError:  # an int beyond float64: explained below
            wide = None
        if wide is not None:
            with np.errstate(over="ignore"):
                narrow = wide.astype(np.float32)
            if not np.isinf(narrow).any():
                return narrow
    details = [
        _detail(i, column, problem)
        for i, row in enumerate(rows)
        for column, value in zip(columns, row, strict=True)
        if (problem := _numeric_problem(value))
    ]
    raise BadRequestError(_summary(details, "numeric"), details[:MAX_DETAILS])


def _category_text(value: Any, known: frozenset[str]) -> str | None:
    """A number sent for a categorical column, as the training CSV would have spelled it."""
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        whole = str(int(value)) if value.is_integer() else None
        # 2007.0 → "2007" when that is a known category ("2007"-like years read from CSV).
        return whole if whole is not None and whole in known else str(value)
    return None


def categorical_tensor(
    instances: list[dict[str, Any]],
    columns: tuple[str, ...],
    categories: dict[str, frozenset[str]],
) -> np.ndarray:
    """object [N, m] of str, null → "" (the graph's missing marker), numbers → their text."""
    rows = _rows(instances, columns)
    types = set(map(type, chain.from_iterable(rows)))
    if types <= {str}:
        return np.array(rows, dtype=object)
    if types <= {str, type(None)}:
        array = np.array(rows, dtype=object)
        array[np.equal(array, cast(Any, None))] = ""
        return array
    details = []
    fixed: list[list[Any]] = [list(row) for row in rows]
    known_by_column = [categories.get(column, frozenset()) for column in columns]
    for i, row in enumerate(fixed):
        for j, column in enumerate(columns):
            value = row[j]
            if type(value) is str:
                continue
            if value is None:
                row[j] = ""
                continue
            text = _category_text(value, known_by_column[j])
            if text is None:
                message = (
                    "number is not finite"
                    if type(value) is float
                    else f"expected a string, number or null, got {_json_type(value)}"
                    + ("; send the category as a string" if type(value) is bool else "")
                )
                details.append(_detail(i, column, message))
            else:
                row[j] = text
    if details:
        raise BadRequestError(_summary(details, "categorical"), details[:MAX_DETAILS])
    return np.array(fixed, dtype=object)


def _summary(details: list[dict[str, Any]], kind: str) -> str:
    if not details:  # unreachable by construction; never let a message turn a 400 into a 500
        return f"invalid value in a {kind} column"
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"invalid value in {kind} column {first['column']!r} at row {first['row']}{more}"


def build_inputs(instances: list[dict[str, Any]], loaded: LoadedModel) -> dict[str, np.ndarray]:
    """The ONNX feeds for these instances, per the model's feature schema."""
    layout = loaded.layout
    # Every row with exactly k keys, all k required ones found by itemgetter, means the keys are
    # exactly the required set: two C-level passes instead of a Python loop over the rows.
    if set(map(len, instances)) != {len(layout.required)}:
        _check_columns(instances, layout)  # explains, or accepts extra known-but-unused columns
    feeds: dict[str, np.ndarray] = {}
    problems: list[BadRequestError] = []
    try:
        if layout.numeric:
            try:
                feeds["numeric"] = numeric_tensor(instances, layout.numeric)
            except BadRequestError as error:
                problems.append(error)
        if layout.categorical:
            try:
                feeds["categorical"] = categorical_tensor(
                    instances, layout.categorical, layout.categories
                )
            except BadRequestError as error:
                problems.append(error)
    except KeyError:  # a row swapped a required column for an unknown one
        _check_columns(instances, layout)
        raise
    if problems:  # report numeric and categorical mistakes together
        details = [d for p in problems for d in p.details][:MAX_DETAILS]
        raise BadRequestError("; ".join(p.message for p in problems), details)
    return feeds


# outputs ------------------------------------------------------------------------------------------
def format_outputs(loaded: LoadedModel, outputs: list[np.ndarray]) -> dict[str, Any]:
    layout = loaded.layout
    if layout.task != "classification":
        values = outputs[0].reshape(-1)
        # float32 → its shortest text → float: 3.4 instead of 3.4000000953674316, any scale.
        return {"predictions": values.astype(str).astype(np.float64).tolist()}
    labels, probabilities = outputs
    dtype = _LABEL_DTYPES.get(layout.label_type)
    predictions = (labels.astype(dtype) if dtype is not None else labels).tolist()
    # Probabilities are in [0, 1], so fixed decimals are enough; 10x cheaper than shortest text.
    rounded = np.round(probabilities.astype(np.float64), PROBABILITY_DECIMALS)
    return {
        "predictions": predictions,
        "classes": layout.classes,
        "probabilities": rounded.tolist(),
    }


# the service --------------------------------------------------------------------------------------
@dataclass
class Predictor:
    """Per-container state: alias cache, LRU of sessions, last version served per model."""

    registry: Registry
    s3: Any
    settings: ServingSettings
    _aliases: dict[str, tuple[int, float]] = field(default_factory=dict)
    _sessions: OrderedDict[tuple[str, int], LoadedModel] = field(default_factory=OrderedDict)
    _last_good: dict[str, int] = field(default_factory=dict)
    _failures: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)
    # The local cloud serves from threads; Lambda never runs two requests in one container.
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def production_version(self, model: str) -> int:
        """The version "production" points at, re-read at most every alias_ttl_seconds."""
        now = time.monotonic()
        cached = self._aliases.get(model)
        if cached and cached[1] > now:
            return cached[0]
        try:
            version = self.registry.get_alias(model)
        except (BotoCoreError, ClientError):
            if cached:  # a registry hiccup must not take down a model we already know
                logger.warning(
                    "Registry read failed; serving cached alias",
                    exc_info=True,
                    extra={"model": model, "version": cached[0]},
                )
                return cached[0]
            raise
        if version is None:
            self._aliases.pop(model, None)
            raise ModelNotFound(f"no model named {model!r} is in production")
        self._aliases[model] = (version, now + self.settings.alias_ttl_seconds)
        return version

    def model_for(self, model: str) -> LoadedModel:
        """The session to serve ``model`` with; falls back to the last good version on failure."""
        with self._lock:
            version = self.production_version(model)
            loaded = self._cached(model, version)
            if loaded is None:
                try:
                    loaded = self._load_once(model, version)
                except ModelLoadError as error:
                    loaded = self._fallback(model, version, str(error))
            self._last_good[model] = loaded.version
            return loaded

    def _cached(self, model: str, version: int) -> LoadedModel | None:
        loaded = self._sessions.get((model, version))
        if loaded is not None:
            self._sessions.move_to_end((model, version))
        return loaded

    def _load_once(self, model: str, version: int) -> LoadedModel:
        """Load, remembering a failure for alias_ttl_seconds so a bad artifact is not re-fetched
        on every request."""
        failure = self._failures.get((model, version))
        if failure and failure[1] > time.monotonic():
            raise ModelLoadError(failure[0])
        try:
            loaded = self._load(model, version)
        except ModelLoadError as error:
            self._failures[(model, version)] = (
                str(error),
                time.monotonic() + self.settings.alias_ttl_seconds,
            )
            metrics.add_metric(name="ModelLoadFailures", unit=MetricUnit.Count, value=1)
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
        while len(self._sessions) > max(1, self.settings.session_cache_size):
            self._sessions.popitem(last=False)
        return loaded

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

    @tracer.capture_method
    def _load(self, model: str, version: int) -> LoadedModel:
        started = time.perf_counter()
        try:
            document = self.registry.get_version(model, version)
            artifact = document["artifact"]
            request = {"Bucket": artifact["bucket"], "Key": artifact["key"]}
            if artifact.get("version_id"):
                request["VersionId"] = artifact["version_id"]
            body = self.s3.get_object(**request)["Body"].read()
            expected = str(artifact["sha256"]).lower()
            actual = hashlib.sha256(body).hexdigest()
            if actual != expected:
                # Checked before onnxruntime parses a byte of it: never run an unverified graph.
                raise ModelLoadError(
                    f"artifact checksum mismatch: s3://{artifact['bucket']}/{artifact['key']} "
                    f"has sha256 {actual}, the registry expects {expected}"
                )
            layout = FeatureLayout.from_document(document)
            session = ort.InferenceSession(
                body,
                sess_options=_session_options(self.settings),
                providers=["CPUExecutionProvider"],
            )
            _check_graph(session, layout)
            loaded = LoadedModel(model, version, document, session, layout)
            _warm_up(loaded)
        except ModelLoadError:
            raise
        except (ModelNotFound, BotoCoreError, ClientError) as error:
            raise ModelLoadError(f"artifact could not be read: {error}") from error
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelLoadError(f"version document is malformed: {error!r}") from error
        except Exception as error:  # onnxruntime raises its own (unexported) exception types
            raise ModelLoadError(f"onnxruntime refused the artifact: {error}") from error
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=elapsed_ms)
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
    def predict(self, model: str, body: str | None, is_base64: bool = False) -> dict[str, Any]:
        """One POST /models/<model>/predict; records the request metrics whatever happens."""
        started = time.perf_counter()
        dimension = UNKNOWN_MODEL_DIMENSION
        metrics.add_metric(name="PredictionRequests", unit=MetricUnit.Count, value=1)
        try:
            loaded = self.model_for(model)
            dimension = model  # a registered name: bounded cardinality
            instances = parse_instances(body, is_base64, self.settings)
            feeds = build_inputs(instances, loaded)
            outputs = loaded.session.run(loaded.layout.output_names, feeds)
            result = {"model": model, "version": loaded.version, **format_outputs(loaded, outputs)}
        except Exception:
            metrics.add_metric(name="PredictionErrors", unit=MetricUnit.Count, value=1)
            raise
        finally:
            metrics.add_dimension(name="model", value=dimension)
        metrics.add_metadata(key="model_version", value=loaded.version)
        metrics.add_metric(name="PredictedRows", unit=MetricUnit.Count, value=len(instances))
        metrics.add_metric(
            name="PredictionLatency",
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000,
        )
        return result

    def describe(self, model: str) -> dict[str, Any]:
        """GET /models/<model>: production metadata and every version, read fresh."""
        production = self.registry.get_alias(model)
        versions = sorted(self.registry.list_versions(model), key=lambda d: int(d["version"]))
        if production is None and not versions:
            raise ModelNotFound(f"no model named {model!r}")
        current = next((d for d in versions if int(d["version"]) == production), None)
        return {
            "model": model,
            "production_version": production,
            "production": current,
            "versions": [_version_summary(d) for d in versions],
        }

    def list_models(self) -> dict[str, Any]:
        names = sorted(self.registry.list_models())
        return {
            "models": [
                {"model": name, "production_version": self.registry.get_alias(name)}
                for name in names
            ]
        }


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


def get_predictor() -> Predictor:
    """The container's Predictor, built on first use (never at import: settings come from env)."""
    global _predictor  # noqa: PLW0603 - one per container is the point: it holds the caches
    if _predictor is None:
        _predictor = Predictor(
            registry=Registry(stack_settings().registry_table),
            s3=boto3.client("s3"),
            settings=serving_settings(),
        )
    return _predictor


def reset_predictor() -> None:
    """Forget every cache (tests, or the local cloud after redeploying)."""
    global _predictor  # noqa: PLW0603
    _predictor = None


__all__ = [
    "BadRequestError",
    "ModelUnavailableError",
    "PayloadTooLargeError",
    "Predictor",
    "RequestError",
    "get_predictor",
    "reset_predictor",
]
