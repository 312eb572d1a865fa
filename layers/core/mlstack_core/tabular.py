"""CSV parsing, validation, splitting and split files: csv module and numpy only.

pandas does not fit in Lambda next to scikit-learn (docs/internals.md, the layers under "Module
map"), so
tables are column-major raw cells: no per-row dicts, and each column is converted to a numpy array
only when a model needs it. Missing cells are normalised to ``""`` while reading.

Memory: a Python str costs about 50 bytes plus the cell's characters, so a table of str objects
took 8 MB of RSS per MB of CSV (benchmarks/preprocess_memory.py, docs/scale.md). ``Columns``
keeps each column as chunks of 8192 cells joined into one string, about a byte per character,
and hands out a list of str only for the column being looked at.

What each column is read as (numeric, categorical, datetime, text, identifier) and how its cells
become model inputs live in ``mlstack_core.kinds``; ``prepare`` calls its profile, and
``feature_feeds`` its conversions.

Why one module of this size: reading, validating, splitting and writing all work on the one
column-major ``Columns`` store and its shared chunk boundaries; kept together, that storage's
invariants are in one place.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from operator import methodcaller
from typing import IO, Any

import numpy as np

from mlstack_core.documents import DataWarning, FeatureSchema
from mlstack_core.errors import (
    BlankColumnName,
    ColumnAllMissing,
    DuplicateColumns,
    EmptyDataset,
    HeaderOnly,
    MalformedCsv,
    NoFeatureColumns,
    NotUtf8,
    RaggedRows,
    SingleClass,
    TargetAllMissing,
    TargetColumnMissing,
    TooFewRows,
    TooFewRowsPerClass,
    UnparseableNumber,
    UnreadableDates,
    WrongDelimiter,
)
from mlstack_core.kinds import CATEGORICAL, DATETIME, NUMERIC, TEXT
from mlstack_core.kinds.inference import profile_features
from mlstack_core.kinds.inputs import feeds_from_cells
from mlstack_core.kinds.numbers import parse_cells, parse_number
from mlstack_core.tasks import CLASSIFICATION, REGRESSION

# A version's label_type → how its labels are read from text (a served answer, a feedback file).
LABEL_CASTS: dict[str, Any] = {"str": str, "int": int, "float": float}
MAX_WARNINGS = 50
MAX_EXAMPLES = 5
CHUNK_ROWS = 8192
# Joins the cells of a stored chunk. A chunk with a cell that holds it is stored as a list.
SEPARATOR = "\x1f"
# A looked-up column shares one str object per distinct value until it has this many distinct
# values: a categorical column then costs a pointer per cell, and a numeric one no dict.
_INTERN_LIMIT = 4096
_OTHER_DELIMITERS = (",", ";", "\t", "|")


class HashingReader(io.RawIOBase):
    """Wraps a binary stream (e.g. an S3 StreamingBody), fingerprinting the bytes as they pass."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.sha256.update(data)
        self.bytes_read += size
        return size


# A block of one column's cells: joined by SEPARATOR, or a list when a cell holds it.
Chunk = str | list[str]


def pack(cells: Sequence[str]) -> Chunk:
    joined = SEPARATOR.join(cells)
    # One string for the chunk unless a cell itself holds the separator (then splitting it back
    # would make extra cells).
    if joined.count(SEPARATOR) == len(cells) - 1:
        return joined
    return list(cells)


def unpack(chunk: Chunk) -> list[str]:
    return chunk.split(SEPARATOR) if isinstance(chunk, str) else list(chunk)


