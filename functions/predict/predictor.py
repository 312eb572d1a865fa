"""Serving logic: registry aliases → verified ONNX session → validated tensors → JSON predictions.

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
import os
import random
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, Final, cast

import numpy as np
import onnxruntime as ort
import orjson
from awshttp import CANARY, PRODUCTION, SHADOW, AwsHttp, AwsHttpError, HttpRegistry
from telemetry import COUNT, MILLISECONDS, NONE, PERCENT, logger, metrics, refresh

from mlstack_core.drift import DriftRecorder
from mlstack_core.errors import ModelNotFound
from mlstack_core.settings import ServingSettings, serving_settings, stack_settings

# Error details are capped so a 10,000-row request full of mistakes still gets a small response.
MAX_DETAILS: Final = 20
# Metric dimension for requests whose model is not in the registry: the path segment is caller
# input, and using it as a dimension would let anyone create unbounded CloudWatch metrics.
UNKNOWN_MODEL_DIMENSION: Final = "(unknown)"
_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
_FEW_ROWS: Final = 4  # up to here, per-value checks in Python beat numpy's per-call overhead
_NUMERIC_OK: Final = frozenset({int, float, type(None)})
_TEXT: Final = frozenset({str})
_TEXT_OR_NULL: Final = frozenset({str, type(None)})
# Top-level keys of the two body forms: records, or a compact columnar table.
_RECORDS_KEYS: Final = frozenset({"instances"})
_COLUMNAR_KEYS: Final = frozenset({"columns", "data"})
_DICT_ONLY: Final = {dict}
VARIANT_PRODUCTION: Final = "production"
VARIANT_CANARY: Final = "canary"
VARIANT_PINNED: Final = "pinned"


# errors -------------------------------------------------------------------------------------------
class HttpError(Exception):
    """An answer other than 200: its HTTP status, a message and per-field details."""

    status: int = 500

    def __init__(self, message: str, details: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class RequestError(HttpError):
    """The caller's request is unusable."""

    status = 400


class BadRequestError(RequestError):
    status = 400


class PayloadTooLargeError(RequestError):
    status = 413


class ModelUnavailableError(HttpError):
    """Production points at a version that cannot be loaded, and no earlier version is loaded."""

    status = 503


class ModelLoadError(Exception):
    """One version's artifact could not be turned into a session (checksum, S3, ONNX, schema)."""


# model layout -------------------------------------------------------------------------------------
_LABEL_CASTS: Final[dict[str, Callable[[Any], Any]]] = {"str": str, "int": int, "float": float}
_LABEL_DTYPES: Final[dict[str, Any]] = {"str": str, "int": np.int64, "float": np.float64}


