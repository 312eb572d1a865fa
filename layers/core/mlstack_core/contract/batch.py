"""A batch job's CSV rows → the answers the API gives for them, row by row.

A file's cells are text. Each row becomes the JSON record a client would send for it (as the
gate's holdout does, ``records``): a number cell a JSON number, a categorical, datetime or text
cell a string, a cell the version's training called missing (``na_values``) null. The records
then take the request path (``LoadedModel.run_request``). Where the API would refuse a whole request
for one bad row, a batch refuses that row, with the API's reason, and scores the others.

A batch whose every cell reads cleanly (the common case) is sent as the API's columnar form
(``{"columns": [...], "data": [...]}``), its cells converted a column at a time; any other batch
takes the row-by-row path, which finds each refused row and its reason. Both give the answers
the API gives for the same rows (a property test holds them equal).

How many refused rows a job allows is ``max_refused_share``, checked here for the scoring
function and for ``mlstack score`` alike; how many rows a part holds is its
``PART_ROWS_METADATA``, which ``mlstack score --wait`` counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import Any, cast

import numpy as np

from mlstack_core.contract.outputs import format_outputs
from mlstack_core.contract.request import Batch
from mlstack_core.contract.session import LoadedModel
from mlstack_core.errors import RefusedShareOutOfRange, RequestError, shown
from mlstack_core.kinds.numbers import FLOAT32_MAX, parse_number

# A part file's object metadata: the input rows it accounts for, scored and refused (what
# ``mlstack score --wait`` counts, whatever the batches' size).
PART_ROWS_METADATA = "mlstack-rows"

# The share of a job's rows it may refuse and still succeed, unless the job says otherwise.
DEFAULT_MAX_REFUSED_SHARE = 0.01


def max_refused_share(value: Any) -> float:
    """A job's ``max_refused_share`` (its option, or the file's ``mlstack-max-refused-share``
    metadata, as text): a finite number in [0, 1), else RefusedShareOutOfRange. 0 allows no
    refused row; 1 or more would let a job that refused every row succeed, and NaN compares
    false with every share, so it would never fail either."""
    if value is None:
        return DEFAULT_MAX_REFUSED_SHARE
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = math.nan
    if not (math.isfinite(share) and 0.0 <= share < 1.0):
        raise RefusedShareOutOfRange(
            f"max_refused_share must be a number in [0, 1) (0 allows no refused row), "
            f"got {shown(str(value))!r}"
        )
    return share


# What read_csv calls missing when a version's spec says nothing (spec.schema.json's default).
DEFAULT_NA_VALUES = ("NA", "N/A", "NaN", "nan", "null", "NULL", "None")


@dataclass
class BatchScores:
    """``scored``: positions in the input, in order, answered by ``fields`` (the API's
    prediction fields: ``predictions``, and ``classes`` and ``probabilities`` for a classifier).
    ``refused``: (position, reason) for each row the API would have refused."""

    scored: list[int] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)


def missing_cells(document: Mapping[str, Any]) -> frozenset[str]:
    """The cells the version's training read as missing: its spec's ``na_values`` and ""."""
    spec = document.get("spec") or {}
    return frozenset(spec.get("na_values", DEFAULT_NA_VALUES)) | {""}


def row_record(
    cells: Mapping[str, str], loaded: LoadedModel, missing: frozenset[str]
) -> dict[str, Any] | str:
    """The record for one row of text cells, or why the API would refuse it."""
    layout = loaded.layout
    record: dict[str, Any] = {}
    for name in layout.numeric:
        cell = cells.get(name)
        if cell is None:
            return f"column {name!r} is missing"
        if cell in missing:
            record[name] = None
            continue
        number = parse_number(cell)
        if number is None:
            return f"column {name!r}: {_shown(cell)} is not a number"
        record[name] = number
    for name in (*layout.categorical, *layout.datetime, *layout.text):
        cell = cells.get(name)
        if cell is None:
            return f"column {name!r} is missing"
        record[name] = None if cell in missing else cell
    return record


def score_rows(loaded: LoadedModel, rows: Sequence[Mapping[str, str]]) -> BatchScores:
    """Score ``rows`` (text cells by column name) as the API would, one request for the batch;
    each row the request path refuses is taken out with its reason and the rest scored."""
    missing = missing_cells(loaded.document)
    clean = columnar_batch(rows, loaded, missing)
    if clean is not None:
        try:
            _, outputs = loaded.run_request(clean)
        except RequestError:
            pass  # the row-by-row path names the rows
        else:
            fields = format_outputs(loaded.layout, outputs)
            return BatchScores(scored=list(range(len(rows))), fields=fields)
    return score_row_by_row(loaded, rows, missing)


def columnar_batch(
    rows: Sequence[Mapping[str, str]], loaded: LoadedModel, missing: frozenset[str]
) -> Batch | None:
    """The rows as the API's columnar request, each column's cells converted at once, or None
    when any cell would need an explanation (no column, not a number, inf, "1_000")."""
    layout = loaded.layout
    strings = (*layout.categorical, *layout.datetime, *layout.text)
    columns: list[list[Any]] = []
    try:
        for name in layout.numeric:
            numbers = numeric_column(list(map(itemgetter(name), rows)), missing)
            if numbers is None:
                return None
            columns.append(numbers)
        for name in strings:
            cells = list(map(itemgetter(name), rows))
            if None in cells:  # a short row: no cell at all
                return None
            if not missing.isdisjoint(cells):
                cells = [None if cell in missing else cell for cell in cells]
            columns.append(cells)
    except KeyError:
        return None
    names = [*layout.numeric, *strings]
    return Batch.of_columns(names, list(map(list, zip(*columns, strict=True))))


def numeric_column(cells: list[Any], missing: frozenset[str]) -> list[float | None] | None:
    """``cells`` as the request path's numbers (None for a ``missing`` cell), converted at once;
    None when a cell is not a number ``parse_number`` reads (the caller then goes cell by cell,
    which names it)."""
    # Every step runs in C (map, compress, fromiter): a Python expression per cell costs a
    # million-row holdout seconds in Evaluate.
    is_missing = np.fromiter(map(missing.__contains__, cells), bool, len(cells))
    gaps = bool(is_missing.any())
    present = list(compress(cells, (~is_missing).tolist())) if gaps else cells
    try:
        if "_" in "".join(present):  # float() reads digit separators; parse_number does not
            return None
        values = np.fromiter(map(float, present), np.float64, len(present))
    except (TypeError, ValueError):
        return None
    # A "nan" cell that is not a missing marker is refused by parse_number; the request path
    # would read it as missing. So is a number beyond float32.
    if values.size and not (np.isfinite(values).all() and np.abs(values).max() <= FLOAT32_MAX):
        return None
    if not gaps:
        numbers: list[float | None] = values.tolist()
        return numbers
    whole = np.zeros(len(cells), dtype=np.float64)
    whole[~is_missing] = values
    numbers = cast(list[float | None], whole.tolist())
    for row in np.flatnonzero(is_missing).tolist():
        numbers[row] = None
    return numbers


def score_row_by_row(
    loaded: LoadedModel, rows: Sequence[Mapping[str, str]], missing: frozenset[str]
) -> BatchScores:
    """Each row its own record; rows the request path refuses are taken out with its reason."""
    result = BatchScores()
    pending: list[tuple[int, dict[str, Any]]] = []
    for position, cells in enumerate(rows):
        record = row_record(cells, loaded, missing)
        if isinstance(record, str):
            result.refused.append((position, record))
        else:
            pending.append((position, record))
    while pending:
        try:
            _, outputs = loaded.run_request(Batch.of_instances([record for _, record in pending]))
        except RequestError as error:
            bad = _refused_rows(error.details)
            if not bad:  # a problem with no row to blame refuses them all
                result.refused += [(position, error.message) for position, _ in pending]
                pending = []
                break
            result.refused += [(pending[row][0], reason) for row, reason in bad.items()]
            pending = [entry for row, entry in enumerate(pending) if row not in bad]
            continue
        result.scored = [position for position, _ in pending]
        result.fields = format_outputs(loaded.layout, outputs)
        break
    result.refused.sort()
    return result


def _refused_rows(details: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    bad: dict[int, str] = {}
    for detail in details:
        row = detail.get("row")
        if isinstance(row, int) and row not in bad:
            bad[row] = f"column {detail.get('column')!r}: {detail.get('message')}"
    return bad


def _shown(cell: str) -> str:
    return repr(cell if len(cell) <= 40 else f"{cell[:37]}...")
