"""Tables of the shapes users bring, and the check that what the gate scored is what is served.

The check builds its requests from the holdout file with its own small parser (csv + float), not
with the project's conversion code, so a mistake there cannot hide itself.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np

from mlstack_core import errors
from tests.conftest import Stack

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


def gate_predictions(aws: Stack, document: dict[str, Any]) -> list[Any]:
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
    # One row alone takes the per-value path of the contract: same answer.
    status, single = aws.serve(model, json.dumps({"instances": records[:1]}), version=version)
    assert status == 200, single
    assert single["predictions"] == served[:1]
    return len(records)


def run_through_handlers(aws: Stack, model: str, body: bytes, spec: dict[str, Any]) -> Any:
    """Preprocess → Train (each candidate) → Evaluate → Register, through the real handlers.

    Returns (state, version) when a version was registered, or the name of the pipeline error
    that refused the table."""
    aws.put_spec(model, spec)
    try:
        state = aws.run_pipeline(model, body)
    except errors.PipelineError as error:
        return type(error).__name__
    registration = aws.register(state)
    state["registration"] = registration
    return state, int(registration["version"])