class Columns(MutableMapping[str, list[str]]):
    """Column name -> cells, stored compactly; every access returns a fresh ``list[str]``.

    All columns share the same chunk boundaries, so ``chunks`` can walk rows a block at a time
    (``write_split_to`` streams the split files that way) and ``blocks`` one column a block at a
    time (``prepare`` profiles columns that way). Look a column up once and keep the list while
    working on it: each lookup rebuilds it.
    """

    def __init__(self, columns: Mapping[str, Sequence[str]] | None = None) -> None:
        self._chunks: dict[str, list[Chunk]] = {}
        self._sizes: list[int] = []
        # Columns a columnar reader has already read as numbers (``numbers``), and its own arrays
        # of the cells (``native``).
        self._numbers: dict[str, np.ndarray] = {}
        self._native: dict[str, Any] = {}
        for name, cells in (columns or {}).items():
            self[name] = cells

    @classmethod
    def from_chunks(
        cls,
        chunks: Mapping[str, list[Chunk]],
        sizes: Sequence[int],
        numbers: Mapping[str, np.ndarray] | None = None,
        native: Mapping[str, Any] | None = None,
    ) -> Columns:
        """Columns already packed as this class packs them (``pack``), with ``sizes`` rows per
        chunk; ``numbers`` are float64 readings of the columns whose every cell is missing or a
        number ``kinds.numbers.parse_number`` accepts (``numbers``); ``native`` the reader's own
        arrays of the same cells (``native``)."""
        columns = cls()
        if any(len(packed) != len(sizes) for packed in chunks.values()):
            raise ValueError("every column needs one chunk per entry of sizes")
        columns._chunks = {name: list(packed) for name, packed in chunks.items()}
        columns._sizes = list(sizes) if chunks else []
        columns._numbers = {
            name: array for name, array in (numbers or {}).items() if name in columns._chunks
        }
        columns._native = {
            name: array for name, array in (native or {}).items() if name in columns._chunks
        }
        return columns

    def numbers(self, name: str) -> np.ndarray | None:
        """The column as float64 numbers (NaN for missing), as ``kinds.numbers.parse_number``
        reads each cell, when a columnar reader has read it so; else None (the cells are then
        parsed where they are needed)."""
        return self._numbers.get(name)

    def has_values(self, name: str) -> bool:
        """Whether any cell of the column is not missing, read off the packed chunks: a chunk of
        missing cells is separators only."""
        return any(
            chunk.strip(SEPARATOR) if isinstance(chunk, str) else any(chunk)
            for chunk in self._chunks[name]
        )

    def native(self, name: str) -> Any | None:
        """The cells as the columnar reader's own array (``mlstack_task.columnar``: Arrow's), when
        it kept one and the column has not been rewritten since; else None."""
        return self._native.get(name)

    def packed(self, name: str) -> list[Chunk]:
        """The column's stored chunks (``pack``), for a writer that splits them itself."""
        return list(self._chunks[name])

    @property
    def sizes(self) -> list[int]:
        """Rows per chunk, shared by every column."""
        return list(self._sizes)

    @property
    def n_rows(self) -> int:
        return sum(self._sizes)

    def append_chunk(self, cells: Mapping[str, Sequence[str]]) -> None:
        """Add the next rows: one equally long sequence per column, for every column."""
        sizes = {len(column) for column in cells.values()}
        if len(sizes) != 1 or (self._chunks and set(cells) != set(self._chunks)):
            raise ValueError("a chunk needs the same number of cells for every column")
        for name, column in cells.items():
            self._chunks.setdefault(name, []).append(pack(column))
        self._sizes.append(sizes.pop())

    def chunks(self, names: Sequence[str]) -> Iterator[list[list[str]]]:
        """Consecutive blocks of rows: per block, the cells of ``names`` in that order."""
        for position in range(len(self._sizes)):
            yield [unpack(self._chunks[name][position]) for name in names]

    def cells_at(self, name: str, rows: np.ndarray) -> list[str]:
        """The column's cells at ``rows`` (in that order), unpacking only the chunks that hold
        them: a few background rows of ten million cost a few chunks, not the column."""
        if rows.size and not (rows.min() >= 0 and rows.max() < self.n_rows):
            raise IndexError(f"rows outside the table's {self.n_rows}")
        starts = np.cumsum([0, *self._sizes])
        chunk_of = np.searchsorted(starts, rows, side="right") - 1
        order = np.argsort(chunk_of, kind="stable")
        out: list[str] = [""] * rows.size
        for group in np.split(order, np.flatnonzero(np.diff(chunk_of[order])) + 1):
            if not group.size:
                continue
            chunk = int(chunk_of[group[0]])
            cells = unpack(self._chunks[name][chunk])
            local = (rows[group] - starts[chunk]).tolist()
            for position, row in zip(group.tolist(), local, strict=True):
                out[position] = cells[row]
        return out

    def blocks(self, name: str) -> Iterator[list[str]]:
        """One column's cells, a block of rows at a time."""
        for chunk in self._chunks[name]:
            yield unpack(chunk)

    def __getitem__(self, name: str) -> list[str]:
        cells: list[str] = []
        distinct: dict[str, str] | None = {}
        for block in self.blocks(name):
            if distinct is None:
                cells.extend(block)
                continue
            cells.extend(map(distinct.setdefault, block, block))  # in C, no frame per cell
            if len(distinct) > _INTERN_LIMIT:
                distinct = None
        return cells

    def __setitem__(self, name: str, cells: Sequence[str]) -> None:
        if not self._chunks:
            self._sizes = [
                min(CHUNK_ROWS, len(cells) - start) for start in range(0, len(cells), CHUNK_ROWS)
            ]
        elif len(cells) != self.n_rows:
            raise ValueError(f"column {name!r} has {len(cells)} cells, the table {self.n_rows}")
        packed: list[Chunk] = []
        start = 0
        for size in self._sizes:
            packed.append(pack(cells[start : start + size]))
            start += size
        self._chunks[name] = packed
        self._numbers.pop(name, None)
        self._native.pop(name, None)

    def __delitem__(self, name: str) -> None:
        del self._chunks[name]
        self._numbers.pop(name, None)
        self._native.pop(name, None)
        if not self._chunks:
            self._sizes = []

    def __iter__(self) -> Iterator[str]:
        return iter(self._chunks)

    def __contains__(self, name: object) -> bool:
        # Mapping's own __contains__ looks the column up, which rebuilds its every cell.
        return name in self._chunks

    def __len__(self) -> int:
        return len(self._chunks)

    def __repr__(self) -> str:
        return f"Columns({list(self._chunks)}, rows={self.n_rows})"


