"""Datetime and text columns through the prediction function: API Gateway events in, the real
handler, onnxruntime; the answers checked against the fitted scikit-learn pipeline on the same
values and against a batch job's path for the same rows as CSV cells."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack_core.contract import load_model
from mlstack_core.contract.batch import score_rows
from mlstack_core.kinds.inputs import feeds_from_cells, model_input
from mlstack_core.settings import serving_settings
from tests.helpers.orders import WORDS, orders_model
from tests.helpers.prediction import ModelFixture, Stack, invoke

pytestmark = [pytest.mark.unit, pytest.mark.slow]
MODEL = "orders"


@pytest.fixture
def served(serving: Stack) -> Stack:
    serving.publish(MODEL, orders_model()[0])
    return serving


stamps = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2199, 12, 31)).flatmap(
        lambda moment: st.sampled_from(
            [
                moment.isoformat(timespec="seconds"),
                moment.isoformat(sep=" ", timespec="microseconds"),
                moment.date().isoformat(),
                moment.replace(tzinfo=timezone(timedelta(hours=-5))).isoformat(),
                moment.isoformat(timespec="seconds") + "Z",
            ]
        )
    ),
    st.text(max_size=20),  # unreadable: served as missing, as in training
)
notes = st.one_of(
    st.none(),
    st.just(""),
    st.lists(st.sampled_from([*WORDS, "Café", "ÉNORME", "東京", "🙂", "x"]), max_size=30).map(
        " ".join
    ),
    st.text(max_size=200),
    st.just("great " * 3000),
)
records = st.fixed_dictionaries(
    {
        "placed_at": stamps,
        "note": notes,
        "amount": st.one_of(st.none(), st.floats(0, 1000)),
        "channel": st.one_of(st.none(), st.sampled_from(["web", "app", "phone"])),
    }
)


def _cells(record: dict[str, Any]) -> dict[str, str]:
    return {name: "" if value is None else str(value) for name, value in record.items()}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(records, min_size=1, max_size=8))
def test_served_answers_are_the_pipeline_s_and_a_batch_job_s(
    served: Stack, batch: list[dict[str, Any]]
) -> None:
    fixture, pipeline = orders_model()
    response = invoke("POST", f"/models/{MODEL}/predict", {"instances": batch})
    assert response.status == 200, response.body

    # scikit-learn on the same values, converted by the same kinds code Train uses.
    cells = [_cells(record) for record in batch]
    feeds = feeds_from_cells(fixture.schema, lambda name: [c[name] for c in cells], len(cells))
    expected = pipeline.predict_proba(model_input(feeds))
    assert np.allclose(response.body["probabilities"], expected, atol=1e-4)

    # A batch job reads the same rows as CSV cells.
    loaded = load_model(fixture.onnx, {"schema": fixture.schema}, serving_settings())
    scores = score_rows(loaded, cells)
    assert scores.refused == []
    assert scores.fields["predictions"] == response.body["predictions"]


@pytest.mark.parametrize(
    ("column", "value", "needle"),
    [
        ("placed_at", 1725091936, "expected a date or time as a string, got number"),
        ("placed_at", True, "expected a date or time as a string, got boolean"),
        ("note", {"text": "hi"}, "expected a string or null, got object"),
        ("note", False, "expected a string or null, got boolean"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_400_naming_row_and_column(
    served: Stack, column: str, value: Any, needle: str
) -> None:
    record = {"placed_at": "2024-08-31T08:12:16", "note": "fine", "amount": 3.0, "channel": "web"}
    response = invoke(
        "POST", f"/models/{MODEL}/predict", {"instances": [record, {**record, column: value}]}
    )
    assert response.status == 400
    (detail,) = response.body["details"]
    assert (detail["row"], detail["column"]) == (1, column)
    assert needle in detail["message"]


def test_a_number_sent_for_a_text_column_is_read_as_its_text(served: Stack) -> None:
    base = {"placed_at": "2024-08-31T08:12:16", "amount": 3.0, "channel": "web"}
    as_number = invoke("POST", f"/models/{MODEL}/predict", {"instances": [{**base, "note": 42}]})
    as_text = invoke("POST", f"/models/{MODEL}/predict", {"instances": [{**base, "note": "42"}]})
    assert as_number.status == as_text.status == 200
    assert as_number.body["probabilities"] == as_text.body["probabilities"]


def test_an_identifier_may_ride_along_in_a_request(serving: Stack) -> None:
    fixture, _ = orders_model()
    schema = {**fixture.schema, "identifiers": [{"name": "order_ref", "kind": "identifier"}]}
    serving.publish(MODEL, ModelFixture(fixture.onnx, fixture.pipeline, schema))
    record = {"placed_at": "2024-08-31", "note": "", "amount": None, "channel": None}
    with_ref = invoke(
        "POST", f"/models/{MODEL}/predict", {"instances": [{**record, "order_ref": "A-1"}]}
    )
    without = invoke("POST", f"/models/{MODEL}/predict", {"instances": [record]})
    assert with_ref.status == without.status == 200
    assert with_ref.body["probabilities"] == without.body["probabilities"]


def test_the_version_view_names_the_inputs_of_every_kind_without_quoting_data(
    serving: Stack,
) -> None:
    fixture, _ = orders_model()
    schema = {**fixture.schema, "identifiers": [{"name": "order_ref", "reason": "'A-1' ..."}]}
    serving.publish(MODEL, ModelFixture(fixture.onnx, fixture.pipeline, schema))
    view = invoke("GET", f"/models/{MODEL}/versions/1").body["schema"]
    assert (view["datetime"], view["text"], view["identifiers"]) == (
        ["placed_at"],
        ["note"],
        ["order_ref"],
    )
    placed_at = next(f for f in view["features"] if f["name"] == "placed_at")
    assert placed_at["format"] == "iso"
    assert "days_since_epoch" in placed_at["parts"]
    assert "reason" not in json.dumps(view)
