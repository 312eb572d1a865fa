"""Preprocess's CSV reading and split writing with Apache Arrow, for the training image only.

The functions parse CSV with the ``csv`` module and ``float()`` (``mlstack_core.tabular``): about
70,000 rows a second, and the only choice inside Lambda's 250 MB package limit. A task has no
such limit, and a table large enough to be sent to one is where that rate costs minutes. This
module gives ``mlstack_preprocess`` the same two operations on pyarrow's C++ CSV reader and
compute kernels:

- ``read_csv`` returns the ``tabular.Table`` that ``tabular.read_csv`` returns for the same
  bytes: the same kept columns, the same cells (missing values normalised to ``""`` by the same
  rule), packed into the same chunks, plus each column that reads entirely as numbers, as numbers
  (``Columns.numbers``), which spares the profile its per-cell ``float()``. Anything Arrow does not
  read exactly as the ``csv`` module would (a ragged row, invalid UTF-8, a leading blank line, no
  data rows, a NUL byte), it hands to ``tabular.read_csv``, which reads the file or raises the
  named error the functions raise; so every data problem fails a run by the same name on both
  paths.
- ``write_split_to`` writes the bytes ``tabular.write_split_to`` writes (the ``csv`` module's
  minimal quoting and ``\\r\\n`` line ends), a block of rows at a time.

tests/unit/test_columnar.py holds both to their ``tabular`` counterparts on generated files.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import IO, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mlstack_core.kinds.numbers import FLOAT32_MAX
from mlstack_core.tabular import (
    CHUNK_ROWS,
    SEPARATOR,
    Chunk,
    Columns,
    Table,
    checked_header,
    split_columns,
    unpack,
)
from mlstack_core.tabular import read_csv as read_csv_cells

_BOM: Final = b"\xef\xbb\xbf"
# What ``str.isspace`` calls whitespace: a cell of only these is missing (tabular.read_csv).
_SPACES: Final = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
_SPACE_ONLY: Final = "^[" + "".join(f"\\x{{{ord(space):x}}}" for space in _SPACES) + "]+$"
# The first byte of each of them in UTF-8.
_WHITESPACE_BYTE: Final = re.compile(
    b"[" + b"".join(re.escape(space.encode()[:1]) for space in _SPACES) + b"]"
)
# Cells the csv module would quote (QUOTE_MINIMAL with "\r\n" line ends).
_NEEDS_QUOTES: Final = '[,"\r\n]'
_WRITE_BLOCK_ROWS: Final = 1 << 18
_PROBE_CELLS: Final = 256


def read_csv(
    source: bytes | IO[bytes],
    *,
    delimiter: str = ",",
    na_values: Iterable[str] = (),
    required: Sequence[str] = (),
    skip: Collection[str] = (),
) -> Table:
    """``tabular.read_csv``'s table and errors, read by Arrow when it reads the file exactly."""
    data = source if isinstance(source, bytes) else source.read()
    listed = [cell for cell in dict.fromkeys(na_values) if cell]  # "" is missing anyway
    table = _read_exactly(data, delimiter, listed, required, skip)
    if table is None:
        return read_csv_cells(
            data, delimiter=delimiter, na_values=na_values, required=required, skip=skip
        )
    return table


def _read_exactly(
    data: bytes,
    delimiter: str,
    listed: list[str],
    required: Sequence[str],
    skip: Collection[str],
) -> Table | None:
    """The table, or None when Arrow would not read this file exactly as the csv module does."""
    start = len(_BOM) if data.startswith(_BOM) else 0
    if data.find(b"\x00") >= 0 or len(data) == start or data[start : start + 1] in (b"\n", b"\r"):
        return None
    body = memoryview(data)[start:]
    line_end = data.find(b"\n", start)
    # The header row alone, unless a quoted name may span lines: then the reader reads on.
    first = body if b'"' in data[start:line_end] or line_end < 0 else body[: line_end + 1 - start]
    try:
        text = io.TextIOWrapper(io.BytesIO(first), encoding="utf-8", newline="")
        header = next(csv.reader(text, delimiter=delimiter), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    header = checked_header(header, delimiter, required)
    keep = [name for name in header if name not in skip]
    if not keep:
        return None
    fields = [f"f{i}" for i in range(len(header))]
    kept_fields = [fields[header.index(name)] for name in keep]
    try:
        arrow = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pa_csv.ReadOptions(column_names=fields, skip_rows=1),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(fields, pa.string()),
                include_columns=kept_fields,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if arrow.num_rows == 0:
        return None
    del body
    sizes = [
        min(CHUNK_ROWS, arrow.num_rows - start) for start in range(0, arrow.num_rows, CHUNK_ROWS)
    ]
    chunks: dict[str, list[Chunk]] = {}
    numbers: dict[str, np.ndarray] = {}
    native: dict[str, pa.Array] = {}
    for name, field in zip(keep, kept_fields, strict=True):
        cells = arrow.column(field).combine_chunks()
        arrow = arrow.drop_columns([field])
        cells = _missing_as_empty(cells, listed)
        chunks[name] = _packed(cells, sizes)
        native[name] = cells  # the split files are written from it
        reading = _numbers(cells)
        if reading is not None:
            numbers[name] = reading
    return Table(
        header=keep,
        columns=Columns.from_chunks(chunks, sizes, numbers, native),
        n_rows=sum(sizes),
        file_header=list(header),
    )


def _missing_as_empty(cells: pa.Array, listed: list[str]) -> pa.Array:
    """The cells with each missing one (a ``listed`` value, or only whitespace) as ``""``;
    the same array when none needs rewriting, as in most columns."""
    data = cells.buffers()[2]
    # The regex costs as much as the read; a scan of the bytes for any whitespace's first byte
    # is a tenth of that, and finds none in most columns.
    spaced = data is not None and _WHITESPACE_BYTE.search(memoryview(data)) is not None
    missing = pc.match_substring_regex(cells, _SPACE_ONLY) if spaced else None
    # A comparison per listed value is ten times faster than a set lookup per cell.
    for value in listed:
        equal = pc.equal(cells, value)
        missing = equal if missing is None else pc.or_(missing, equal)
    if missing is None or not pc.any(missing).as_py():
        return cells
    return pc.if_else(missing, "", cells)


def _packed(cells: pa.Array, sizes: Sequence[int]) -> list[Chunk]:
    """``tabular.pack`` of each block of ``sizes`` cells: joined by the separator, or a list
    when a cell of the block holds it."""
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    blocks = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), cells)
    joined: list[Chunk] = pc.binary_join(blocks, SEPARATOR).to_pylist()
    holds_separator = pc.match_substring(cells, SEPARATOR)
    if pc.any(holds_separator).as_py():
        flags = holds_separator.to_numpy(zero_copy_only=False)
        for position, (start, end) in enumerate(itertools.pairwise(offsets)):
            if flags[start:end].any():
                joined[position] = cells.slice(start, end - start).to_pylist()
    return joined


