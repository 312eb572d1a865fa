"""A batch job's rows take the request path: the answers equal the API's for the same rows, and
a row the API would refuse is refused alone, with the API's reason."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlstack.cli.demo import as_instance
from mlstack_core.contract import load_model
from mlstack_core.contract.batch import missing_cells, score_row_by_row, score_rows
from mlstack_core.settings import serving_settings
from tests.helpers.stack import Stack
from tests.helpers.tables import penguins_bytes

pytestmark = [pytest.mark.unit, pytest.mark.slow]

MODEL = "penguins"


@pytest.fixture
def served(aws: Stack) -> Any:
    aws.put_spec(MODEL, {"target": "species", "candidates": ["logistic_regression"]})
    state = aws.run_pipeline(MODEL, penguins_bytes())
    assert aws.run_register_step(state)["promoted"] is True
    document = aws.registry.get_version(MODEL, 1)
    artifact = document["artifact"]
    body = aws.s3.get_object(Bucket=artifact["bucket"], Key=artifact["key"])["Body"].read()
    return load_model(body, document, serving_settings(), model=MODEL, version=1)


def _rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(penguins_bytes().decode())))


def test_scored_rows_answer_as_the_api_does_and_bad_rows_are_refused_alone(
    aws: Stack, served: Any
) -> None:
    rows = _rows()[:60]
    rows[5]["bill_length_mm"] = "forty"  # text in a numeric column
    rows[17]["flipper_length_mm"] = "1e999"  # not a float32
    del rows[23]["island"]  # a column the model needs, absent
    planted = {5: "bill_length_mm", 17: "flipper_length_mm", 23: "island"}

    scores = score_rows(served, rows)

    assert [position for position, _ in scores.refused] == sorted(planted)
    for position, reason in scores.refused:
        assert repr(planted[position]) in reason, reason
    assert scores.scored == [i for i in range(len(rows)) if i not in planted]

    instances = [as_instance(rows[i], "species") for i in scores.scored]
    status, answer = aws.serve(MODEL, {"instances": instances})
    assert status == 200, answer
    assert list(scores.fields["predictions"]) == answer["predictions"]
    assert scores.fields["classes"] == answer["classes"]
    np.testing.assert_array_equal(
        np.asarray(scores.fields["probabilities"], dtype=np.float32),
        np.asarray(answer["probabilities"], dtype=np.float32),
    )


def test_missing_cells_are_what_the_versions_training_called_missing(served: Any) -> None:
    row = _rows()[3]  # penguins row 4 is all "NA": a row of missing cells
    assert row["bill_length_mm"] == "NA"
    scores = score_rows(served, [row, {**row, "bill_length_mm": ""}])
    assert scores.refused == []
    assert scores.scored == [0, 1]
    assert scores.fields["predictions"][0] == scores.fields["predictions"][1]


def test_a_batch_of_only_bad_rows_scores_nothing(served: Any) -> None:
    rows = [{**row, "body_mass_g": "heavy"} for row in _rows()[:3]]
    scores = score_rows(served, rows)
    assert scores.scored == []
    assert [position for position, _ in scores.refused] == [0, 1, 2]


def test_a_row_the_request_path_refuses_is_taken_out_and_the_rest_scored(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text cells pass every check the request path makes today; should it refuse a row (a rule
    added to the contract), that row alone is refused with the contract's words."""
    from mlstack_core.errors import RequestError

    original = type(served).run_request
    calls: list[int] = []

    def refusing(self: Any, batch: Any) -> Any:
        calls.append(batch.size)
        if batch.size == 4:  # the rule refuses row 1 in either form of the request
            detail = {"row": 1, "column": "island", "message": "a new rule"}
            raise RequestError("invalid value in categorical column 'island'", [detail])
        return original(self, batch)

    monkeypatch.setattr(type(served), "run_request", refusing)
    scores = score_rows(served, _rows()[:4])
    assert calls == [4, 4, 3]  # the columnar request, then row by row without row 1
    assert scores.refused == [(1, "column 'island': a new rule")]
    assert scores.scored == [0, 2, 3]
    assert len(scores.fields["predictions"]) == 3


VALID_NUMBERS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False).map(repr), st.integers(-(10**6), 10**6).map(str)
)
ODD_NUMBERS = st.sampled_from(
    ["inf", "-inf", "1e999", "-1e39", "NAN", "-nan", "1_000", " 3.5 ", "forty", "0x10", "+7"]
)
MISSING_NUMBERS = st.sampled_from(["NA", "", "nan", "NaN"])


@st.composite
def number_cells(draw: st.DrawFn) -> str:
    """Mostly clean, so that many batches take the columnar path and one odd cell decides."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(ODD_NUMBERS)
    return draw(MISSING_NUMBERS if kind == 1 else VALID_NUMBERS)


CATEGORY_CELLS = st.sampled_from(["Biscoe", "Dream", "Torgersen", "Atlantis", "NA", "", "MALE"])


@st.composite
def penguin_like_rows(draw: st.DrawFn) -> list[dict[str, str]]:
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        row = {name: draw(number_cells()) for name in numeric}
        row |= {"island": draw(CATEGORY_CELLS), "sex": draw(CATEGORY_CELLS), "year": "2008"}
        if draw(st.integers(0, 40)) == 0:
            del row[draw(st.sampled_from(sorted(row)))]
        rows.append(row)
    return rows


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=penguin_like_rows())
@example(rows=[{**_rows()[0], "body_mass_g": "1_000"}, _rows()[1]])
@example(rows=[{**_rows()[0], "bill_depth_mm": "inf"}])
@example(rows=[{**_rows()[0], "bill_depth_mm": "NAN"}])
@example(rows=[{**_rows()[0], "flipper_length_mm": "-1e39"}])
def test_a_batch_answers_as_its_rows_would_one_by_one(
    served: Any, rows: list[dict[str, str]]
) -> None:
    """The columnar conversion of a clean batch gives what the row-by-row path gives: the same
    rows scored, the same refusals and reasons, the same predictions and probabilities."""
    batch = score_rows(served, rows)
    one_by_one = score_row_by_row(served, rows, missing_cells(served.document))
    assert batch.scored == one_by_one.scored
    assert batch.refused == one_by_one.refused
    assert list(batch.fields.get("predictions", [])) == list(
        one_by_one.fields.get("predictions", [])
    )
    np.testing.assert_array_equal(
        np.asarray(batch.fields.get("probabilities", [])),
        np.asarray(one_by_one.fields.get("probabilities", [])),
    )
