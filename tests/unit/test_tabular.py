"""CSV parsing, named data errors, type inference, split and model inputs (numpy only)."""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core import errors, tabular
from mlstack_core.documents import FeatureSchema
from mlstack_core.kinds.inputs import model_input
from mlstack_core.kinds.numbers import parse_number
from mlstack_core.tabular import (
    Columns,
    HashingReader,
    Prepared,
    Table,
    feature_feeds,
    read_csv,
    read_split,
    schema_change_warnings,
    split_indices,
    target_vector,
    write_split,
    write_split_to,
)
from tests.helpers.tables import csv_of, penguins_bytes, prepared_from

pytestmark = pytest.mark.unit


def two_class_rows(n: int = 20) -> list[list[Any]]:
    return [["x", "color", "y"]] + [
        [i, ["red", "blue"][i % 3 == 0], ["a", "b"][i % 2]] for i in range(n)
    ]


# -- penguins: mixed types with missing values --------------------------------------------------


@pytest.fixture(scope="module")
def penguins() -> Prepared:
    return prepared_from(penguins_bytes(), target="species")


def test_penguins_schema(penguins: Prepared) -> None:
    schema = penguins.schema
    assert schema["task"] == "classification"
    assert schema["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert schema["label_type"] == "str"
    assert schema["categorical"] == ["island", "sex"]
    assert schema["numeric"] == [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "year",
    ]
    names = [f["name"] for f in schema["features"]]
    assert names == [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]  # file order
    island = next(f for f in schema["features"] if f["name"] == "island")
    assert island["categories"] == ["Biscoe", "Dream", "Torgersen"]
    sex = next(f for f in schema["features"] if f["name"] == "sex")
    assert "" not in sex["categories"]  # missing is not a category of the schema


def test_penguins_missing_values_become_nan_and_empty(penguins: Prepared) -> None:
    feeds = feature_feeds(penguins.table, penguins.schema)
    numeric, categorical = feeds["numeric"], feeds["categorical"]
    assert numeric.dtype == np.float32
    assert categorical.dtype == object
    assert numeric.shape == (344, 5)
    assert categorical.shape == (344, 2)
    assert np.isnan(numeric).any(axis=1).sum() == 2  # the two rows with NA measurements
    sex = categorical[:, 1]
    assert (sex == "").sum() == 11
    assert set(sex) == {"", "female", "male"}
    assert not any(v == "NA" for v in categorical.ravel())


def test_penguins_split_is_stratified_and_disjoint(penguins: Prepared) -> None:
    train, holdout = penguins.train_index, penguins.holdout_index
    assert set(train).isdisjoint(holdout)
    assert train.size + holdout.size == 344
    assert abs(holdout.size / 344 - 0.2) < 0.02
    y = np.asarray(penguins.table.columns["species"])
    for label in penguins.schema["classes"]:
        share_all = np.mean(y == label)
        assert abs(np.mean(y[holdout] == label) - share_all) < 0.05


def test_split_is_deterministic_by_seed() -> None:
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 5, dtype=object)
    first = split_indices(labels, labels.size, test_size=0.2, seed=7)
    again = split_indices(labels, labels.size, test_size=0.2, seed=7)
    other = split_indices(labels, labels.size, test_size=0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])


