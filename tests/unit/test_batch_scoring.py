"""A batch job's rows take the request path: the answers equal the API's for the same rows, and
a row the API would refuse is refused alone, with the API's reason."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from mlstack.cli.demo import as_instance
from mlstack_core.contract import load_model
from mlstack_core.contract.batch import score_rows
from mlstack_core.settings import serving_settings
from tests.conftest import Stack, penguins_bytes

pytestmark = pytest.mark.unit

MODEL = "penguins"


@pytest.fixture
def served(aws: Stack) -> Any:
    aws.put_spec(MODEL, {"target": "species", "candidates": ["logistic_regression"]})
    state = aws.run_pipeline(MODEL, penguins_bytes())
    assert aws.register(state)["promoted"] is True
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
    from mlstack_core.contract import RequestError

    original = type(served).score
    calls: list[int] = []

    def refusing(self: Any, batch: Any) -> Any:
        calls.append(batch.size)
        if len(calls) == 1:
            detail = {"row": 1, "column": "island", "message": "a new rule"}
            raise RequestError("invalid value in categorical column 'island'", [detail])
        return original(self, batch)

    monkeypatch.setattr(type(served), "score", refusing)
    scores = score_rows(served, _rows()[:4])
    assert calls == [4, 3]
    assert scores.refused == [(1, "column 'island': a new rule")]
    assert scores.scored == [0, 2, 3]
    assert len(scores.fields["predictions"]) == 3
