"""Ground-truth capture in the prediction function's container: what it holds, when it lets go,
and what it never does (fail a prediction, grow without bound, record a model that did not opt
in)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlstack_core.capture import CaptureRecorder
from mlstack_core.contract import Batch, FeatureLayout
from mlstack_core.storage_keys import (
    DATASET_KEY,
    capture_key,
    captures_prefix,
    dataset_key,
    feedback_dataset_key,
)
from tests.helpers.emf import emf_records
from tests.helpers.prediction import (
    Stack,
    configure,
    invoke,
    mixed_records,
)
from tests.helpers.stack import monitoring_written

pytestmark = pytest.mark.unit

DOCUMENT: dict[str, Any] = {
    "schema": {
        "task": "classification",
        "numeric": ["x"],
        "categorical": ["colour"],
        "classes": ["no", "yes"],
        "features": [{"name": "x", "kind": "numeric"}, {"name": "colour", "kind": "categorical"}],
    },
    "spec": {"quality": {"capture": True, "key": "customer"}},
}
LAYOUT = FeatureLayout.from_document(DOCUMENT)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def answer(rows: int, request_id: str = "req-1") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "version": 3,
        "variant": "production",
        "predictions": ["yes"] * rows,
        "probabilities": np.tile(np.array([[0.25, 0.75]], dtype=np.float32), (rows, 1)),
    }


def batch(rows: int) -> Batch:
    return Batch.of_instances(
        [{"x": float(i), "colour": "red", "customer": f"c{i}"} for i in range(rows)]
    )


def lines(written: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(line) for _, body in written for line in body.decode().splitlines()]


def test_captured_rows_say_what_was_asked_and_answered_and_wait_for_their_flush() -> None:
    clock = Clock()
    recorder = CaptureRecorder(sample_rate=1.0, flush_seconds=60, clock=clock)
    assert recorder.record("m", LAYOUT, DOCUMENT, batch(2), answer(2)) == []
    clock.now += 61
    written = recorder.record("m", LAYOUT, DOCUMENT, batch(1), answer(1, "req-2"))
    ((key, _),) = written
    assert key.startswith(captures_prefix("m", 3, "2027-01-15"))
    assert key.endswith(".jsonl")
    first, second, third = lines(written)
    assert first["request_id"] == second["request_id"] == "req-1"
    assert [first["row"], second["row"], third["row"]] == [0, 1, 0]
    assert first["features"] == {"x": 0.0, "colour": "red"}
    assert first["key"] == "c0"
    assert first["prediction"] == "yes"
    assert first["probabilities"] == [0.25, 0.75]
    assert first["version"] == 3
    assert first["variant"] == "production"
    assert recorder.due(everything=True) == []  # nothing held twice


def test_a_model_that_did_not_opt_in_is_never_captured() -> None:
    recorder = CaptureRecorder(sample_rate=1.0, flush_seconds=0)
    document = {**DOCUMENT, "spec": {}}
    assert recorder.record("m", LAYOUT, document, batch(3), answer(3)) == []
    assert recorder.due(everything=True) == []


def test_a_sample_rate_of_zero_records_nothing_and_costs_one_comparison() -> None:
    recorder = CaptureRecorder(sample_rate=0.0, flush_seconds=0)
    assert recorder.record("m", LAYOUT, DOCUMENT, batch(3), answer(3)) == []
    assert recorder.due(everything=True) == []


@given(rate=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_the_sample_rate_is_the_share_of_requests_recorded(rate: float, seed: int) -> None:
    recorder = CaptureRecorder(sample_rate=rate, flush_seconds=1e9, seed=seed)
    for i in range(2000):
        recorder.record("m", LAYOUT, DOCUMENT, batch(1), answer(1, f"r{i}"))
    recorded = len(lines(recorder.due(everything=True)))
    assert abs(recorded / 2000 - rate) < 0.06


def test_memory_is_bounded_and_what_does_not_fit_is_counted() -> None:
    recorder = CaptureRecorder(
        sample_rate=1.0, flush_seconds=1e9, max_rows_per_request=50, max_buffered_rows=120
    )
    for _ in range(4):
        recorder.record("m", LAYOUT, DOCUMENT, batch(80), answer(80))
    assert len(lines(recorder.due(everything=True))) == 120
    assert recorder.dropped == 4 * 50 - 120


def test_a_capture_that_cannot_be_made_never_fails_the_prediction() -> None:
    recorder = CaptureRecorder(sample_rate=1.0, flush_seconds=0)
    broken = {"request_id": "r", "version": "not a number", "predictions": []}
    assert recorder.record("m", LAYOUT, DOCUMENT, batch(1), broken) == []
    assert recorder.errors == 1


def test_a_regressors_missing_prediction_is_null_not_nan() -> None:
    recorder = CaptureRecorder(sample_rate=1.0, flush_seconds=0)
    regressor = {"request_id": "r", "version": 1, "predictions": np.array([np.nan, 2.5])}
    (line_a, line_b) = lines(recorder.record("m", LAYOUT, DOCUMENT, batch(2), regressor))
    assert line_a["prediction"] is None
    assert line_b["prediction"] == 2.5


def test_the_feedback_key_is_a_column_requests_may_carry() -> None:
    assert "customer" in LAYOUT.known
    assert "customer" not in LAYOUT.required
    plain = FeatureLayout.from_document({**DOCUMENT, "spec": {}})
    assert "customer" not in plain.known


# Through the prediction function: API Gateway events in, captures in the model bucket out
# (the captured_model fixture is in tests/unit/conftest.py).


def test_the_prediction_function_captures_what_it_answered(captured_model: Stack) -> None:
    records = mixed_records(3, seed=1)
    answer = invoke("POST", "/models/penguins/predict", {"instances": records})
    assert answer.status == 200, answer.body
    monitoring_written()
    listing = captured_model.s3.list_objects_v2(
        Bucket=captured_model.bucket, Prefix=captures_prefix("penguins", 1)
    )
    (item,) = listing["Contents"]
    body = captured_model.s3.get_object(Bucket=captured_model.bucket, Key=item["Key"])["Body"]
    captured = [json.loads(line) for line in body.read().decode().splitlines()]
    assert [c["row"] for c in captured] == [0, 1, 2]
    assert {c["request_id"] for c in captured} == {answer.body["request_id"]}
    assert [c["prediction"] for c in captured] == answer.body["predictions"]
    np.testing.assert_allclose(
        [c["probabilities"] for c in captured], answer.body["probabilities"], rtol=1e-6
    )
    assert captured[0]["features"] == {k: records[0][k] for k in captured[0]["features"]}


def test_a_capture_that_cannot_be_written_leaves_the_answer_as_it_was(
    captured_model: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack_predict import predictor

    served = predictor.get_predictor()
    refused: list[str] = []

    def refuse(**request: Any) -> None:
        refused.append(request["Key"])
        raise RuntimeError("S3 is down")

    monkeypatch.setattr(served, "s3", type("Refusing", (), {"put_object": staticmethod(refuse)}))
    answer = invoke("POST", "/models/penguins/predict", {"instances": mixed_records(2, seed=2)})
    assert answer.status == 200, answer.body
    assert len(answer.body["predictions"]) == 2
    monitoring_written()
    assert any(key.startswith("captures/") for key in refused)  # the write was tried, and failed


def test_rows_a_full_container_cannot_hold_are_counted_in_its_metrics(
    captured_model: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack_predict import predictor

    configure(monkeypatch, CAPTURE_SAMPLE_RATE="1", DRIFT_FLUSH_SECONDS="3600")
    predictor.get_predictor().capture.max_buffered_rows = 2
    capsys.readouterr()
    answer = invoke("POST", "/models/penguins/predict", {"instances": mixed_records(5, seed=3)})
    assert answer.status == 200, answer.body
    (record,) = [r for r in emf_records(capsys.readouterr().out) if "CaptureDropped" in r]
    assert record["CaptureDropped"] in (3, [3])
    assert record["model"] == "penguins"


def test_captures_expire_after_their_retention() -> None:
    """Every capture key is under the one prefix the model bucket's lifecycle rule expires after
    CaptureRetentionDays (and its older versions a day later)."""
    from mlstack.sam import load_template, project_root

    template = load_template(project_root() / "template.yaml")
    rules = template["Resources"]["ModelBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (rule,) = [r for r in rules if r.get("Prefix") == "captures/"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert template["Parameters"]["CaptureRetentionDays"]["Default"] == 90
    key = capture_key("penguins", 3, 1_800_000_000.0, "abcd1234", 7)
    assert key == "captures/penguins/3/2027-01-15/080000-abcd1234-000007.jsonl"


def test_datasets_derived_from_captures_expire_with_them_and_still_start_runs() -> None:
    """The Monitor's retraining copies captured rows into a dataset: the translated template's
    data bucket expires it after CaptureRetentionDays (never a user's upload), and its upload is
    seen by the trigger's rule and names its model as any dataset does."""
    from tests.helpers.template import real

    resources = real()["Resources"]
    derived = feedback_dataset_key("penguins", 3, "0123456789abcdef")
    rules = resources["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (rule,) = [r for r in rules if "Prefix" in r and derived.startswith(r["Prefix"])]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert not dataset_key("penguins", "data.csv").startswith(rule["Prefix"])

    pattern = resources["TriggerFunctionDatasetUploaded"]["Properties"]["EventPattern"]
    assert any(derived.startswith(p["prefix"]) for p in pattern["detail"]["object"]["key"])
    match = DATASET_KEY.match(derived)
    assert match is not None
    assert match.group("model") == "penguins"


def test_datetime_and_text_values_are_captured_as_sent() -> None:
    """Feedback turns captures into training rows: every input column must be in them."""
    document = {
        **DOCUMENT,
        "schema": {
            **DOCUMENT["schema"],
            "datetime": ["placed_at"],
            "text": ["note"],
            "features": [
                *DOCUMENT["schema"]["features"],
                {"name": "placed_at", "kind": "datetime", "format": "iso", "parts": ["year"]},
                {"name": "note", "kind": "text"},
            ],
        },
    }
    layout = FeatureLayout.from_document(document)
    recorder = CaptureRecorder(sample_rate=1.0, flush_seconds=0)
    sent = {"x": 1.5, "colour": "red", "placed_at": "2024-08-31T08:12:16+02:00", "note": "Très bon"}
    written = recorder.record("m", layout, document, Batch.of_instances([sent]), answer(1))
    (line,) = lines(written)
    assert line["features"] == sent
