"""The prediction function end to end: API Gateway event → handler → onnxruntime → JSON."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as event_note
from hypothesis import strategies as st

from mlstack_core.contract import LoadedModel
from mlstack_core.storage_keys import version_model_key
from tests.helpers.emf import emf_records
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.prediction import (
    CATEGORICAL,
    CLASSES,
    NUMERIC,
    Stack,
    classifier,
    configure,
    event,
    int_classifier,
    invoke,
    load_app,
    mixed_records,
    regressor,
    to_matrix,
)

pytestmark = pytest.mark.unit
PREDICT = "/models/penguins/predict"


@pytest.fixture
def served(serving: Stack) -> Stack:
    """penguins v1 (classifier) in production."""
    serving.publish("penguins", classifier())
    return serving


def predict(instances: Any, model: str = "penguins") -> Any:
    return invoke("POST", f"/models/{model}/predict", {"instances": instances})


# correctness --------------------------------------------------------------------------------------
def test_classifier_matches_sklearn_on_mixed_data_with_missing_values(served: Stack) -> None:
    records = mixed_records(300, seed=42, missing=0.15)
    result = predict(records)

    assert result.status == 200, result.body
    fixture = classifier()
    expected = fixture.pipeline.predict(to_matrix(records))
    expected_proba = fixture.pipeline.predict_proba(to_matrix(records))
    body = result.body
    assert body["model"] == "penguins"
    assert body["version"] == 1
    assert body["classes"] == [str(c) for c in fixture.pipeline.classes_] == CLASSES
    assert body["predictions"] == list(expected)
    probabilities = np.array(body["probabilities"])
    assert probabilities.shape == (300, 3)
    np.testing.assert_allclose(probabilities, expected_proba, atol=2e-6)
    # alignment: each prediction is the class with the highest probability in its row
    assert [body["classes"][i] for i in probabilities.argmax(axis=1)] == body["predictions"]


def test_integer_labels_come_back_as_integers(serving: Stack) -> None:
    serving.publish("binary", int_classifier())
    records = mixed_records(50, seed=7)

    body = predict(records, model="binary").body

    assert body["classes"] == [0, 1]
    assert all(type(p) is int for p in body["predictions"])
    assert body["predictions"] == [
        int(v) for v in int_classifier().pipeline.predict(to_matrix(records))
    ]


def test_regressor_returns_floats_matching_sklearn(serving: Stack) -> None:
    serving.publish("mass", regressor())
    records = mixed_records(120, seed=5, missing=0.2)

    result = predict(records, model="mass")

    assert result.status == 200, result.body
    assert set(result.body) == {"model", "version", "variant", "request_id", "predictions"}
    expected = regressor().pipeline.predict(to_matrix(records))
    np.testing.assert_allclose(result.body["predictions"], expected, rtol=1e-5)
    assert all(type(p) is float for p in result.body["predictions"])


def test_numbers_for_categorical_columns_match_their_text(served: Stack) -> None:
    base = mixed_records(1, seed=3, missing=0.0)[0]
    as_text = {**base, "year": "2008"}
    as_int = {**base, "year": 2008}
    as_float = {**base, "year": 2008.0}

    body = predict([as_text, as_int, as_float]).body

    assert body["probabilities"][0] == body["probabilities"][1] == body["probabilities"][2]


def test_unknown_category_is_served_not_rejected(served: Stack) -> None:
    record = {**mixed_records(1, seed=3)[0], "island": "Atlantis"}

    assert predict([record]).status == 200


def test_all_null_instance_is_served(served: Stack) -> None:
    record = dict.fromkeys(NUMERIC + CATEGORICAL)

    result = predict([record])

    assert result.status == 200
    assert result.body["predictions"][0] in CLASSES


def test_base64_encoded_body_is_decoded(served: Stack) -> None:
    payload = json.dumps({"instances": mixed_records(2, seed=1)}).encode()
    evt = event("POST", PREDICT, base64.b64encode(payload).decode(), base64=True)

    response = load_app().handler(evt, FakeLambdaContext())

    assert response["statusCode"] == 200


# bad requests -------------------------------------------------------------------------------------
GOOD = mixed_records(1, seed=11, missing=0.0)[0]


def _with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def _without(column: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != column}


BAD_BODIES: list[tuple[str, str, str]] = [
    # (id, raw body, text the error must contain)
    ("not-json", '{"instances": [', "not valid JSON"),
    ("nan-literal", '{"instances": [{"bill_length_mm": NaN}]}', "NaN is not valid JSON"),
    ("infinity-literal", '{"instances": [{"bill_length_mm": -Infinity}]}', "Infinity"),
    ("body-is-list", "[1, 2]", "must be a JSON object"),
    ("body-is-string", '"hello"', "must be a JSON object"),
    ("instances-missing", '{"rows": []}', "'instances' is required"),
    ("instances-missing-alone", "{}", "'instances' is required"),
    ("extra-top-level-key", '{"instances": [], "parameters": {}}', "unknown top-level keys"),
    ("instances-not-list", '{"instances": {"a": 1}}', "must be a list"),
    ("instances-empty", '{"instances": []}', "is empty"),
    ("instance-not-object", '{"instances": [1]}', "not JSON objects"),
    ("deep-nesting", '{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    ("huge-int", '{"instances": [{"x": ' + "9" * 5000 + "}]}", "not valid JSON"),
]


@pytest.mark.parametrize(
    ("raw", "needle"), [(b, n) for _, b, n in BAD_BODIES], ids=[i for i, _, _ in BAD_BODIES]
)
def test_malformed_bodies_get_400(served: Stack, raw: str, needle: str) -> None:
    result = invoke("POST", PREDICT, raw, raw_body=True)

    assert result.status == 400
    assert needle in result.body["error"]
    assert isinstance(result.body["details"], list)


def test_missing_body_gets_400(served: Stack) -> None:
    result = invoke("POST", PREDICT, None)

    assert result.status == 400
    assert "body is required" in result.body["error"]


def test_invalid_base64_gets_400(served: Stack) -> None:
    response = load_app().handler(
        event("POST", PREDICT, "%%%not-base64", base64=True), FakeLambdaContext()
    )

    assert response["statusCode"] == 400


FIELD_ERRORS: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (id, instance placed at row 1, row, column, message fragment)
    ("bool-for-number", _with(bill_length_mm=True), 1, "bill_length_mm", "got boolean"),
    ("string-for-number", _with(body_mass_g="4200"), 1, "body_mass_g", "got string"),
    ("list-for-number", _with(flipper_length_mm=[1]), 1, "flipper_length_mm", "got array"),
    ("overflow-number", _with(bill_length_mm=1e39), 1, "bill_length_mm", "float32 range"),
    ("inf-from-1e400", _with(bill_length_mm=float("inf")), 1, "bill_length_mm", "float32"),
    ("bool-for-category", _with(sex=False), 1, "sex", "send the category as a string"),
    ("object-for-category", _with(island={"a": 1}), 1, "island", "got object"),
]


@pytest.mark.parametrize(
    ("instance", "row", "column", "fragment"),
    [case[1:] for case in FIELD_ERRORS],
    ids=[c[0] for c in FIELD_ERRORS],
)
def test_wrong_value_types_name_row_and_column(
    served: Stack, instance: dict[str, Any], row: int, column: str, fragment: str
) -> None:
    raw = json.dumps({"instances": [GOOD, instance]}).replace("Infinity", "1e400")

    result = invoke("POST", PREDICT, raw, raw_body=True)

    assert result.status == 400, result.body
    assert repr(column) in result.body["error"]
    assert f"row {row}" in result.body["error"]
    detail = result.body["details"][0]
    assert (detail["row"], detail["column"]) == (row, column)
    assert detail["field"] == f"instances[{row}].{column}"
    assert fragment in detail["message"]


def test_missing_and_unknown_columns_are_listed(served: Stack) -> None:
    rows = [GOOD, _without("island"), {**GOOD, "species": "Adelie", "colour": "red"}]

    result = predict(rows)

    assert result.status == 400
    first, second = result.body["details"]
    assert (first["row"], first["missing"], first["unknown"]) == (1, ["island"], [])
    assert (second["row"], second["missing"], second["unknown"]) == (2, [], ["colour", "species"])
    assert "target column" in second["message"]


def test_swapped_column_is_reported_as_missing_and_unknown(served: Stack) -> None:
    swapped = {**_without("sex"), "gender": "male"}  # same number of keys as a good row

    result = predict([GOOD, swapped])

    assert result.status == 400
    detail = result.body["details"][0]
    assert (detail["row"], detail["missing"], detail["unknown"]) == (1, ["sex"], ["gender"])


def test_numeric_and_categorical_errors_are_reported_together(served: Stack) -> None:
    result = predict([_with(bill_length_mm="x", island=[])])

    columns = {d["column"] for d in result.body["details"]}
    assert columns == {"bill_length_mm", "island"}


def test_error_details_are_capped(served: Stack) -> None:
    result = predict([_with(bill_length_mm="x")] * 500)

    assert result.status == 400
    assert len(result.body["details"]) == 20
    assert "and 499 more" in result.body["error"]


# 404 / 413 / 500 ----------------------------------------------------------------------------------
def test_unknown_model_gets_404(served: Stack) -> None:
    for result in (predict([GOOD], model="nope"), invoke("GET", "/models/nope")):
        assert result.status == 404
        assert "nope" in result.body["error"]
        assert result.body["details"] == []


def test_unknown_route_gets_404_in_the_error_format(served: Stack) -> None:
    result = invoke("GET", PREDICT)

    assert result.status == 404
    assert result.body["error"] == f"no route for GET {PREDICT}"


def test_too_many_rows_gets_413(served: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, MAX_ROWS="5")

    assert predict([GOOD] * 5).status == 200
    result = predict([GOOD] * 6)
    assert result.status == 413
    assert "limit of 5" in result.body["error"]


def test_too_large_body_gets_413(served: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, MAX_BODY_BYTES="1000")

    result = predict([GOOD] * 20)

    assert result.status == 413


def test_unexpected_failure_is_a_generic_500(
    served: Stack, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO
) -> None:
    def explode(*_: Any) -> Any:
        raise RuntimeError("secret internal detail")

    assert predict([GOOD]).status == 200  # loaded (its warm-up also builds inputs)
    monkeypatch.setattr(LoadedModel, "run_request", explode)

    result = predict([GOOD])

    assert result.status == 500
    assert "secret" not in result.raw["body"]
    assert "Traceback" not in result.raw["body"]
    assert result.body["details"] == [{"request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}]
    logged = log_output.getvalue()
    assert "secret internal detail" in logged  # the stack is logged, not returned
    assert "Traceback" in logged


def test_every_log_line_carries_its_own_request_ids(
    served: Stack, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO
) -> None:
    def explode(*_: Any) -> Any:
        raise RuntimeError("boom")

    app = load_app()
    assert predict([GOOD]).status == 200
    monkeypatch.setattr(LoadedModel, "run_request", explode)
    for n in range(3):
        request = event("POST", PREDICT, json.dumps({"instances": [GOOD]}))
        request["requestContext"]["requestId"] = f"api-{n}"
        app.handler(request, FakeLambdaContext(aws_request_id=f"lambda-{n}"))

    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    errors = [line for line in lines if line["message"] == "Unhandled error"]
    assert [(e["correlation_id"], e["function_request_id"]) for e in errors] == [
        (f"api-{n}", f"lambda-{n}") for n in range(3)
    ]
    assert {e["cold_start"] for e in errors} == {False}


# registry behaviour -------------------------------------------------------------------------------
def test_promotion_is_served_without_redeploy(
    serving: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    serving.publish("penguins", classifier())
    assert predict([GOOD]).body["version"] == 1

    serving.publish("penguins", classifier())  # v2, promoted

    assert predict([GOOD]).body["version"] == 2


def test_alias_is_cached_for_its_ttl(serving: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="3600")
    serving.publish("penguins", classifier())
    assert predict([GOOD]).body["version"] == 1

    serving.publish("penguins", classifier())

    assert predict([GOOD]).body["version"] == 1


def test_tampered_artifact_is_refused_and_previous_version_keeps_serving(
    serving: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    log_output: io.StringIO,
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    serving.publish("penguins", classifier())
    assert predict([GOOD]).body["version"] == 1
    v2 = serving.publish("penguins", classifier(), promote=False, pin_version_id=False)
    # someone overwrites v2's object after registration
    serving.s3.put_object(
        Bucket=serving.bucket, Key=version_model_key("penguins", v2), Body=regressor().onnx
    )
    serving.promote("penguins", v2)
    capsys.readouterr()

    result = predict([GOOD])

    assert result.status == 200
    assert result.body["version"] == 1
    assert "artifact checksum mismatch" in log_output.getvalue()
    assert any("ModelLoadFailures" in r for r in emf_records(capsys.readouterr().out))


def test_tampered_artifact_with_nothing_to_fall_back_on_gets_503(
    serving: Stack,
) -> None:
    serving.publish("penguins", classifier(), sha256=hashlib.sha256(b"other").hexdigest())

    result = predict([GOOD])

    assert result.status == 503
    assert "cannot be served" in result.body["error"]
    assert "checksum mismatch" in result.body["details"][0]["message"]
    # No bucket, key, hash or AWS error text reaches the client; the log has them.
    for internal in ("s3://", "sha256", "mlstack-", "botocore"):
        assert internal not in json.dumps(result.body), internal


def test_schema_that_contradicts_the_graph_is_refused_at_load(
    serving: Stack, log_output: io.StringIO
) -> None:
    fixture = classifier()
    broken = replace(fixture, schema={**fixture.schema, "classes": ["Adelie", "Gentoo"]})
    serving.publish("penguins", broken)

    result = predict([GOOD])

    assert result.status == 503
    assert result.body["details"][0]["message"] == (
        "the model's graph does not match its version's schema"
    )
    assert "schema lists 2 classes" in log_output.getvalue()


def test_features_the_graph_does_not_use_are_accepted(serving: Stack) -> None:
    fixture = classifier()
    features = [*fixture.schema["features"], {"name": "notes", "kind": "text"}]
    serving.publish("penguins", replace(fixture, schema={**fixture.schema, "features": features}))

    with_notes = predict([{**GOOD, "notes": "seen at dawn"}])

    assert with_notes.status == 200
    assert with_notes.body["probabilities"] == predict([GOOD]).body["probabilities"]


def test_sessions_are_single_threaded_and_the_cache_is_bounded(
    serving: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack_predict import predictor

    configure(monkeypatch, SESSION_CACHE_SIZE="1")
    serving.publish("penguins", classifier())
    serving.publish("mass", regressor())

    for model in ("penguins", "mass", "penguins"):
        assert predict([GOOD], model=model).status == 200

    sessions = predictor.get_predictor().sessions.entries
    assert list(sessions) == [("penguins", 1)]
    options = sessions["penguins", 1].session.get_session_options()
    assert options.intra_op_num_threads == 1


def test_describe_model_lists_versions(serving: Stack) -> None:
    serving.publish("penguins", classifier())
    serving.publish("penguins", classifier(), promote=False)

    body = invoke("GET", "/models/penguins").body

    assert body["production_version"] == 1
    assert body["production"]["version"] == 1
    assert body["production"]["schema"]["numeric"] == NUMERIC
    assert [(v["version"], v["status"]) for v in body["versions"]] == [
        (1, "Approved"),  # in production
        (2, "Registered"),
    ]
    assert body["versions"][0]["metric"] == {"name": "accuracy", "value": 0.9}
    assert body["versions"][0]["created_at"]


def test_list_models_and_health(serving: Stack) -> None:
    serving.publish("penguins", classifier())
    serving.publish("mass", regressor(), promote=False)

    assert invoke("GET", "/models").body == {
        "models": [
            {"model": "mass", "production_version": None},
            {"model": "penguins", "production_version": 1},
        ]
    }
    assert invoke("GET", "/health").body == {"status": "ok"}


# metrics ------------------------------------------------------------------------------------------
def _request_metrics(output: str) -> dict[str, Any]:
    records = [r for r in emf_records(output) if "PredictionRequests" in r]
    assert len(records) == 1
    return records[0]


def test_metrics_have_only_the_model_dimension(
    served: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    predict(mixed_records(4, seed=1))

    record = _request_metrics(capsys.readouterr().out)
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "mlstack"
    assert directive["Dimensions"] == [["model", "service"]]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names == {
        "PredictionRequests": "Count",
        "PredictedRows": "Count",
        "PredictionLatency": "Milliseconds",
        "ModelLoadTime": "Milliseconds",
    }
    assert record["model"] == "penguins"
    assert record["model_version"] == 1  # metadata, not a dimension
    assert record["PredictedRows"] == [4.0]


def test_unknown_model_metrics_do_not_use_the_callers_name(
    served: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    predict([GOOD], model="made-up-name-123")

    record = _request_metrics(capsys.readouterr().out)
    assert record["model"] == "(unknown)"
    assert record["PredictionErrors"] == [1.0]


# fuzzing ------------------------------------------------------------------------------------------
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
_columns = st.sampled_from([*NUMERIC, *CATEGORICAL, "species", ""])
_numbers = st.none() | st.integers() | st.floats(allow_nan=False)
_well_typed = st.fixed_dictionaries(
    {**{c: _numbers for c in NUMERIC}, **{c: _numbers | st.text(max_size=8) for c in CATEGORICAL}}
)
_instance = (
    st.dictionaries(_columns, _json, max_size=8)
    | st.fixed_dictionaries({c: _scalars for c in NUMERIC + CATEGORICAL})
    | _well_typed
)
_bodies = st.one_of(
    _json.map(json.dumps),
    st.lists(_instance | _json, max_size=5).map(lambda rows: json.dumps({"instances": rows})),
    st.lists(_well_typed, min_size=1, max_size=5).map(lambda rows: json.dumps({"instances": rows})),
    st.dictionaries(st.sampled_from(["instances", "x"]), _json).map(json.dumps),
    st.text(max_size=40),
)


@pytest.mark.slow
@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies)
def test_random_bodies_never_get_a_5xx(served: Stack, body: str) -> None:
    result = invoke("POST", PREDICT, body, raw_body=True)

    assert result.status < 500, (body, result.body)
    event_note(f"status {result.status}")
    assert set(result.body) >= ({"error", "details"} if result.status >= 400 else {"predictions"})