@given(
    counts=st.lists(st.integers(min_value=2, max_value=40), min_size=2, max_size=6),
    test_size=st.floats(min_value=0.05, max_value=0.5),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_every_class_lands_on_both_sides(counts: list[int], test_size: float, seed: int) -> None:
    labels = np.array([f"c{i}" for i, n in enumerate(counts) for _ in range(n)], dtype=object)
    train, holdout = split_indices(labels, labels.size, test_size=test_size, seed=seed)
    assert sorted([*train, *holdout]) == list(range(labels.size))
    assert set(labels[train]) == set(labels[holdout]) == set(labels)


def test_regression_split_is_a_shuffle() -> None:
    train, holdout = split_indices(None, 100, test_size=0.25, seed=1)
    assert holdout.size == 25
    assert train.size == 75
    assert not np.array_equal(holdout, np.arange(25))


# -- named data errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        (b"", errors.EmptyDataset, "empty"),
        (b"\n\n\n", errors.EmptyDataset, "empty"),
        (b"x,y\n", errors.HeaderOnly, "no data rows"),
        ("x,y\ncaf\u00e9,1\n".encode("latin-1"), errors.NotUtf8, "UTF-8"),
        (b"x;color;y\n1;red;a\n", errors.WrongDelimiter, '"delimiter": ";"'),
        (b"x\tcolor\ty\n1\tred\ta\n", errors.WrongDelimiter, r'"\t"'),
        (b"x,x,y\n1,2,a\n", errors.DuplicateColumns, "'x'"),
        (b",x,y\n0,1,a\n", errors.BlankColumnName, "index=False"),
        (b"x,y\n1,a\n2,b,3\n4\n", errors.RaggedRows, "2 row(s)"),
        (b"x,z\n1,a\n", errors.TargetColumnMissing, "'y'"),
        (b"x,Y\n1,a\n", errors.TargetColumnMissing, "did you mean 'Y'"),
        (b'x,y\n"' + b"a" * 140_000 + b'",a\n', errors.MalformedCsv, "field limit"),
    ],
)
def test_structural_errors(body: bytes, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=None) as caught:
        prepared_from(body)
    assert needle in str(caught.value)


def test_ragged_row_message_names_lines() -> None:
    with pytest.raises(errors.RaggedRows, match="line 3 has 3 cells"):
        read_csv(b"x,y\n1,a\n2,b,3\n")


def test_target_all_missing() -> None:
    with pytest.raises(errors.TargetAllMissing):
        prepared_from(csv_of([["x", "y"], [1, "NA"], [2, ""], [3, "null"]]))


def test_single_class() -> None:
    with pytest.raises(errors.SingleClass, match="'a'"):
        prepared_from(csv_of([["x", "y"]] + [[i, "a"] for i in range(10)]))


def test_too_few_rows_per_class() -> None:
    rows = [["x", "y"]] + [[i, "a"] for i in range(10)] + [[99, "rare"]]
    with pytest.raises(errors.TooFewRowsPerClass, match="'rare'"):
        prepared_from(csv_of(rows))


def test_too_few_rows_for_regression() -> None:
    with pytest.raises(errors.TooFewRows):
        prepared_from(csv_of([["x", "y"], [1, 0.5], [2, 1.5], [3, 2.25]]), task="regression")


def test_unparseable_number_names_column_row_and_value() -> None:
    rows = two_class_rows()
    rows[5][0] = "12,5"  # quoted below: a decimal comma in a numeric column
    body = csv_of(rows).replace(b"12,5", b'"12,5"')
    with pytest.raises(errors.UnparseableNumber) as caught:
        prepared_from(body, columns={"types": {"x": "numeric"}})
    message = str(caught.value)
    assert "'x'" in message
    assert "data row 5" in message
    assert "'12,5'" in message


def test_unparseable_numbers_in_several_columns_are_all_named() -> None:
    rows = [["a", "b", "y"]] + [[i, i, ["p", "q"][i % 2]] for i in range(10)]
    rows[3][0], rows[7][1] = "abc", "inf"
    with pytest.raises(errors.UnparseableNumber) as caught:
        prepared_from(csv_of(rows), columns={"types": {"a": "numeric", "b": "numeric"}})
    assert "'abc'" in str(caught.value)
    assert "'inf'" in str(caught.value)


def test_regression_target_must_be_numeric() -> None:
    rows = [["x", "y"]] + [[i, i * 1.5] for i in range(30)] + [[1, "oops"]]
    with pytest.raises(errors.UnparseableNumber, match="oops"):
        prepared_from(csv_of(rows), task="regression")


