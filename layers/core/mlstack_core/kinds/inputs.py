"""A version's schema → the names and widths of its model inputs, and raw cells → those inputs.

The graph contract (docs/internals.md): a float32 ``numeric`` input [N, k] holding the numeric
columns and then each datetime column's parts, a string ``categorical`` input [N, m], and a string
``text`` input [N, t] of normalised texts; an input is absent when the schema has no column of
its kind. Train builds its training matrices here from the split files; the prediction function,
the gate and batch scoring build the same inputs from request records (``contract.tensors``)
with the same conversions (``numbers``, ``datetimes``, ``text``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from mlstack_core.errors import UnparseableNumber
from mlstack_core.kinds import DATETIME, datetimes
from mlstack_core.kinds import text as text_kind
from mlstack_core.kinds.numbers import parse_cells

NUMERIC_INPUT: Final = "numeric"
CATEGORICAL_INPUT: Final = "categorical"
TEXT_INPUT: Final = "text"


@dataclass(frozen=True)
class DatetimeColumn:
    name: str
    form: str
    parts: tuple[str, ...]

    @property
    def input_names(self) -> list[str]:
        return [f"{self.name}.{part}" for part in self.parts]


def datetime_columns(schema: Mapping[str, Any]) -> tuple[DatetimeColumn, ...]:
    """The schema's ``datetime`` inputs, in order, with their format and parts."""
    entries = {f["name"]: f for f in schema.get("features", []) if f.get("kind") == DATETIME}
    return tuple(
        DatetimeColumn(str(name), str(entries[name]["format"]), tuple(entries[name]["parts"]))
        for name in schema.get("datetime", [])
    )


def text_columns(schema: Mapping[str, Any]) -> list[str]:
    """The schema's ``text`` inputs, in order. Like ``numeric`` and ``categorical``, the list
    says what the graph reads; a feature entry alone is no input."""
    return [str(name) for name in schema.get("text", [])]


def numeric_input_names(schema: Mapping[str, Any]) -> list[str]:
    """The columns of the ``numeric`` input: numeric columns, then each datetime column's parts
    (``placed_at.day_of_week``)."""
    derived = [name for column in datetime_columns(schema) for name in column.input_names]
    return [*map(str, schema.get("numeric", [])), *derived]


def input_widths(schema: Mapping[str, Any]) -> dict[str, int]:
    """Width of each input the graph has (inputs of width 0 are absent)."""
    widths = {
        NUMERIC_INPUT: len(numeric_input_names(schema)),
        CATEGORICAL_INPUT: len(schema.get("categorical", [])),
        TEXT_INPUT: len(text_columns(schema)),
    }
    return {name: width for name, width in widths.items() if width}


def datetime_block(
    columns: Sequence[DatetimeColumn], values: Sequence[Sequence[str | None]]
) -> np.ndarray:
    """float32 [N, parts of all columns]: ``values[j]`` are column j's raw values."""
    blocks = [
        datetimes.features(list(cells), column.form, column.parts)
        for column, cells in zip(columns, values, strict=True)
    ]
    return np.hstack(blocks) if blocks else np.empty((0, 0), dtype=np.float32)


def feeds_from_cells(
    schema: Mapping[str, Any],
    cells_of: Callable[[str], list[str]],
    n_rows: int,
    parsed: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The model inputs of a table's raw cells (``cells_of(column)``, ``""`` for missing).
    UnparseableNumber when a numeric column holds text. ``parsed``: numeric columns already
    parsed (``parse_blocks``'s float32, as Preprocess's profile keeps them), not parsed again."""
    feeds: dict[str, np.ndarray] = {}
    numeric = list(schema.get("numeric", []))
    dated = datetime_columns(schema)
    if numeric or dated:
        out = np.empty((n_rows, len(numeric_input_names(schema))), dtype=np.float32)
        for j, name in enumerate(numeric):
            if parsed is not None and name in parsed:
                out[:, j] = parsed[name]
                continue
            column, bad = parse_cells(cells_of(name))
            if bad is not None:
                row, value = bad
                raise UnparseableNumber(f"column {name!r} holds {value!r} at data row {row + 1}")
            out[:, j] = column
        if dated:
            out[:, len(numeric) :] = datetime_block(dated, [cells_of(c.name) for c in dated])
        feeds[NUMERIC_INPUT] = out
    categorical = list(schema.get("categorical", []))
    if categorical:
        block = np.empty((n_rows, len(categorical)), dtype=object)
        for j, name in enumerate(categorical):
            block[:, j] = cells_of(name)
        feeds[CATEGORICAL_INPUT] = block
    texts = text_columns(schema)
    if texts:
        block = np.empty((n_rows, len(texts)), dtype=object)
        for j, name in enumerate(texts):
            block[:, j] = text_kind.normalise_all(cells_of(name))
        feeds[TEXT_INPUT] = block
    return feeds


def model_input(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """One object array [numeric..., categorical..., text...] for the scikit-learn Pipeline. Its
    ColumnTransformer selects columns by integer index, which skl2onnx maps positionally onto the
    graph's inputs in this order."""
    parts = [
        feeds[name] for name in (NUMERIC_INPUT, CATEGORICAL_INPUT, TEXT_INPUT) if name in feeds
    ]
    rows = parts[0].shape[0]
    out = np.empty((rows, sum(part.shape[1] for part in parts)), dtype=object)
    start = 0
    for part in parts:
        out[:, start : start + part.shape[1]] = part
        start += part.shape[1]
    return out