def _numbers(cells: pa.Array) -> np.ndarray | None:
    """The column as ``parse_number`` reads each cell (NaN for ``""``), or None when a cell is
    not a number Arrow reads, or is one ``parse_number`` refuses (not finite, beyond float32).
    Arrow refuses what ``float()`` alone takes (spaces around the digits, underscores, other
    scripts' digits): such a column is left to ``parse_number``."""
    present = pc.not_equal(cells, "")
    count = pc.sum(present).as_py() or 0
    if count == 0:
        return None
    if count < len(cells):
        if cells.offset:
            cells = pa.concat_arrays([cells])  # buffers from the array's first cell
        # The empty cells as nulls, which the cast keeps and to_numpy makes NaN: the same
        # buffers under a validity bitmap, where filtering them out would copy every string.
        cells = pa.Array.from_buffers(
            cells.type, len(cells), [present.buffers()[1], *cells.buffers()[1:]], offset=0
        )
    try:
        # A failed cast of a whole column costs more than a successful one: try a few first.
        pc.cast(cells.slice(0, _PROBE_CELLS), pa.float64())
        numbers = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if int(np.count_nonzero(~np.isnan(numbers))) != count:
        return None  # a "nan" cell: NaN where the cell is present
    # fmax skips the NaN of empty cells; inf is beyond float32 too.
    if not np.fmax.reduce(np.abs(numbers)) <= FLOAT32_MAX:
        return None
    return numbers


def write_split_to(
    out: IO[bytes], table: Table, schema: Mapping[str, Any], index: np.ndarray
) -> None:
    """``tabular.write_split_to``'s bytes: the rows at ``index`` in file order, the header first,
    cells quoted as the csv module quotes them, ``\\r\\n`` after each row."""
    names = split_columns(schema)
    header = io.StringIO()
    csv.writer(header, lineterminator="\r\n").writerow(names)
    out.write(header.getvalue().encode())
    rows = pa.array(np.sort(np.asarray(index, dtype=np.int64)))
    columns = [_cells(table.columns, name).take(rows) for name in names]
    if not any(_may_need_quotes(column) for column in columns):
        # No cell holds a delimiter, a quote or a line end: the csv module quotes nothing, and
        # Arrow's own writer, told to quote nothing, writes the same bytes.
        pa_csv.write_csv(
            pa.table(columns, names=[f"f{i}" for i in range(len(columns))]),
            out,
            pa_csv.WriteOptions(include_header=False, quoting_style="none", eol="\r\n"),
        )
        return
    for start in range(0, len(rows), _WRITE_BLOCK_ROWS):
        quoted = [_quoted(column.slice(start, _WRITE_BLOCK_ROWS)) for column in columns]
        rows_text = pc.binary_join_element_wise(*quoted, pa.scalar(",", pa.large_string()))
        lines = pc.binary_join_element_wise(
            rows_text, pa.scalar("\r\n", pa.large_string()), pa.scalar("", pa.large_string())
        )
        whole = pa.LargeListArray.from_arrays(pa.array([0, len(lines)], pa.int64()), lines)
        out.write(pc.binary_join(whole, pa.scalar("", pa.large_string()))[0].as_buffer())


def _may_need_quotes(cells: pa.Array) -> bool:
    """Whether the bytes behind ``cells`` hold a character the csv module quotes a cell for."""
    data = cells.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    return any(bool((raw == ord(char)).any()) for char in ',"\r\n')


def _cells(columns: Columns, name: str) -> pa.Array:
    """One column's cells as an Arrow array: the one the reader kept, else split from its packed
    chunks in C++."""
    kept = columns.native(name)
    if kept is not None:
        return kept.cast(pa.large_string())
    chunks = columns.packed(name)
    if all(isinstance(chunk, str) for chunk in chunks):
        joined = pa.array(chunks, pa.large_string())
        return pc.split_pattern(joined, SEPARATOR).flatten() if chunks else joined
    return pa.array([cell for chunk in chunks for cell in unpack(chunk)], pa.large_string())


def _quoted(cells: pa.Array) -> pa.Array:
    """Each cell as the csv module writes it with QUOTE_MINIMAL."""
    quote = pa.scalar('"', pa.large_string())
    escaped = pc.binary_join_element_wise(
        quote, pc.replace_substring(cells, '"', '""'), quote, pa.scalar("", pa.large_string())
    )
    return pc.if_else(pc.match_substring_regex(cells, _NEEDS_QUOTES), escaped, cells)