def _row_getter(columns: tuple[Any, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """One row (dict or list) → the tuple of its values at ``columns`` (keys or indices), in C."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return itemgetter(*columns)


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
    output_names: list[str]
    # Built once per version rather than per request: each row's values in schema order.
    numeric_getter: Callable[[Any], tuple[Any, ...]]
    categorical_getter: Callable[[Any], tuple[Any, ...]]

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
            output_names=["label", "probabilities"] if task == "classification" else ["variable"],
            numeric_getter=_row_getter(numeric),
            categorical_getter=_row_getter(categorical),
        )


@dataclass(frozen=True)
class LoadedModel:
    """One registry version, ready to serve."""

    model: str
    version: int
    document: dict[str, Any]
    session: ort.InferenceSession
    layout: FeatureLayout
    artifact_bytes: int = 0


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
        blank = Batch.of_instances([dict.fromkeys(layout.required)])
        outputs = loaded.session.run(layout.output_names, build_inputs(blank, loaded))
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


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs per request
class Batch:
    """A parsed request body: records (``instances``) or a columnar table (``columns`` + ``data``).

    ``rows(columns)`` gives one tuple per row in the order of ``columns``, with the per-row work
    kept in C (itemgetter over map), so both forms reach numpy without a Python loop per value.
    """

    size: int
    instances: list[dict[str, Any]] | None = None
    columns: tuple[str, ...] = ()
    data: list[list[Any]] | None = None
    index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of_instances(cls, instances: list[dict[str, Any]]) -> Batch:
        return cls(size=len(instances), instances=instances)

    @classmethod
    def of_columns(cls, columns: list[str], data: list[list[Any]]) -> Batch:
        index = {name: j for j, name in enumerate(columns)}
        return cls(size=len(data), columns=tuple(columns), data=data, index=index)

    def rows(
        self,
        columns: tuple[str, ...],
        record_getter: Callable[[Any], tuple[Any, ...]] | None = None,
    ) -> list[tuple[Any, ...]]:
        """``record_getter``: the layout's prebuilt getter of ``columns`` (records form)."""
        if self.instances is not None:
            getter = record_getter or _row_getter(columns)
            return list(map(getter, self.instances))
        index = self.index
        getter = _row_getter(tuple(index[c] for c in columns))
        return list(map(getter, cast(list[Any], self.data)))

    def field(self, row: int, column: str) -> str:
        if self.instances is not None:
            return f"instances[{row}].{column}"
        return f"data[{row}][{self.index[column]}]"


def _decode(body: str | None, is_base64: bool, settings: ServingSettings) -> Any:
    if not body:
        raise BadRequestError(
            'request body is required: {"instances": [{...}, ...]} or '
            '{"columns": [...], "data": [[...], ...]}'
        )
    if is_base64:
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise BadRequestError("body is not valid base64-encoded UTF-8 text") from error
    # len() counts characters, a lower bound of bytes: cheap, and API Gateway caps bytes at 10 MB.
    if len(body) > settings.max_body_bytes:
        raise PayloadTooLargeError(f"body is larger than {settings.max_body_bytes} bytes")
    try:
        return orjson.loads(body)  # strict JSON (no NaN/Infinity), 3-6x faster than json.loads
    except orjson.JSONDecodeError:
        pass
    # What orjson refuses, the standard library may still read (1e400, lone surrogates, integers
    # past 64 bits), and the value is then judged per field; or it explains the error its way
    # ("NaN is not valid JSON; send null ..."). Only failing bodies pay for the second parse.
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as error:
        raise BadRequestError("body is not valid JSON: nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, ints over 4300 digits
        raise BadRequestError(f"body is not valid JSON: {error}") from error


def parse_body(body: str | None, is_base64: bool, settings: ServingSettings) -> Batch:
    """Body → a Batch of rows, or a RequestError naming what is wrong."""
    payload = _decode(body, is_base64, settings)
    if not isinstance(payload, dict):
        raise BadRequestError(
            "body must be a JSON object with an 'instances' list (or 'columns' and 'data'), "
            f"got {_json_type(payload)}"
        )
    instances = payload.get("instances")
    if (  # the common case, checked in C; anything else gets the explanations below
        type(instances) is list
        and len(payload) == 1
        and 0 < len(instances) <= settings.max_rows
        and set(map(type, instances)) == _DICT_ONLY
    ):
        return Batch(len(instances), instances)
    if "instances" not in payload and _COLUMNAR_KEYS & payload.keys():
        return _parse_columnar(payload, settings)
    return Batch.of_instances(_parse_instances(payload, settings))


def parse_instances(
    body: str | None, is_base64: bool, settings: ServingSettings
) -> list[dict[str, Any]]:
    """Body → the list of instance objects (records form only)."""
    payload = _decode(body, is_base64, settings)
    if not isinstance(payload, dict):
        raise BadRequestError(
            f"body must be a JSON object with an 'instances' list, got {_json_type(payload)}"
        )
    return _parse_instances(payload, settings)


def _unknown_keys(
    payload: dict[str, Any], allowed: frozenset[str], form: str
) -> list[dict[str, Any]]:
    extra = [_shown(key) for key in sorted(set(payload) - allowed)][:MAX_DETAILS]
    return [{"field": key, "message": f"unknown key; the body has only {form}"} for key in extra]


def _check_size(count: int, settings: ServingSettings, what: str) -> None:
    if count > settings.max_rows:
        raise PayloadTooLargeError(
            f"{count} {what} exceed the limit of {settings.max_rows} per request"
        )


def _parse_instances(payload: dict[str, Any], settings: ServingSettings) -> list[dict[str, Any]]:
    extra_details = _unknown_keys(payload, _RECORDS_KEYS, "'instances'")
    if "instances" not in payload:
        raise BadRequestError(
            "'instances' is required",
            [{"field": "instances", "message": "missing"}, *extra_details],
        )
    if extra_details:
        raise BadRequestError(
            f"unknown top-level keys: {', '.join(d['field'] for d in extra_details)}",
            extra_details,
        )
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
    _check_size(len(instances), settings, "instances")
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


def _parse_columnar(payload: dict[str, Any], settings: ServingSettings) -> Batch:
    extra_details = _unknown_keys(payload, _COLUMNAR_KEYS, "'columns' and 'data'")
    missing = [
        {"field": key, "message": "missing"} for key in ("columns", "data") if key not in payload
    ]
    if missing:
        raise BadRequestError(
            "the columnar form needs both 'columns' and 'data'", [*missing, *extra_details]
        )
    if extra_details:
        raise BadRequestError(
            f"unknown top-level keys: {', '.join(d['field'] for d in extra_details)}",
            extra_details,
        )
    columns, data = payload["columns"], payload["data"]
    if not isinstance(columns, list) or set(map(type, columns)) - {str}:
        raise BadRequestError(
            "'columns' must be a list of column names",
            [
                {
                    "field": "columns",
                    "message": f"expected array of strings, got {_describe(columns)}",
                }
            ],
        )
    if len(set(columns)) != len(columns):
        repeated = sorted({_shown(c) for c in columns if columns.count(c) > 1})[:MAX_DETAILS]
        raise BadRequestError(
            f"'columns' repeats {', '.join(repeated)}",
            [{"field": "columns", "message": f"repeated: {', '.join(repeated)}"}],
        )
    if not isinstance(data, list):
        raise BadRequestError(
            "'data' must be a list of rows",
            [{"field": "data", "message": f"expected array, got {_json_type(data)}"}],
        )
    if not data:
        raise BadRequestError("'data' is empty", [{"field": "data", "message": "at least one row"}])
    _check_size(len(data), settings, "rows")
    width = len(columns)
    if set(map(type, data)) != {list} or set(map(len, data)) != {width}:
        bad = [i for i, row in enumerate(data) if type(row) is not list or len(row) != width]
        raise BadRequestError(
            f"{len(bad)} row(s) of 'data' are not arrays of {width} values (one per column)",
            [
                {
                    "row": i,
                    "field": f"data[{i}]",
                    "message": (
                        f"expected array of {width} values, got "
                        + (
                            f"{len(data[i])} values"
                            if type(data[i]) is list
                            else _json_type(data[i])
                        )
                    ),
                }
                for i in bad[:MAX_DETAILS]
            ],
        )
    return Batch.of_columns(columns, data)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        kinds = sorted({_json_type(v) for v in value} - {"string"})
        return f"array containing {', '.join(kinds)}" if kinds else "array"
    return _json_type(value)


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
        details.append(
            {
                "row": i,
                "field": f"instances[{i}]",
                "message": _column_mismatch(missing, unknown, layout),
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


def _column_mismatch(missing: list[str], unknown: list[str], layout: FeatureLayout) -> str:
    parts = []
    if missing:
        parts.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        note = " (the target column is not an input)" if layout.target in unknown else ""
        parts.append(f"unknown columns: {', '.join(unknown)}{note}")
    return "; ".join(parts)


def _check_header(batch: Batch, layout: FeatureLayout) -> None:
    """The columnar form names its columns once: check them once."""
    names = frozenset(batch.columns)
    missing = sorted(layout.required - names)
    unknown = [_shown(c) for c in sorted(names - layout.known)][:MAX_DETAILS]
    if not missing and not unknown:
        return
    raise BadRequestError(
        f"'columns' do not match the model's columns; expected exactly: "
        f"{', '.join(sorted(layout.required))}",
        [
            {
                "field": "columns",
                "message": _column_mismatch(missing, unknown, layout),
                "missing": missing,
                "unknown": unknown,
            }
        ],
    )


def _detail(batch: Batch, row: int, column: str, message: str) -> dict[str, Any]:
    return {"row": row, "column": column, "field": batch.field(row, column), "message": message}


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


def numeric_tensor(
    batch: Batch,
    columns: tuple[str, ...],
    record_getter: Callable[[Any], tuple[Any, ...]] | None = None,
) -> np.ndarray:
    """float32 [N, k], null → NaN. bool and str are refused, not coerced."""
    rows = batch.rows(columns, record_getter)
    if len(rows) <= _FEW_ROWS:
        values = rows[0] if len(rows) == 1 else tuple(chain.from_iterable(rows))
        # A few values are range-checked faster in Python than by two numpy calls; filter(None)
        # drops nulls (and zeros, which are in range anyway).
        if (
            set(map(type, values)) <= _NUMERIC_OK
            and not max(map(abs, filter(None, values)), default=0) > _FLOAT32_MAX
        ):
            return np.array(rows, dtype=np.float32)
    elif set(map(type, chain.from_iterable(rows))) <= _NUMERIC_OK:
        try:
            wide = np.array(rows, dtype=np.float64)  # None → NaN here
        except OverflowError:  # an int beyond float64: explained below
            wide = None
        # Range-checked in float64 (fmax skips NaN; all-NaN gives NaN, which is not > max):
        # narrowing an out-of-range value would warn, and errstate costs more than this check.
        if wide is not None and not np.fmax.reduce(np.abs(wide), axis=None) > _FLOAT32_MAX:
            return wide.astype(np.float32)
    details = [
        _detail(batch, i, column, problem)
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
    batch: Batch,
    columns: tuple[str, ...],
    categories: dict[str, frozenset[str]],
    record_getter: Callable[[Any], tuple[Any, ...]] | None = None,
) -> np.ndarray:
    """object [N, m] of str, null → "" (the graph's missing marker), numbers → their text."""
    rows = batch.rows(columns, record_getter)
    types = set(map(type, chain.from_iterable(rows)))
    if types <= _TEXT:
        return np.array(rows, dtype=object)
    if types <= _TEXT_OR_NULL:
        if len(rows) <= _FEW_ROWS:  # cheaper in Python than two numpy calls
            return np.array([[v or "" for v in row] for row in rows], dtype=object)
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
                details.append(_detail(batch, i, column, message))
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


def build_inputs(batch: Batch, loaded: LoadedModel) -> dict[str, np.ndarray]:
    """The ONNX feeds for this batch, per the model's feature schema."""
    layout = loaded.layout
    instances = batch.instances
    if instances is None:
        _check_header(batch, layout)
    # Every row with exactly k keys, all k required ones found by itemgetter, means the keys are
    # exactly the required set: two C-level passes instead of a Python loop over the rows.
    elif set(map(len, instances)) != {len(layout.required)}:
        _check_columns(instances, layout)  # explains, or accepts extra known-but-unused columns
    feeds: dict[str, np.ndarray] = {}
    problems: list[BadRequestError] = []
    try:
        if layout.numeric:
            try:
                feeds["numeric"] = numeric_tensor(batch, layout.numeric, layout.numeric_getter)
            except BadRequestError as error:
                problems.append(error)
        if layout.categorical:
            try:
                feeds["categorical"] = categorical_tensor(
                    batch, layout.categorical, layout.categories, layout.categorical_getter
                )
            except BadRequestError as error:
                problems.append(error)
    except KeyError:  # a row swapped a required column for an unknown one
        if instances is not None:
            _check_columns(instances, layout)
        raise
    if problems:  # report numeric and categorical mistakes together
        details = [d for p in problems for d in p.details][:MAX_DETAILS]
        raise BadRequestError("; ".join(p.message for p in problems), details)
    return feeds


# outputs ------------------------------------------------------------------------------------------
def format_outputs(loaded: LoadedModel, outputs: list[np.ndarray]) -> dict[str, Any]:
    """The prediction fields of the answer. Numeric arrays stay numpy: ``encode_json`` writes
    float32 values in their shortest text (3.4, not 3.4000000953674316) without a Python list."""
    layout = loaded.layout
    if layout.task != "classification":
        return {"predictions": outputs[0].reshape(-1)}
    labels, probabilities = outputs
    if layout.label_type == "str" and labels.dtype == object:
        predictions: Any = labels.tolist()  # already str: the graph's labels are the schema's
    else:
        dtype = _LABEL_DTYPES.get(layout.label_type)
        predictions = labels.astype(dtype) if dtype is not None else labels
        if predictions.dtype.kind in "OU":
            predictions = predictions.tolist()
    return {
        "predictions": predictions,
        "classes": layout.classes,
        "probabilities": probabilities,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):  # arrays orjson does not take natively
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(document: Any) -> str:
    """A response body. NaN (a regressor's output can be) becomes null, as orjson writes it."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY, default=_json_default).decode()


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
            loaded = LoadedModel(model, version, document, session, layout, len(body))
            _warm_up(loaded)
        except ModelLoadError:
            raise
        except (ModelNotFound, *self.aws_errors) as error:  # type: ignore[misc]
            raise ModelLoadError(f"artifact could not be read: {error}") from error
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelLoadError(f"version document is malformed: {error!r}") from error
        except Exception as error:  # onnxruntime raises its own (unexported) exception types
            raise ModelLoadError(f"onnxruntime refused the artifact: {error}") from error
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
            feeds = build_inputs(batch, loaded)
            outputs = loaded.session.run(loaded.layout.output_names, feeds)
            result = {
                "model": model,
                "version": loaded.version,
                "variant": variant,
                "request_id": request_id,
                **format_outputs(loaded, outputs),
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
            feeds = build_inputs(batch, shadow)
            outputs = shadow.session.run(shadow.layout.output_names, feeds)
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
    message = f"version must be a positive integer, got {_shown(text)!r}"
    if not_found:
        raise ModelNotFound(message)
    raise BadRequestError(message, [{"field": where, "message": message}])


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


__all__ = [
    "BadRequestError",
    "Batch",
    "ModelUnavailableError",
    "PayloadTooLargeError",
    "Predictor",
    "RequestError",
    "get_predictor",
    "parse_body",
    "reset_predictor",
]