def test_column_all_missing() -> None:
    rows = [["x", "empty", "y"]] + [[i, ["", "NA"][i % 2], "ab"[i % 2]] for i in range(10)]
    with pytest.raises(errors.ColumnAllMissing, match="'empty'"):
        prepared_from(csv_of(rows))


def test_all_missing_column_can_be_dropped() -> None:
    rows = [["x", "empty", "y"]] + [[i, "", "ab"[i % 2]] for i in range(10)]
    prepared = prepared_from(csv_of(rows), columns={"drop": ["empty"]})
    assert [f["name"] for f in prepared.schema["features"]] == ["x"]
    assert not prepared.warnings  # dropping a column that exists is not an unknown column


def test_no_feature_columns() -> None:
    with pytest.raises(errors.NoFeatureColumns):
        prepared_from(csv_of([["y"]] + [["ab"[i % 2]] for i in range(10)]))


# -- inference and warnings -----------------------------------------------------------------------


def test_type_inference_and_declared_types() -> None:
    rows = [["num", "mixed", "code", "y"]] + [
        [i * 0.5, i if i != 3 else "n/a-ish", 100 + i % 3, "ab"[i % 2]] for i in range(12)
    ]
    prepared = prepared_from(csv_of(rows), columns={"types": {"code": "categorical"}})
    kinds = {f["name"]: f["kind"] for f in prepared.schema["features"]}
    assert kinds == {"num": "numeric", "mixed": "categorical", "code": "categorical"}
    code = next(f for f in prepared.schema["features"] if f["name"] == "code")
    assert set(code["categories"]) <= {"100", "101", "102"}


def test_warnings() -> None:
    rows = [["const", "ident", "x", "y"]] + [
        [7, f"id{i}", i, "ab"[i % 2] if i < 18 else "NA"] for i in range(20)
    ]
    prepared = prepared_from(csv_of(rows), columns={"drop": ["nope"]})
    codes = {(w["code"], w["column"]) for w in prepared.warnings}
    assert ("ConstantColumn", "const") in codes
    assert ("HighCardinality", "ident") in codes
    assert ("MissingTarget", "y") in codes
    assert ("UnknownColumn", "nope") in codes
    assert prepared.table.n_rows == 18  # rows without a target are not used


def test_integer_labels_are_canonical() -> None:
    rows = [["x", "y"]] + [[i, ["1", "2.0", "2"][i % 3]] for i in range(12)]
    prepared = prepared_from(csv_of(rows))
    assert prepared.schema["label_type"] == "int"
    assert prepared.schema["classes"] == [1, 2]
    y = target_vector(prepared.table, prepared.schema)
    assert y.dtype == np.int64
    assert set(y.tolist()) == {1, 2}


def test_quoting_bom_custom_delimiter_and_na_values() -> None:
    body = '\ufeffname;note;y\n"Smith; J";"two\nlines";a\nDoe;?;b\nRoe;ok;a\nPoe;ok;b\n'
    prepared = prepared_from(body.encode(), delimiter=";", na_values=["?"])
    table = prepared.table
    assert table.header == ["name", "note", "y"]  # BOM stripped
    assert table.columns["name"][0] == "Smith; J"
    assert table.columns["note"][:2] == ["two\nlines", ""]


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1.5", 1.5),
        (" 2 ", 2.0),
        ("-1e3", -1000.0),
        ("inf", None),
        ("nan", None),
        ("1_000", None),
        ("1e39", None),
        ("abc", None),
        ("0x10", None),
    ],
)
def test_parse_number(cell: str, value: float | None) -> None:
    assert parse_number(cell) == value


# -- split files and model inputs -----------------------------------------------------------------


cells = st.one_of(
    st.just(""),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
)


