"""The training image's Arrow CSV engine (mlstack_task.columnar) against the functions' csv-module
code (mlstack_core.tabular): the same tables, numbers, split bytes and named errors."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack_core import tabular
from mlstack_core.errors import DatasetError
from mlstack_core.kinds.numbers import parse_number
from mlstack_task import columnar

NA_VALUES = ["NA", "n/a"]
# Cells that stress the reading: quoting, line ends inside cells, whitespace the csv module
# keeps and the missing rule drops, the packing separator, numbers float() and Arrow read apart.
TRICKY_CELLS = [
    "",
    " ",
    "\u00a0",
    "\t ",
    "NA",
    "n/a",
    "a,b",
    'say "hi"',
    "two\nlines",
    "cr\ronly",
    "crlf\r\nin",
    "\x1f",
    "x\x1fy",
    "café",
    "日本",
    "1",
    "-2.5",
    "1e3",
    ".5",
    "5.",
    "+7",
    " 1",
    "1 ",
    "1_000",
    "inf",
    "nan",
    "-Infinity",
    "1e400",
    "3.5e38",
    "0x10",
    "٣",
]
numeric_cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", "NA", "1.5", "-0", "2e-3"]),
)
free_cells = st.one_of(
    st.sampled_from(TRICKY_CELLS),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6),
)
names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r\n"), min_size=1, max_size=8
).filter(lambda name: name.strip() != "")


@st.composite
def csv_files(draw: st.DrawFn, delimiter: str = ",", quote_free: bool = False) -> bytes:
    """A CSV file; ``quote_free``: no cell the csv module would quote, most of the time."""
    cells = free_cells.filter(lambda cell: not set(cell) & {delimiter, '"', "\r", "\n"})
    header = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    header = [*header, "y"] if "y" not in header else header
    kinds = [draw(st.sampled_from(["numeric", "free"])) for _ in header]
    n_rows = draw(st.integers(0, 30))
    rows = [
        [
            draw(numeric_cells if kind == "numeric" else cells if quote_free else free_cells)
            for kind in kinds
        ]
        for _ in range(n_rows)
    ]
    ragged = draw(st.booleans())
    if rows and ragged:
        rows[draw(st.integers(0, len(rows) - 1))].append("extra")
    text = io.StringIO()
    writer = csv.writer(
        text,
        delimiter=delimiter,
        lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
        quoting=csv.QUOTE_MINIMAL
        if quote_free
        else draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
    )
    writer.writerow(header)
    for row in rows:
        if draw(st.integers(0, 9)) == 0:
            text.write("\n")  # a blank line
        writer.writerow(row)
    data = text.getvalue().encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 9)) == 0:
        data = data + b"\xff\xfe"  # not UTF-8
    return data


def _read(
    reader: Callable[..., tabular.Table], data: bytes, delimiter: str = ","
) -> tabular.Table | DatasetError:
    try:
        return reader(data, delimiter=delimiter, na_values=NA_VALUES, required=["y"], skip=())
    except DatasetError as error:
        return error


def csv_module_read(data: bytes, **options: Any) -> tabular.Table:
    """``tabular.read_csv`` by the csv module alone (a stream is never split as a whole)."""
    return tabular.read_csv(io.BytesIO(data), **options)


def assert_same_table(ours: tabular.Table, theirs: tabular.Table) -> None:
    assert ours.header == theirs.header
    assert ours.file_header == theirs.file_header
    assert ours.n_rows == theirs.n_rows
    assert ours.columns.sizes == theirs.columns.sizes
    for name in theirs.header:
        assert ours.columns.packed(name) == theirs.columns.packed(name), name


def assert_same_outcome(
    ours: tabular.Table | DatasetError, theirs: tabular.Table | DatasetError
) -> None:
    """The same named error with the same message, or the same table."""
    if isinstance(theirs, DatasetError):
        assert type(ours) is type(theirs)
        assert str(ours) == str(theirs)
        return
    assert isinstance(ours, tabular.Table)
    assert_same_table(ours, theirs)


def assert_numbers_as_parsed(table: tabular.Table) -> None:
    for name in table.header:
        numbers = table.columns.numbers(name)
        if numbers is None:
            continue
        expected = [math.nan if c == "" else parse_number(c) for c in table.columns[name]]
        assert None not in expected, name
        assert np.array_equal(numbers, np.asarray(expected, dtype=np.float64), equal_nan=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_files())
def test_arrow_reads_every_file_as_the_csv_module_does(data: bytes) -> None:
    ours, theirs = _read(columnar.read_csv, data), _read(csv_module_read, data)
    assert_same_outcome(ours, theirs)
    if isinstance(ours, tabular.Table):
        assert_numbers_as_parsed(ours)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_a_quote_free_file_is_split_in_blocks_into_the_csv_modules_table(
    data: st.DataObject, delimiter: str
) -> None:
    """``tabular.read_csv`` splits the lines of a file given as bytes without a quote itself."""
    content = data.draw(csv_files(delimiter, quote_free=True))
    ours, theirs = (
        _read(tabular.read_csv, content, delimiter),
        _read(csv_module_read, content, delimiter),
    )
    assert_same_outcome(ours, theirs)
    if isinstance(theirs, DatasetError):
        return
    if b'"' not in content:  # read by splitting, not handed to the csv module
        assert tabular._read_quote_free(content, delimiter, NA_VALUES, ["y"], ()) is not None


@settings(max_examples=100, deadline=None)
@given(data=csv_files(), seed=st.integers(0, 2**32 - 1))
def test_arrow_writes_the_split_files_byte_for_byte(data: bytes, seed: int) -> None:
    table = _read(tabular.read_csv, data)
    if not isinstance(table, tabular.Table) or len(table.header) < 2:
        return
    schema = {
        "features": [{"name": name} for name in table.header if name != "y"],
        "target": "y",
    }
    rows = np.random.default_rng(seed).permutation(table.n_rows)[: max(1, table.n_rows // 2)]
    ours, theirs = io.BytesIO(), io.BytesIO()
    columnar.write_split_to(ours, table, schema, rows)
    tabular.write_split_to(theirs, table, schema, rows)
    assert ours.getvalue() == theirs.getvalue()


def large_table(rows: int, odd_row: int | None = None) -> bytes:
    """Several chunks of rows; one cell holding the packing separator when ``odd_row`` is set."""
    rng = np.random.default_rng(7)
    lines = ["num,cat,y"]
    for i in range(rows):
        number = "" if i % 17 == 0 else f"{rng.normal():.4f}"
        category = "x\x1fy" if i == odd_row else f"c{i % 5}"
        lines.append(f"{number},{category},{rng.normal():.3f}")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("odd_row", [None, 9000])
def test_arrow_packs_chunks_as_the_csv_module_does(odd_row: int | None) -> None:
    data = large_table(3 * tabular.CHUNK_ROWS + 11, odd_row)
    ours, theirs = _read(columnar.read_csv, data), _read(csv_module_read, data)
    assert isinstance(ours, tabular.Table)
    assert isinstance(theirs, tabular.Table)
    assert_same_table(ours, theirs)
    assert ours.columns.numbers("cat") is None
    numbers = ours.columns.numbers("num")
    assert numbers is not None
    assert np.isnan(numbers[0])
    assert_numbers_as_parsed(ours)
    schema = {"features": [{"name": "num"}, {"name": "cat"}], "target": "y"}
    every_other = np.arange(0, theirs.n_rows, 2)
    assert columnar.write_split_to is not tabular.write_split_to
    ours_split, theirs_split = io.BytesIO(), io.BytesIO()
    columnar.write_split_to(ours_split, ours, schema, every_other)
    tabular.write_split_to(theirs_split, theirs, schema, every_other)
    assert ours_split.getvalue() == theirs_split.getvalue()


def test_numbers_and_arrays_follow_the_cells_a_table_keeps() -> None:
    table = _read(columnar.read_csv, large_table(100))
    assert isinstance(table, tabular.Table)
    numbers = table.columns.numbers("y")
    assert numbers is not None
    kept = table.take([3, 1, 50])
    kept_numbers = kept.columns.numbers("y")
    assert kept_numbers is not None
    assert np.array_equal(kept_numbers, numbers[[3, 1, 50]])
    assert table.columns.native("y") is not None
    assert kept.columns.native("y") is None  # the writer splits the packed cells instead
    table.columns["y"] = ["0"] * table.n_rows  # rewritten cells are no longer those numbers
    assert table.columns.numbers("y") is None
    assert table.columns.native("y") is None
