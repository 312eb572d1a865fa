"""Tables of the shapes users bring, and the check that what the gate scored is what is served.

The check builds its requests from the holdout file with its own small parser (csv + float), not
with the project's conversion code, so a mistake there cannot hide itself.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from mlstack_core import errors
from mlstack_core.documents import VersionDocument
from tests.helpers.stack import Stack

NAMED_ERRORS = frozenset(
    name
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, errors.PipelineError)
)


def to_csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def holdout_requests(aws: Stack, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The holdout rows as a client would send them: numbers as JSON numbers, text as strings,
    empty cells as null, only the schema's feature columns."""
    splits, schema = run["splits"], run["schema"]
    body = aws.s3.get_object(Bucket=splits["bucket"], Key=splits["holdout_key"])["Body"].read()
    numeric, categorical = set(schema["numeric"]), set(schema["categorical"])
    records = []
    for row in csv.DictReader(io.StringIO(body.decode("utf-8"))):
        record: dict[str, Any] = {}
        for name, cell in row.items():
            if name in numeric:
                record[name] = float(cell) if cell else None
            elif name in categorical:
                record[name] = cell if cell else None
        records.append(record)
    return records


def gate_predictions(aws: Stack, document: VersionDocument) -> list[Any]:
    """What the gate scored for the version on the holdout (its stored holdout outputs)."""
    key = document["files"]["predictions"]
    body = aws.s3.get_object(Bucket=aws.model_bucket, Key=key)["Body"].read()
    with np.load(io.BytesIO(body), allow_pickle=False) as stored:
        if "best_label" in stored.files:
            labels: list[Any] = stored["best_label"].tolist()
            return labels
        return stored["best_variable"].astype(np.float32).reshape(-1).tolist()


def assert_served_as_scored(aws: Stack, state: dict[str, Any], version: int) -> int:
    """Every holdout row, POSTed to the prediction handler pinned to ``version``, answers 200 with
    the prediction the gate scored for it. Returns the number of rows served."""
    run = state["run"]
    model = run["model"]
    document = aws.registry.get_version(model, version)
    if document["status"] != "Approved" and aws.registry.get_alias(model) != version:
        # The API serves ?version=N only for approved or aliased versions; the contract is
        # checked for versions the gate rejected too, so this one is approved for the check.
        aws.registry.set_status(model, version, "Approved", "test", "serving contract check")
    records = holdout_requests(aws, run)
    expected = gate_predictions(aws, document)
    assert len(records) == len(expected)
    status, answer = aws.serve(model, {"instances": records}, version=version)
    assert status == 200, answer
    served = answer["predictions"]
    if run["task"] == "classification":
        assert answer["classes"] == document["classes"]
        label_type = run["schema"]["label_type"]
        cast = int if label_type == "int" else str
        assert served == [cast(label) for label in expected]
    else:
        assert [None if math.isnan(v) else v for v in expected] == [
            None if v is None else float(np.float32(v)) for v in served
        ]
    # One row alone takes the per-value path of the contract. onnxruntime's kernels may round a
    # row differently in another batch size, so a regressor agrees within float32 precision.
    status, single = aws.serve(model, json.dumps({"instances": records[:1]}), version=version)
    assert status == 200, single
    if run["task"] == "classification":
        assert single["predictions"] == served[:1]
    elif served[0] is not None:
        spread = float(np.nanstd(np.asarray(expected, dtype=np.float64))) or 1.0
        assert abs(single["predictions"][0] - served[0]) <= 1e-5 * max(spread, abs(served[0]))
    return len(records)


def run_through_handlers(aws: Stack, model: str, body: bytes, spec: dict[str, Any]) -> Any:
    """Preprocess → Train (each candidate) → Evaluate → Register, through the real handlers.

    Returns (state, version) when a version was registered, or the pipeline error that refused
    the table."""
    aws.put_spec(model, spec)
    try:
        state = aws.run_pipeline(model, body)
    except errors.PipelineError as error:
        return error
    registration = aws.run_register_step(state)
    state["registration"] = registration
    return state, int(registration["version"])


# -- the space of tables users bring (Hypothesis) -------------------------------------------------

ODD_NAMES = (
    "petal width",
    "Größe",
    "prix €",
    "a.b.c",
    'say "hi"',
    "it's",
    "1st place",
    "instances",
    "columns",
    "data",
    "__proto__",
    "constructor",
    "x" * 200,
    "Ünïcödé ñame",
    "tab\tinside",
    "comma, inside",
)
ODD_LEVELS = ("red", "Zürich", "€ 5", "a,b", 'quo"te', "  padded ", "yes", "0042", "ß", "日本")


