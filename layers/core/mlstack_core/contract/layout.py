"""A version's feature layout: which request fields become which ONNX inputs, and its outputs.

The graph contract (docs/internals.md, ``kinds.inputs``): a float32 ``numeric`` input [N, k] (the
numeric columns, then each datetime column's parts), a string ``categorical`` input [N, m] and a
string ``text`` input [N, t], each absent when the table had no column of that kind; classifiers
answer ``label`` and ``probabilities``, regressors ``variable``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import numpy as np

from mlstack_core.kinds.inputs import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    TEXT_INPUT,
    DatetimeColumn,
    datetime_columns,
    input_widths,
    text_columns,
)
from mlstack_core.tabular import LABEL_CASTS
from mlstack_core.tasks import CLASSIFICATION, CLASSIFIER_OUTPUTS, REGRESSOR_OUTPUTS

__all__ = [
    "CATEGORICAL_INPUT",
    "NUMERIC_INPUT",
    "TEXT_INPUT",
    "FeatureLayout",
    "row_getter",
]


LABEL_DTYPES: Final[dict[str, Any]] = {"str": str, "int": np.int64, "float": np.float64}

RowGetter = Callable[[Any], tuple[Any, ...]]


def _no_columns(row: Any) -> tuple[Any, ...]:
    return ()


def row_getter(columns: tuple[Any, ...]) -> RowGetter:
    """One row (dict or list) → the tuple of its values at ``columns`` (keys or indices), in C.

    ``itemgetter`` takes at least one key and returns a bare value for exactly one, so those two
    widths get their own getters: a table of one kind of column has an empty other kind.
    """
    if not columns:
        return _no_columns
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return itemgetter(*columns)


def _feedback_key(document: Mapping[str, Any]) -> frozenset[str]:
    key = (((document.get("spec") or {}).get("quality")) or {}).get("key")
    return frozenset({str(key)}) if key else frozenset()


@dataclass(frozen=True)
class FeatureLayout:
    """What the feature schema of a version says about building its inputs and outputs."""

    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    dates: tuple[DatetimeColumn, ...]
    text: tuple[str, ...]
    # Width of each graph input: what check_graph holds the session to.
    widths: dict[str, int]
    required: frozenset[str]
    known: frozenset[str]  # required + schema features the graph does not use (allowed, ignored)
    target: str | None
    categories: dict[str, frozenset[str]]
    classes: list[Any] | None
    label_type: str
    output_names: list[str]
    # Built once per version rather than per request: each row's values in schema order.
    numeric_getter: RowGetter
    categorical_getter: RowGetter
    datetime_getter: RowGetter
    text_getter: RowGetter

    @property
    def datetime(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.dates)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input column, kind by kind: what a request carries and a capture records."""
        return (*self.numeric, *self.categorical, *self.datetime, *self.text)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> FeatureLayout:
        """A registry version document (or ``{"schema": ...}``). KeyError/TypeError/ValueError
        here mean a malformed document."""
        schema = document["schema"]
        numeric = tuple(str(name) for name in schema.get("numeric", []))
        categorical = tuple(str(name) for name in schema.get("categorical", []))
        dates = datetime_columns(schema)
        text = tuple(text_columns(schema))
        dated = tuple(column.name for column in dates)
        if not numeric and not categorical and not dates and not text:
            raise ValueError("the schema lists no feature columns")
        features = schema.get("features", [])
        task = schema.get("task") or document.get("task") or CLASSIFICATION
        label_type = str(schema.get("label_type") or "str")
        raw_classes = schema.get("classes") or document.get("classes")
        if task == CLASSIFICATION and not raw_classes:
            raise ValueError("a classifier's schema must list its classes")
        to_label = LABEL_CASTS.get(label_type, lambda value: value)
        required = frozenset((*numeric, *categorical, *dated, *text))
        identifiers = frozenset(str(i["name"]) for i in schema.get("identifiers", []))
        return cls(
            task=task,
            numeric=numeric,
            categorical=categorical,
            dates=dates,
            text=text,
            widths=input_widths(schema),
            required=required,
            # Also identifiers and the spec's feedback key, which a request may carry for the
            # capture to record.
            known=required
            | frozenset(str(f["name"]) for f in features)
            | identifiers
            | _feedback_key(document),
            target=schema.get("target"),
            categories={
                str(f["name"]): frozenset(str(c) for c in f.get("categories") or [])
                for f in features
                if f.get("kind") == "categorical"
            },
            classes=[to_label(c) for c in raw_classes or []] if task == CLASSIFICATION else None,
            label_type=label_type,
            output_names=list(CLASSIFIER_OUTPUTS if task == CLASSIFICATION else REGRESSOR_OUTPUTS),
            numeric_getter=row_getter(numeric),
            categorical_getter=row_getter(categorical),
            datetime_getter=row_getter(dated),
            text_getter=row_getter(text),
        )
