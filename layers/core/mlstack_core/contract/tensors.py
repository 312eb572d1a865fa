"""Rows of a ``Batch`` → the ONNX feeds of a version: ``numeric`` float32 (numbers, then the
parts of each datetime column), ``categorical`` str and ``text`` str (normalised texts).

Values are checked, not coerced: a string in a numeric column or a boolean in a categorical one
is a ``RequestError`` naming the row and column. A datetime value is a string; one that does not
read as a date is missing, as in training (``kinds.datetimes``). Per-row work stays in C
(itemgetter, map, numpy) so a single-row request costs microseconds and a 10,000-row one
milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import chain
from typing import Any, Final, cast

import numpy as np

from mlstack_core.contract.layout import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    TEXT_INPUT,
    FeatureLayout,
)
from mlstack_core.contract.request import Batch
from mlstack_core.errors import MAX_DETAILS, RequestError, json_type, shown
from mlstack_core.kinds import text as text_kind
from mlstack_core.kinds.inputs import datetime_block
from mlstack_core.kinds.numbers import FLOAT32_MAX as _FLOAT32_MAX

_FEW_ROWS: Final = 4  # up to here, per-value checks in Python beat numpy's per-call overhead
_NUMERIC_OK: Final = frozenset({int, float, type(None)})
_TEXT: Final = frozenset({str})
_TEXT_OR_NULL: Final = frozenset({str, type(None)})


def _check_columns(instances: list[dict[str, Any]], layout: FeatureLayout) -> None:
    required, known = layout.required, layout.known
    # dict_keys == frozenset runs in C; only rows that differ get the slow explanation below.
    odd = [i for i, keys in enumerate(map(dict.keys, instances)) if keys != required]
    details: list[dict[str, Any]] = []
    count = 0
    for i in odd:
        keys = instances[i].keys()
        missing = sorted(required - keys)
        unknown = [shown(key) for key in sorted(keys - known)][:MAX_DETAILS]
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
        raise RequestError(
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
    unknown = [shown(c) for c in sorted(names - layout.known)][:MAX_DETAILS]
    if not missing and not unknown:
        return
    raise RequestError(
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
    value_type = type(value)
    if value_type is float or value_type is int:
        if not abs(value) <= _FLOAT32_MAX:  # also catches inf (1e400 parses as inf)
            return "number is outside the float32 range"
        return None
    if value is None:
        return None
    if value_type is str:
        return "expected a number or null, got string (numbers in quotes are not converted)"
    return f"expected a number or null, got {json_type(value)}"


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
    raise RequestError(_summary(details, "numeric"), details[:MAX_DETAILS])


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
                    else f"expected a string, number or null, got {json_type(value)}"
                    + ("; send the category as a string" if type(value) is bool else "")
                )
                details.append(_detail(batch, i, column, message))
            else:
                row[j] = text
    if details:
        raise RequestError(_summary(details, "categorical"), details[:MAX_DETAILS])
    return np.array(fixed, dtype=object)


def datetime_tensor(batch: Batch, layout: FeatureLayout) -> np.ndarray:
    """float32 [N, parts of every datetime column]: strings are read, null is missing; any other
    JSON type is refused (a number is no date: epoch seconds belong in a numeric column)."""
    rows = batch.rows(layout.datetime, layout.datetime_getter)
    if not set(map(type, chain.from_iterable(rows))) <= _TEXT_OR_NULL:
        details = [
            _detail(
                batch, i, column, f"expected a date or time as a string, got {json_type(value)}"
            )
            for i, row in enumerate(rows)
            for column, value in zip(layout.datetime, row, strict=True)
            if value is not None and type(value) is not str
        ]
        raise RequestError(_summary(details, "datetime"), details[:MAX_DETAILS])
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in layout.dates]
    return datetime_block(layout.dates, columns)


def text_tensor(batch: Batch, layout: FeatureLayout) -> np.ndarray:
    """object [N, t] of normalised texts (``kinds.text``): null is the empty text, a number its
    text; any other JSON type is refused."""
    rows = batch.rows(layout.text, layout.text_getter)
    if not set(map(type, chain.from_iterable(rows))) <= _TEXT_OR_NULL:
        fixed: list[list[Any]] = [list(row) for row in rows]
        details = []
        for i, row in enumerate(fixed):
            for j, column in enumerate(layout.text):
                value = row[j]
                if value is None or type(value) is str:
                    continue
                text = _category_text(value, frozenset())
                if text is None:
                    details.append(
                        _detail(
                            batch, i, column, f"expected a string or null, got {json_type(value)}"
                        )
                    )
                row[j] = text
        if details:
            raise RequestError(_summary(details, "text"), details[:MAX_DETAILS])
        rows = [tuple(row) for row in fixed]
    if len(rows) <= _FEW_ROWS:  # cheaper in Python than numpy's per-call overhead
        normalise = text_kind.normalise
        return np.array([list(map(normalise, row)) for row in rows], dtype=object).reshape(
            len(rows), len(layout.text)
        )
    # A column at a time: kinds.text reads a whole column's texts in a few passes.
    block = np.empty((len(rows), len(layout.text)), dtype=object)
    for j, values in enumerate(zip(*rows, strict=True)):
        block[:, j] = text_kind.normalise_all(values)
    return block


def _summary(details: list[dict[str, Any]], kind: str) -> str:
    if not details:  # unreachable by construction; never let a message turn a 400 into a 500
        return f"invalid value in a {kind} column"
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"invalid value in {kind} column {first['column']!r} at row {first['row']}{more}"


def _numbers(batch: Batch, layout: FeatureLayout) -> np.ndarray:
    return numeric_tensor(batch, layout.numeric, layout.numeric_getter)


def _categories(batch: Batch, layout: FeatureLayout) -> np.ndarray:
    return categorical_tensor(
        batch, layout.categorical, layout.categories, layout.categorical_getter
    )


def build_inputs(batch: Batch, layout: FeatureLayout) -> dict[str, np.ndarray]:
    """The ONNX feeds for this batch, per the version's feature layout."""
    instances = batch.instances
    if instances is None:
        _check_header(batch, layout)
    # Every row with exactly k keys, all k required ones found by itemgetter, means the keys are
    # exactly the required set: two C-level passes instead of a Python loop over the rows.
    elif set(map(len, instances)) != {len(layout.required)}:
        _check_columns(instances, layout)  # explains, or accepts extra known-but-unused columns
    feeds: dict[str, np.ndarray] = {}
    problems: list[RequestError] = []
    builders = [
        (NUMERIC_INPUT, layout.numeric, _numbers),
        (NUMERIC_INPUT, layout.datetime, datetime_tensor),
        (CATEGORICAL_INPUT, layout.categorical, _categories),
        (TEXT_INPUT, layout.text, text_tensor),
    ]
    try:
        for name, columns, build in builders:
            if not columns:
                continue
            try:
                block = build(batch, layout)
            except RequestError as error:
                problems.append(error)
                continue
            # The numeric input holds the numbers, then the datetime parts.
            feeds[name] = np.hstack([feeds[name], block]) if name in feeds else block
    except KeyError:  # a row swapped a required column for an unknown one
        if instances is not None:
            _check_columns(instances, layout)
        raise
    if problems:  # report every kind's mistakes together
        details = [d for p in problems for d in p.details][:MAX_DETAILS]
        raise RequestError("; ".join(p.message for p in problems), details)
    return feeds