@dataclass(frozen=True)
class GeneratedTable:
    header: list[str]
    rows: list[list[str]]
    spec: dict[str, Any]
    expected_error: str | None  # the named error a fault in the table must produce

    @property
    def body(self) -> bytes:
        return to_csv(self.header, self.rows)


def _column_name() -> st.SearchStrategy[str]:
    plain = st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=24,
    ).filter(lambda name: name.strip() != "")
    return st.one_of(st.sampled_from(ODD_NAMES), plain)


@st.composite
def tables(draw: st.DrawFn) -> GeneratedTable:
    """A table over the shapes users bring, its spec, and the error a planted fault must give."""
    n_numeric = draw(st.integers(0, 5))
    n_categorical = draw(st.integers(0 if n_numeric else 1, 5))
    width = n_numeric + n_categorical
    names = draw(st.lists(_column_name(), min_size=width + 1, max_size=width + 1, unique=True))
    target, numeric_names, categorical_names = names[-1], names[:n_numeric], names[n_numeric:-1]
    task = draw(st.sampled_from(["classification", "regression"]))
    if task == "classification":
        label_kind = draw(st.sampled_from(["text", "int", "true_false", "yes_no"]))
        n_classes = 2 if label_kind in {"true_false", "yes_no"} else draw(st.integers(2, 30))
    else:
        label_kind, n_classes = "number", 0
    n_rows = draw(st.integers(max(24, 3 * n_classes + 10), 140))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    latent = rng.normal(scale=0.3, size=n_rows)
    columns: list[list[str]] = []
    for _ in numeric_names:
        values = rng.normal(size=n_rows)
        latent += values
        scale = draw(st.sampled_from([1.0, 1e-3, 1e6, -1e9]))
        integral = draw(st.booleans())
        cells = [str(round(v * 1000)) if integral else repr(float(v * scale)) for v in values]
        columns.append(cells)
    for _ in categorical_names:
        levels = draw(st.lists(st.sampled_from(ODD_LEVELS), min_size=2, max_size=5, unique=True))
        picks = rng.integers(0, len(levels), size=n_rows)
        latent += (picks == 0) - 0.5
        columns.append([levels[i] for i in picks])
    for cells in columns:
        missing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3]))
        for i in np.flatnonzero(rng.random(n_rows) < missing).tolist():
            cells[i] = ""

    if task == "classification":
        order = np.argsort(np.argsort(latent))
        indices = (order * n_classes // n_rows).tolist()  # balanced classes, each >= 3 rows
        if label_kind == "int":
            pool = rng.choice(np.arange(-1000, 1000, 7), size=n_classes, replace=False)
            labels = [str(int(v)) for v in pool]
        elif label_kind == "true_false":
            labels = ["False", "True"]
        elif label_kind == "yes_no":
            labels = ["no", "yes"]
        else:
            labels = [f"class {c} é" for c in range(n_classes)]
        target_cells = [labels[i] for i in indices]
    else:
        magnitude = draw(st.sampled_from([1.0, 1e6, 1e12]))
        target_cells = [repr(float(v * magnitude - magnitude / 3)) for v in latent]

    if draw(st.booleans()):  # a few rows without a target: dropped, with a warning
        for i in rng.choice(n_rows, size=2, replace=False).tolist():
            target_cells[i] = ""
    rows = [[*(c[i] for c in columns), target_cells[i]] for i in range(n_rows)]
    if draw(st.booleans()):  # duplicate rows
        rows += rows[: draw(st.integers(1, 5))]
    header = [*numeric_names, *categorical_names, target]

    expected_error: str | None = None
    fault = draw(st.sampled_from([None] * 6 + ["constant", "all_missing", "duplicate", "blank"]))
    if fault == "constant":
        header.insert(0, "constant column" if "constant column" not in header else "konstant")
        rows = [["7", *row] for row in rows]
    elif fault == "all_missing":
        header.insert(0, "empty column" if "empty column" not in header else "leer")
        rows = [["", *row] for row in rows]
        expected_error = "ColumnAllMissing"
    elif fault == "duplicate":
        header.insert(0, header[0])
        rows = [[row[0], *row] for row in rows]
        expected_error = "DuplicateColumns"
    elif fault == "blank":
        header.insert(0, "")
        rows = [["1", *row] for row in rows]
        expected_error = "BlankColumnName"
    family = draw(
        st.sampled_from(
            ["logistic_regression", "hist_gradient_boosting", "random_forest", "knn"]
            if task == "classification"
            else ["ridge", "hist_gradient_boosting", "random_forest", "knn"]
        )
    )
    spec = {"target": target, "task": task, "candidates": [family]}
    return GeneratedTable(header, rows, spec, expected_error)