class Table:
    """Column-major raw cells; ``""`` is missing. ``columns`` may be given as a dict of lists;
    it is stored as ``Columns``."""

    def __init__(
        self,
        header: list[str],
        columns: Mapping[str, Sequence[str]],
        n_rows: int,
        file_header: list[str] | None = None,
    ) -> None:
        self.header = header
        self.columns = columns if isinstance(columns, Columns) else Columns(columns)
        self.n_rows = n_rows
        # Every header cell of the file, including columns not kept (spec.columns.drop).
        self.file_header = file_header if file_header is not None else []

    def __repr__(self) -> str:
        return f"Table(header={self.header!r}, n_rows={self.n_rows})"

    @property
    def file_columns(self) -> int:
        return len(self.file_header)

    def take(self, indices: Sequence[int] | np.ndarray) -> Table:
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        columns = Columns()
        for name in self.columns:
            columns[name] = self.columns.cells_at(name, index)
            numbers = self.columns.numbers(name)
            if numbers is not None:
                columns._numbers[name] = numbers[index]
        return Table(
            header=list(self.header),
            columns=columns,
            n_rows=int(index.size),
            file_header=list(self.file_header),
        )


def read_csv(
    source: bytes | IO[bytes],
    *,
    delimiter: str = ",",
    na_values: Iterable[str] = (),
    required: Sequence[str] = (),
    skip: Collection[str] = (),
) -> Table:
    """Parse and structurally validate a CSV. ``required`` columns are checked right after the
    header, before reading rows; ``skip`` columns are not kept."""
    if isinstance(source, bytes):
        quote_free = _read_quote_free(source, delimiter, na_values, required, skip)
        if quote_free is not None:
            return quote_free
    stream: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    n_rows = 0
    try:
        header = checked_header(next((row for row in reader if row), None), delimiter, required)
        width = len(header)
        keep = [i for i, name in enumerate(header) if name not in skip]
        missing_cells = frozenset(na_values) | {""}
        columns = Columns()
        ragged: list[str] = []
        ragged_count = 0
        chunk: list[list[str]] = []
        for row in reader:
            if not row:  # blank line
                continue
            n_rows += 1
            if len(row) != width:
                ragged_count += 1
                if len(ragged) < MAX_EXAMPLES:
                    ragged.append(f"line {reader.line_num} has {len(row)} cells")
                continue
            if ragged_count:
                continue  # the file is rejected anyway; only count the remaining bad rows
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                _append_chunk(columns, chunk, header, keep, missing_cells)
                chunk = []
        _append_chunk(columns, chunk, header, keep, missing_cells)
    except UnicodeDecodeError as error:
        raise NotUtf8(
            f"the file is not valid UTF-8 (after about {n_rows} data rows, near line "
            f"{reader.line_num + 1}: {error.reason}); save it as UTF-8"
        ) from error
    except csv.Error as error:
        raise MalformedCsv(f"the csv module cannot read line {reader.line_num}: {error}") from error

    if ragged_count:
        raise RaggedRows(
            f"{ragged_count} row(s) do not have the header's {width} cells: "
            + "; ".join(ragged)
            + ("; ..." if ragged_count > len(ragged) else "")
        )
    if n_rows == 0:
        raise HeaderOnly(f"the file has a header ({_preview(header)}) but no data rows")
    kept = [header[i] for i in keep]
    if not columns:  # every column skipped, or no row made it into a chunk
        columns = Columns({name: [] for name in kept})
    return Table(header=kept, columns=columns, n_rows=n_rows, file_header=list(header))