@given(st.lists(st.tuples(cells, cells), min_size=2, max_size=30))
@settings(max_examples=50, deadline=None)
def test_split_files_round_trip(rows: list[tuple[str, str]]) -> None:
    rows = [(a if a.strip() else "", b if b.strip() else "") for a, b in rows]
    table = Table(
        header=["a", "b", "y"],
        columns={
            "a": [r[0] for r in rows],
            "b": [r[1] for r in rows],
            "y": ["ab"[i % 2] for i in range(len(rows))],
        },
        n_rows=len(rows),
    )
    schema = {
        "target": "y",
        "task": "classification",
        "label_type": "str",
        "features": [{"name": "a", "kind": "categorical"}, {"name": "b", "kind": "categorical"}],
        "numeric": [],
        "categorical": ["a", "b"],
    }
    index = np.arange(len(rows))
    back = read_split(write_split(table, schema, index))
    assert back.columns == table.columns


def test_feature_matrices_follow_the_onnx_contract() -> None:
    body = b"n1,c1,n2,y\n1.5,red,,a\n,NA,3,b\n2.25,blue,4,a\n0.1,red,5,b\n"
    prepared = prepared_from(body)
    feeds = feature_feeds(prepared.table, prepared.schema)
    numeric, categorical = feeds["numeric"], feeds["categorical"]
    assert prepared.schema["numeric"] == ["n1", "n2"]
    assert numeric.dtype == np.float32
    assert numeric.shape == (4, 2)
    assert math.isnan(numeric[1, 0])
    assert math.isnan(numeric[0, 1])
    assert numeric[0, 0] == np.float32(1.5)
    assert numeric[3, 0] == np.float32(0.1)
    assert categorical.tolist() == [["red"], [""], ["blue"], ["red"]]
    inputs = model_input(feeds)
    assert inputs.shape == (4, 3)
    assert np.asarray(inputs).dtype == object
    assert inputs[:, [0, 1]].dtype == np.float64
    assert inputs[:, [2]].tolist() == [["red"], [""], ["blue"], ["red"]]
    # sklearn sees exactly the float32 values ONNX will see.
    assert float(inputs[3, 0]) == float(np.float32(0.1))
    assert inputs[:, 0][3] == float(np.float32(0.1))


def test_hashing_reader_fingerprints_while_parsing() -> None:
    body = penguins_bytes()
    reader = HashingReader(io.BytesIO(body))
    table = read_csv(io.BufferedReader(reader, 4096), na_values=["NA"])
    assert table.n_rows == 344
    assert reader.sha256.hexdigest() == hashlib.sha256(body).hexdigest()
    assert reader.bytes_read == len(body)


# -- compact column storage ---------------------------------------------------------------------


def test_columns_round_trip_across_chunks_and_separator_cells() -> None:
    n = 20_000  # more than two storage chunks
    cells = {
        "num": [f"{i * 0.5:g}" for i in range(n)],
        "cat": [["red", "blue", ""][i % 3] for i in range(n)],
        # The storage separator inside a cell must not split it.
        "odd": ["a\x1fb" if i == 9000 else f"t{i % 7}" for i in range(n)],
    }
    columns = Columns(cells)
    assert columns.n_rows == n
    assert {name: columns[name] for name in columns} == cells
    assert sum(len(block) for block in columns.blocks("odd")) == n
    columns["cat"] = cells["num"]
    assert columns["cat"] == cells["num"]
    with pytest.raises(ValueError, match="cells"):
        columns["short"] = ["x"]


@settings(max_examples=200, deadline=None)
@given(
    cells=st.lists(st.sampled_from(["", "", "", "x", "\x1f", "a\x1fb"]), min_size=1, max_size=40),
    chunk=st.integers(1, 8),
)
def test_a_column_has_values_when_a_cell_is_not_missing(cells: list[str], chunk: int) -> None:
    columns = Columns()
    for start in range(0, len(cells), chunk):
        columns.append_chunk({"c": cells[start : start + chunk]})
    assert columns.has_values("c") == any(cells)
    assert "c" in columns
    assert "d" not in columns


