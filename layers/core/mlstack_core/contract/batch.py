"""A batch job's CSV rows → the answers the API gives for them, row by row.

A file's cells are text. Each row becomes the JSON record a client would send for it (as the
gate's holdout does, ``records``): a number cell a JSON number, a categorical cell a string, a
cell the version's training called missing (``na_values``) null. The records then take the
request path (``LoadedModel.score``). Where the API would refuse a whole request for one bad
row, a batch refuses that row, with the API's reason, and scores the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlstack_core.contract.errors import RequestError
from mlstack_core.contract.outputs import format_outputs
from mlstack_core.contract.request import Batch
from mlstack_core.contract.session import LoadedModel
from mlstack_core.tabular import parse_number

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
    for name in layout.categorical:
        cell = cells.get(name)
        if cell is None:
            return f"column {name!r} is missing"
        record[name] = None if cell in missing else cell
    return record


def score_rows(loaded: LoadedModel, rows: Sequence[Mapping[str, str]]) -> BatchScores:
    """Score ``rows`` (text cells by column name) as the API would, one request for the batch;
    each row the request path refuses is taken out with its reason and the rest scored."""
    missing = missing_cells(loaded.document)
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
            _, outputs = loaded.score(Batch.of_instances([record for _, record in pending]))
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