def _read_quote_free(
    source: bytes,
    delimiter: str,
    na_values: Iterable[str],
    required: Sequence[str],
    skip: Collection[str],
) -> Table | None:
    """``read_csv``'s table of a file without a quote or a lone carriage return, where each line
    is a row and its cells are the line split at the delimiter, as the csv module reads it:
    splitting whole blocks of lines in C reads the split files twice as fast. None for any other
    file (or a ragged or headerless one), which the csv module then reads or names the error of."""
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if '"' in text:
        return None
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        return None
    lines = list(filter(None, text.split("\n")))  # the csv module skips blank lines
    del text
    if len(lines) < 2:
        return None
    header = checked_header(lines[0].split(delimiter), delimiter, required)
    width = len(header)
    keep = [i for i, name in enumerate(header) if name not in skip]
    missing_cells = frozenset(na_values) | {""}
    count_delimiters = methodcaller("count", delimiter)
    columns = Columns()
    for start in range(1, len(lines), CHUNK_ROWS):
        block = lines[start : start + CHUNK_ROWS]
        if list(map(count_delimiters, block)).count(width - 1) != len(block):
            return None
        cells = delimiter.join(block).split(delimiter)
        if keep:
            columns.append_chunk(
                {header[i]: _missing_as_empty(cells[i::width], missing_cells) for i in keep}
            )
    kept = [header[i] for i in keep]
    if not columns:
        columns = Columns({name: [] for name in kept})
    return Table(header=kept, columns=columns, n_rows=len(lines) - 1, file_header=header)


def _append_chunk(
    columns: Columns,
    chunk: list[list[str]],
    header: list[str],
    keep: list[int],
    missing_cells: frozenset[str],
) -> None:
    # Transposing a chunk at a time keeps the row-major copy small; zip runs in C.
    if not chunk or not keep:
        return
    transposed = list(zip(*chunk, strict=True))
    columns.append_chunk({header[i]: _missing_as_empty(transposed[i], missing_cells) for i in keep})


