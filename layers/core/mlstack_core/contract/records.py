"""Table rows → the JSON a client would send for them: records, or the columnar form.

The gate scores the holdout as columnar requests (``table_feeds``) and a batch job scores its file
through records, so both take the request path: a number cell becomes a JSON number, a
categorical, datetime or text cell a string, and a missing cell null.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from mlstack_core.contract.batch import numeric_column
from mlstack_core.contract.layout import FeatureLayout
from mlstack_core.contract.request import Batch
from mlstack_core.contract.tensors import build_inputs
from mlstack_core.errors import UnparseableNumber
from mlstack_core.kinds.numbers import parse_number
from mlstack_core.tabular import Table

# Rows turned into records at a time: bounds the Python objects alive while building feeds.
RECORD_CHUNK_ROWS = 8192
_EMPTY = frozenset({""})


def _numbers(cells: list[str], name: str) -> list[float | None]:
    """The cells as JSON numbers (``parse_number``'s), None where missing; UnparseableNumber
    names the first cell that is not one."""
    numbers = numeric_column(cells, _EMPTY)  # the whole column at once, when it can be
    return numbers if numbers is not None else _numbers_cell_by_cell(cells, name)


def _numbers_cell_by_cell(cells: list[str], name: str) -> list[float | None]:
    values: list[float | None] = []
    for row, cell in enumerate(cells):
        if not cell:
            values.append(None)
            continue
        number = parse_number(cell)
        if number is None:
            raise UnparseableNumber(f"column {name!r} holds {cell!r} at data row {row + 1}")
        values.append(number)
    return values


def _row_chunks(
    table: Table, layout: FeatureLayout, chunk_rows: int
) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """(column names, rows as value tuples), ``chunk_rows`` rows at a time."""
    columns: dict[str, list[Any]] = {}
    for name in layout.numeric:
        columns[name] = _numbers(table.columns[name], name)
    for name in (*layout.categorical, *layout.datetime, *layout.text):
        columns[name] = [cell or None for cell in table.columns[name]]
    names = list(columns)
    for start in range(0, table.n_rows, chunk_rows):
        values = [column[start : start + chunk_rows] for column in columns.values()]
        yield names, list(zip(*values, strict=True))


def record_chunks(
    table: Table, layout: FeatureLayout, chunk_rows: int = RECORD_CHUNK_ROWS
) -> Iterator[list[dict[str, Any]]]:
    """Every row of ``table`` as records holding the layout's columns, ``chunk_rows`` at a time.
    UnparseableNumber when a column the layout reads as numeric holds text."""
    for names, rows in _row_chunks(table, layout, chunk_rows):
        yield [dict(zip(names, row, strict=True)) for row in rows]


def table_records(table: Table, layout: FeatureLayout) -> list[dict[str, Any]]:
    """Every row of ``table`` as one list of records."""
    return [record for chunk in record_chunks(table, layout) for record in chunk]


def table_feeds(table: Table, layout: FeatureLayout) -> dict[str, np.ndarray]:
    """The layout's ONNX feeds for every row of ``table``, built a chunk at a time through the
    serving contract (``build_inputs``), as the API's columnar requests (``columns`` + ``data``):
    the same conversions as records, without a dict per row."""
    parts = [
        build_inputs(Batch.of_columns(names, cast(list[list[Any]], rows)), layout)
        for names, rows in _row_chunks(table, layout, RECORD_CHUNK_ROWS)
    ]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
