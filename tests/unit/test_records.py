"""Table rows through the serving contract (mlstack_core.contract.records): the whole-column
conversions Evaluate uses give what the cell-by-cell request path gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core.contract.layout import FeatureLayout
from mlstack_core.contract.records import (
    _numbers,
    _numbers_cell_by_cell,
    table_feeds,
    table_records,
)
from mlstack_core.contract.request import Batch
from mlstack_core.contract.tensors import build_inputs
from mlstack_core.errors import UnparseableNumber
from mlstack_core.tabular import Table

ODD_NUMBERS = ["", " 1", "1 ", "1_000", "nan", "inf", "-Infinity", "1e39", "3.4e38", "abc", "٣"]
number_cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**9), 10**9).map(str),
    st.sampled_from(ODD_NUMBERS),
)


def _outcome(convert: Callable[..., Any], *arguments: Any) -> Any:
    """What ``convert`` returns, or its UnparseableNumber's message."""
    try:
        return convert(*arguments)
    except UnparseableNumber as error:
        return str(error)


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(number_cells, max_size=40))
def test_a_column_converts_at_once_as_cell_by_cell(cells: list[str]) -> None:
    assert _outcome(_numbers, cells, "x") == _outcome(_numbers_cell_by_cell, cells, "x")


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(number_cells, st.sampled_from(["", "red", "blue", "vert clair"])),
        min_size=1,
        max_size=30,
    )
)
def test_columnar_feeds_equal_the_records_feeds(rows: list[tuple[str, str]]) -> None:
    table = Table(
        header=["size", "colour", "y"],
        columns={
            "size": [size for size, _ in rows],
            "colour": [colour for _, colour in rows],
            "y": ["1"] * len(rows),
        },
        n_rows=len(rows),
    )
    schema = {
        "target": "y",
        "task": "regression",
        "features": [
            {"name": "size", "kind": "numeric"},
            {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]},
        ],
        "numeric": ["size"],
        "categorical": ["colour"],
        "datetime": [],
        "text": [],
    }
    layout = FeatureLayout.from_document({"schema": schema})
    expected = _outcome(
        lambda t, lay: build_inputs(Batch.of_instances(table_records(t, lay)), lay), table, layout
    )
    feeds = _outcome(table_feeds, table, layout)
    if isinstance(expected, str):
        assert feeds == expected
        return
    assert isinstance(feeds, dict)
    assert set(feeds) == set(expected)
    for name, block in expected.items():
        if block.dtype == object:
            assert feeds[name].tolist() == block.tolist()
        else:
            assert np.array_equal(feeds[name], block, equal_nan=True)