def checked_header(
    header: list[str] | None, delimiter: str, required: Sequence[str] = ()
) -> list[str]:
    """The header row, or its named error: none at all, the wrong delimiter, blank or repeated
    names, a ``required`` column missing (with the closest name)."""
    if header is None:
        raise EmptyDataset("the file is empty: expected a header row and data rows")
    _check_header_cells(header, delimiter)
    missing = [name for name in required if name not in header]
    if missing:
        name = missing[0]
        folded = [h for h in header if h.strip().casefold() == name.strip().casefold()]
        close = folded or difflib.get_close_matches(name, header, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TargetColumnMissing(
            f"target column {name!r} is not in the header ({_preview(header)}){hint}"
        )
    return header


def _missing_as_empty(cells: Sequence[str], missing_cells: frozenset[str]) -> Sequence[str]:
    """``cells`` with every missing cell (a listed value, or only whitespace) as ``""``."""
    # Most blocks need no change ("" is already itself): two passes in C tell, where a Python
    # expression per cell is three times slower.
    listed = missing_cells - {""}
    if (not listed or listed.isdisjoint(cells)) and not any(map(str.isspace, cells)):
        return cells
    return ["" if (c in missing_cells or c.isspace()) else c for c in cells]


def _check_header_cells(header: list[str], delimiter: str) -> None:
    if len(header) == 1:
        for other in _OTHER_DELIMITERS:
            if other != delimiter and other in header[0]:
                raise WrongDelimiter(
                    f"the header is one column {header[0][:80]!r} that contains {other!r}: the "
                    f"file looks {other!r}-separated but spec.delimiter is {delimiter!r}; set "
                    f'"delimiter": {_json_char(other)} in spec.json'
                )
    blank = [str(i + 1) for i, name in enumerate(header) if not name.strip()]
    if blank:
        raise BlankColumnName(
            f"header cell(s) {', '.join(blank)} are blank; name every column (a blank first "
            "column is often a pandas index: write the file with index=False)"
        )
    counts = Counter(header)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise DuplicateColumns(f"the header repeats column(s): {', '.join(map(repr, duplicates))}")


def _json_char(char: str) -> str:
    return '"\\t"' if char == "\t" else f'"{char}"'


def _preview(header: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(map(repr, header[:limit]))
    return shown + (f", ... ({len(header)} columns)" if len(header) > limit else "")


# -- validation and schema ----------------------------------------------------------------------


def target_values(table: Table, target: str) -> list[str]:
    """The target's non-missing raw values; what task inference looks at."""
    if target not in table.columns:
        raise TargetColumnMissing(f"target column {target!r} is not in the header")
    values = [v for v in table.columns[target] if v]
    if not values:
        raise TargetAllMissing(f"every value of the target column {target!r} is missing")
    return values


@dataclass
class Prepared:
    """A validated table ready to split and write: target rows only, canonical labels."""

    table: Table
    schema: FeatureSchema
    warnings: list[DataWarning]
    train_index: np.ndarray
    holdout_index: np.ndarray
    dropped_rows: int = 0
    numeric_arrays: dict[str, np.ndarray] = field(default_factory=dict)


def prepare(table: Table, spec: Mapping[str, Any], passthrough: Sequence[str] = ()) -> Prepared:
    """Validate a table against a resolved spec (task known), infer feature kinds, split.

    ``passthrough`` columns are no features: they are only carried into the split files
    (``schema["kept"]``), so that production can be scored on a holdout whose spec drops them.

    Raises the named DatasetError subclasses of mlstack_core.errors.
    """
    target, task = spec["target"], spec["task"]
    warnings: list[DataWarning] = []
    column_spec: Mapping[str, Any] = spec.get("columns") or {}
    named = [*column_spec.get("types", {}), *column_spec.get("date_formats", {})]
    for name in dict.fromkeys([*named, *column_spec.get("drop", [])]):
        if name not in table.file_header:
            _warn(warnings, "UnknownColumn", name, f"spec.columns names {name!r}, not in the file")

    # Rows without a target cannot be used for training or evaluation.
    target_cells = table.columns[target]
    if not any(target_cells):
        raise TargetAllMissing(f"every value of the target column {target!r} is missing")
    if "" in target_cells:
        usable = [i for i, v in enumerate(target_cells) if v]
        dropped = table.n_rows - len(usable)
        _warn(warnings, "MissingTarget", target, f"{dropped} row(s) without a target were dropped")
        table = table.take(usable)
        del usable
    else:
        dropped = 0
    del target_cells

    label_type, classes = _prepare_target(table, target, task)

    feature_names = [n for n in table.header if n != target and n not in passthrough]
    if not feature_names:
        raise NoFeatureColumns(
            f"no feature columns left besides the target {target!r} (after spec.columns.drop)"
        )
    in_train = np.zeros(table.n_rows, dtype=bool)
    # Only a classifier's split is stratified by label: a regression target needs no object copy.
    y_labels = np.asarray(table.columns[target], dtype=object) if task == CLASSIFICATION else None
    train_index, holdout_index = split_indices(
        y_labels,
        table.n_rows,
        test_size=float(spec["test_size"]),
        seed=int(spec["random_seed"]),
    )
    in_train[train_index] = True
    all_missing = [name for name in feature_names if not table.columns.has_values(name)]
    if all_missing:
        raise ColumnAllMissing(
            f"column(s) {', '.join(map(repr, all_missing))} have no values; add them to "
            "spec.columns.drop"
        )
    profile = profile_features(table.columns, feature_names, table.n_rows, in_train, column_spec)
    if profile.unparseable:
        raise UnparseableNumber("; ".join(profile.unparseable))
    if profile.unreadable_dates:
        raise UnreadableDates("; ".join(profile.unreadable_dates))
    if not profile.features:
        raise NoFeatureColumns(
            f"no feature columns left besides the target {target!r}: "
            + ", ".join(
                f"{i['name']!r} is an identifier ({i['reason']})" for i in profile.identifiers
            )
            + "; declare a column's kind in spec.columns.types if it is a feature"
        )
    warnings.extend(profile.warnings)
    features = profile.features

    schema: FeatureSchema = {
        "target": target,
        "task": task,
        "features": features,
        "numeric": [f["name"] for f in features if f["kind"] == NUMERIC],
        "categorical": [f["name"] for f in features if f["kind"] == CATEGORICAL],
        "datetime": [f["name"] for f in features if f["kind"] == DATETIME],
        "text": [f["name"] for f in features if f["kind"] == TEXT],
        "label_type": label_type,
    }
    if profile.identifiers:
        schema["identifiers"] = profile.identifiers
    if task == CLASSIFICATION and classes is not None:  # a classifier's target always has them
        schema["classes"] = classes
    if passthrough:
        schema["kept"] = list(passthrough)
    return Prepared(
        table=table,
        schema=schema,
        warnings=warnings[:MAX_WARNINGS],
        train_index=train_index,
        holdout_index=holdout_index,
        dropped_rows=dropped,
        numeric_arrays=profile.numeric_arrays,
    )


def _prepare_target(table: Table, target: str, task: str) -> tuple[str, list[Any] | None]:
    """Check the target for the task; rewrite integer labels canonically ("1.0" -> "1")."""
    if task == REGRESSION:
        if table.columns.numbers(target) is not None:
            return "float", None
        _, bad = parse_cells(table.columns[target])
        if bad is not None:
            row, value = bad
            raise UnparseableNumber(
                f"task is regression but target {target!r} holds {value!r} at data row {row + 1}"
            )
        return "float", None

    cells = table.columns[target]
    numbers = [parse_number(c) for c in cells]
    if all(n is not None and n.is_integer() for n in numbers):
        label_type = "int"
        cells = [str(int(n)) for n in numbers if n is not None]
        table.columns[target] = cells
    else:
        label_type = "str"
    counts = Counter(cells)
    if len(counts) < 2:
        raise SingleClass(
            f"target {target!r} has a single class {next(iter(counts))!r}: nothing to learn"
        )
    too_few = sorted((label for label, count in counts.items() if count < 2), key=str)
    if too_few:
        raise TooFewRowsPerClass(
            f"class(es) {', '.join(map(repr, too_few[:20]))} of {target!r} have fewer than 2 "
            "rows; a stratified split needs each class in both train and holdout"
        )
    if label_type == "int":
        classes: list[Any] = sorted(int(label) for label in counts)
    else:
        classes = sorted(counts)
    return label_type, classes


def _warn(warnings: list[DataWarning], code: str, column: str, message: str) -> None:
    warnings.append({"code": code, "column": column, "message": message})


def schema_change_warnings(
    previous: FeatureSchema, current: FeatureSchema, previous_version: int
) -> list[DataWarning]:
    """Warnings for feature columns whose kind changed (numeric <-> categorical), appeared or
    disappeared since ``previous``, the schema of the model's last registered version.

    Advisory, not errors: a model may legitimately gain or lose columns, but a column that turns
    categorical usually means a stray text value ("n/a", "1,5") in a numeric column, and a removed
    column makes the production model incomparable on this data (Evaluate falls back to the
    baseline), which the user should hear about before wondering why.
    """
    before = {f["name"]: f["kind"] for f in previous.get("features", [])}
    now = {f["name"]: f["kind"] for f in current.get("features", [])}
    since = f"since version {previous_version}"
    warnings: list[DataWarning] = []
    for name, kind in now.items():
        if name not in before:
            _warn(warnings, "ColumnAdded", name, f"new {kind} column {since}")
        elif before[name] != kind:
            hint = (
                " (a non-number in a numeric column? declare it in spec.columns.types)"
                if kind == CATEGORICAL
                else ""
            )
            _warn(warnings, "TypeChanged", name, f"was {before[name]}, now {kind} {since}{hint}")
    for name, kind in before.items():
        if name not in now:
            message = (
                f"{kind} column of version {previous_version} is gone; that version cannot be "
                "scored on this data"
            )
            _warn(warnings, "ColumnRemoved", name, message)
    return warnings


# -- split --------------------------------------------------------------------------------------


def split_indices(
    labels: np.ndarray | None, n_rows: int, *, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, holdout) row indices, each sorted. Stratified when ``labels`` is
    given: every class keeps at least one row on each side."""
    rng = np.random.default_rng(seed)
    if labels is None:
        n_holdout = max(2, round(n_rows * test_size))
        if n_rows - n_holdout < 2:
            raise TooFewRows(
                f"{n_rows} usable rows: at least 4 are needed (2 to train on, 2 to evaluate)"
            )
        order = rng.permutation(n_rows)
        return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])
    holdout: list[np.ndarray] = []
    train: list[np.ndarray] = []
    for label in sorted(set(labels.tolist()), key=str):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_holdout = min(max(1, round(members.size * test_size)), members.size - 1)
        holdout.append(members[:n_holdout])
        train.append(members[n_holdout:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(holdout))


# -- split files and model inputs --------------------------------------------------------------


def split_columns(schema: Mapping[str, Any]) -> list[str]:
    """Header of train.csv / holdout.csv: features in schema order, the columns kept only to score
    production (``kept``), then the target."""
    return (
        [f["name"] for f in schema["features"]] + list(schema.get("kept", [])) + [schema["target"]]
    )


def write_split_to(
    out: IO[bytes], table: Table, schema: Mapping[str, Any], index: np.ndarray
) -> None:
    """Write the rows at ``index`` (in file order) to ``out`` as UTF-8 CSV: ',' delimiter,
    missing as empty cells. Streams a block of rows at a time, so only the output and one block
    are in memory, never a second copy of the table."""
    names = split_columns(schema)
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    # CSV's own line ending: the csv module quotes a cell holding a line ending's characters, so a
    # lone "\r" in a note (which "\n" alone would leave bare) cannot split the row on reading.
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(names)
    rows = np.sort(np.asarray(index, dtype=np.int64))
    start = 0
    for block in table.columns.chunks(names):
        end = start + len(block[0])
        low, high = np.searchsorted(rows, [start, end])
        writer.writerows([column[i] for column in block] for i in (rows[low:high] - start).tolist())
        start = end
    text.flush()
    text.detach()  # leave ``out`` open for the caller


def write_split(table: Table, schema: Mapping[str, Any], index: np.ndarray) -> bytes:
    """``write_split_to`` into bytes."""
    buffer = io.BytesIO()
    write_split_to(buffer, table, schema, index)
    return buffer.getvalue()


def read_split(source: bytes | IO[bytes]) -> Table:
    """Read a train/holdout file written by ``write_split`` (only empty cells are missing)."""
    return read_csv(source, delimiter=",", na_values=())


def feature_feeds(
    table: Table, schema: Mapping[str, Any], parsed: Mapping[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """The model inputs (``kinds.inputs``) of the schema's feature columns; ``parsed`` numeric
    columns (``Prepared.numeric_arrays``) are not parsed again."""
    names = [f["name"] for f in schema["features"]]
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise KeyError(f"column(s) {', '.join(map(repr, missing))} are not in the table")
    return feeds_from_cells(schema, table.columns.__getitem__, table.n_rows, parsed=parsed)


def target_vector(table: Table, schema: Mapping[str, Any]) -> np.ndarray:
    """y as scikit-learn should see it: int64 or str labels, float64 for regression."""
    numbers = table.columns.numbers(schema["target"])
    if schema["task"] == REGRESSION and numbers is not None and not np.isnan(numbers).any():
        return numbers
    return target_array(table.columns[schema["target"]], schema)


def target_array(cells: Sequence[str], schema: Mapping[str, Any]) -> np.ndarray:
    """``target_vector`` of the target column's cells."""
    if schema["task"] == REGRESSION:
        parsed = [parse_number(c) for c in cells]
        if None in parsed:
            row = parsed.index(None)
            raise UnparseableNumber(f"target holds {cells[row]!r} at data row {row + 1}")
        return np.asarray(parsed, dtype=np.float64)
    if schema["label_type"] == "int":
        return np.asarray([int(c) for c in cells], dtype=np.int64)
    return np.asarray(cells, dtype=object)