def test_looked_up_low_cardinality_columns_share_their_strings() -> None:
    # A categorical column must cost a pointer per cell once looked up (Train keeps it for the
    # whole fit); a numeric-like column must not build a dict of every value.
    columns = Columns({"cat": [str(i % 3) for i in range(10_000)]})
    looked_up = columns["cat"]
    assert len({id(cell) for cell in looked_up}) == 3


def test_write_split_streams_blocks_in_file_order() -> None:
    n = 20_000
    rng = np.random.default_rng(0)
    table = Table(
        header=["x", "c", "y"],
        columns={
            "x": [str(i) for i in range(n)],
            "c": [["p", "q, r", ""][i % 3] for i in range(n)],
            "y": ["ab"[i % 2] for i in range(n)],
        },
        n_rows=n,
    )
    schema = {"target": "y", "features": [{"name": "x"}, {"name": "c"}]}
    index = rng.choice(n, size=7_000, replace=False)
    stream = io.BytesIO()
    write_split_to(stream, table, schema, index)
    assert not stream.closed
    assert stream.getvalue() == write_split(table, schema, index)
    back = read_split(stream.getvalue())
    assert back.columns["x"] == [str(i) for i in sorted(index.tolist())]
    assert back.columns["c"] == [["p", "q, r", ""][i % 3] for i in sorted(index.tolist())]


def test_unparseable_number_is_located_past_the_first_block() -> None:
    rows = [["x", "y"]] + [[i, "ab"[i % 2]] for i in range(10_000)]
    rows[9_500][0] = "oops"
    with pytest.raises(errors.UnparseableNumber, match=r"data row 9500 \(line 9501\) holds 'oops'"):
        prepared_from(csv_of(rows), columns={"types": {"x": "numeric"}})


# -- schema changes since the last registered version --------------------------------------------


def _schema(**kinds: str) -> FeatureSchema:
    features = [{"name": name, "kind": kind} for name, kind in kinds.items()]
    return cast(FeatureSchema, {"features": features})


def test_schema_changes_name_type_changes_added_and_removed_columns() -> None:
    previous = _schema(age="numeric", city="categorical", zip="numeric", gone="categorical")
    current = _schema(age="categorical", city="categorical", zip="numeric", new="numeric")
    warnings = schema_change_warnings(previous, current, previous_version=7)
    found = {(w["code"], w["column"]) for w in warnings}
    assert found == {("TypeChanged", "age"), ("ColumnAdded", "new"), ("ColumnRemoved", "gone")}
    changed = next(w for w in warnings if w["code"] == "TypeChanged")
    assert "numeric" in changed["message"]
    assert "categorical" in changed["message"]
    assert all("7" in w["message"] for w in warnings)


def test_unchanged_schema_gives_no_warning(penguins: Prepared) -> None:
    assert schema_change_warnings(penguins.schema, penguins.schema, 1) == []


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.integers(0, 3 * tabular.CHUNK_ROWS + 99), max_size=300),
    seed=st.integers(0, 2**32 - 1),
)
def test_take_selects_the_rows_from_their_chunks(rows: list[int], seed: int) -> None:
    """Rows in any order, repeated, across chunk boundaries: each column's cells at them."""
    size = 3 * tabular.CHUNK_ROWS + 100
    rng = np.random.default_rng(seed)
    cells = {
        "n": [f"{v:.3f}" for v in rng.normal(size=size)],
        "c": [f"c{i % 7}" for i in range(size)],
    }
    cells["c"][5] = "holds \x1f the separator"
    table = tabular.Table(header=["n", "c"], columns=cells, n_rows=size)
    taken = table.take(rows)
    assert taken.n_rows == len(rows)
    for name, column in cells.items():
        assert taken.columns[name] == [column[row] for row in rows]
