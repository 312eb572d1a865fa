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


def model_input(feeds: Mapping[str, np.ndarray]) -> ModelInput:
    """The scikit-learn Pipeline's input: columns [numeric..., categorical..., text...]. Its
    ColumnTransformer selects columns by integer index, which skl2onnx maps positionally onto the
    graph's inputs in this order."""
    return ModelInput(
        [feeds[name] for name in (NUMERIC_INPUT, CATEGORICAL_INPUT, TEXT_INPUT) if name in feeds]
    )


class ModelInput:
    """A 2-D table of the model inputs' blocks side by side, each block keeping its own dtype.

    One object array of the same columns boxed every numeric cell as a Python float (32 bytes a
    cell, against 4 in the float32 block): at ten million rows, 1.7 GB of a Train task's peak.
    scikit-learn takes this table where it takes an array: a ColumnTransformer hands it on
    unconverted (it has ``__array__`` and ``shape``) and selects its columns with ``X[:, key]``;
    a search or a fold selects rows with ``X[rows, ...]``. A column selection inside one block
    returns that block's columns (numbers as float64, as the object array's floats converted;
    strings as objects); one across blocks, or ``np.asarray``, the object array.
    """

    ndim = 2

    def __init__(self, blocks: Sequence[np.ndarray]) -> None:
        if not blocks:
            raise ValueError("a model input needs at least one block")
        rows = {block.shape[0] for block in blocks}
        if len(rows) != 1 or any(block.ndim != 2 for block in blocks):
            raise ValueError("blocks must be 2-D with the same number of rows")
        self.blocks = list(blocks)
        self._starts = np.cumsum([0] + [block.shape[1] for block in self.blocks])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.blocks[0].shape[0], int(self._starts[-1]))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=object)
        for block, start in zip(self.blocks, self._starts, strict=False):
            out[:, start : start + block.shape[1]] = block
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: Any) -> Any:
        rows, columns = key if isinstance(key, tuple) else (key, Ellipsis)
        if isinstance(rows, int | np.integer):  # one row: as the object array's row
            return np.asarray(self[[rows], ...])[0][columns]
        if columns is Ellipsis:
            return ModelInput([block[rows] for block in self.blocks])
        if not (isinstance(rows, slice) and rows == slice(None)):
            return self[rows, ...][:, columns]
        wanted = np.arange(self.shape[1])[columns]
        flat = np.atleast_1d(wanted)
        block_of = np.searchsorted(self._starts, flat, side="right") - 1
        if flat.size and (block_of == block_of[0]).all():
            number = int(block_of[0])
            block = self.blocks[number]
            selected = block[:, wanted - self._starts[number]]
            return selected.astype(np.float64) if block.dtype.kind == "f" else selected
        return np.asarray(self)[:, columns]
