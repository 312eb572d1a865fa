"""The prediction API's surface: columnar bodies, version pinning, versions route, request ids, hot
reload after promote and rollback, canary and shadow, the session cache bound, OpenAPI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.emf import emf_records
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.prediction import (
    CATEGORICAL,
    NUMERIC,
    ROOT,
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
COLUMNS = NUMERIC + CATEGORICAL


@pytest.fixture
def served(serving: Stack) -> Stack:
    serving.publish("penguins", classifier())
    return serving


def columnar(records: list[dict[str, Any]], columns: list[str] = COLUMNS) -> dict[str, Any]:
    return {"columns": columns, "data": [[r.get(c) for c in columns] for r in records]}


def call(path: str, body: Any = None, query: dict[str, str] | None = None, raw: bool = False):
    evt = event("POST" if body is not None else "GET", path, body if raw else json.dumps(body))
    if body is None:
        evt["body"] = None
    evt["queryStringParameters"] = query
    response = load_app().handler(evt, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"]), response


# columnar form ------------------------------------------------------------------------------------
def test_columnar_body_gives_the_same_answer_as_records(served: Stack) -> None:
    records = mixed_records(50, seed=4, missing=0.2)
    records_body = invoke("POST", PREDICT, {"instances": records}).body
    # a different column order is fine: columns are matched by name
    status, body, _ = call(PREDICT, columnar(records, list(reversed(COLUMNS))))

    assert status == 200, body
    assert body["predictions"] == records_body["predictions"]
    assert body["probabilities"] == records_body["probabilities"]


COLUMNAR_ERRORS: list[tuple[str, Any, str, str]] = [
    # (id, body, field of the first detail, text in the error)
    ("data-missing", {"columns": COLUMNS}, "data", "needs both"),
    ("columns-missing", {"data": [[1]]}, "columns", "needs both"),
    ("columns-not-strings", {"columns": [1, 2], "data": [[1, 2]]}, "columns", "column names"),
    ("columns-repeated", {"columns": ["island", "island"], "data": [[1, 2]]}, "columns", "repeats"),
    ("data-not-list", {"columns": COLUMNS, "data": {"a": 1}}, "data", "list of rows"),
    ("data-empty", {"columns": COLUMNS, "data": []}, "data", "is empty"),
    ("row-too-short", {"columns": COLUMNS, "data": [[1.0]]}, "data[0]", "arrays of 6 values"),
    ("row-not-array", {"columns": COLUMNS, "data": [{"x": 1}]}, "data[0]", "arrays of 6"),
    ("extra-key", {"columns": COLUMNS, "data": [[None] * 6], "x": 1}, "x", "unknown top-level"),
    ("missing-column", {"columns": COLUMNS[1:], "data": [[None] * 5]}, "columns", "do not match"),
    (
        "unknown-column",
        {"columns": [*COLUMNS, "species"], "data": [[None] * 7]},
        "columns",
        "do not match",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [c[1:] for c in COLUMNAR_ERRORS],
    ids=[c[0] for c in COLUMNAR_ERRORS],
)
def test_malformed_columnar_bodies_get_400_naming_the_field(
    served: Stack, body: Any, field: str, needle: str
) -> None:
    status, answer, _ = call(PREDICT, body)

    assert status == 400, answer
    assert needle in answer["error"]
    assert answer["details"][0]["field"] == field


def test_columnar_value_errors_name_row_and_cell(served: Stack) -> None:
    record = mixed_records(1, seed=2, missing=0.0)[0]
    body = columnar([record, {**record, "body_mass_g": "heavy"}])

    status, answer, _ = call(PREDICT, body)

    assert status == 400
    detail = answer["details"][0]
    assert (detail["row"], detail["column"]) == (1, "body_mass_g")
    assert detail["field"] == f"data[1][{COLUMNS.index('body_mass_g')}]"


def test_unknown_column_of_the_target_says_so(served: Stack) -> None:
    status, answer, _ = call(PREDICT, {"columns": [*COLUMNS, "species"], "data": [[None] * 7]})

    assert status == 400
    assert answer["details"][0]["unknown"] == ["species"]
    assert "target column" in answer["details"][0]["message"]


# request id, variant, pinning, versions route -----------------------------------------------------
def test_response_carries_request_id_version_and_variant(served: Stack) -> None:
    status, body, response = call(PREDICT, {"instances": mixed_records(1, seed=1)})

    assert status == 200
    request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # the event's requestContext.requestId
    assert body["request_id"] == request_id
    assert response["headers"]["X-Request-Id"] == request_id
    assert (body["version"], body["variant"]) == (1, "production")
    assert response["headers"]["X-Model-Version"] == "1"


def test_version_query_pins_an_approved_or_aliased_version_only(served: Stack) -> None:
    from mlstack_predict import predictor

    served.publish("penguins", regressor(), promote=False)  # v2: registered, not approved
    served.publish("penguins", classifier())  # v3: production; v1 is now Archived
    instances = {"instances": mixed_records(2, seed=1)}

    assert call(PREDICT, instances)[1]["version"] == 3
    assert call(PREDICT, instances, {"version": "3"})[1]["variant"] == "pinned"
    for unserved in ("1", "2"):
        status, body, _ = call(PREDICT, instances, {"version": unserved})
        assert status == 404
        assert "only approved versions are served by number" in body["error"]

    served.registry.set_status("penguins", 2, "Approved", "test", "reviewed")
    status, body, _ = call(PREDICT, instances, {"version": "2"})
    assert (status, body["version"], body["variant"]) == (200, 2, "pinned")
    assert "classes" not in body  # v2 is the regressor
    served.registry.set_challenger("penguins", "shadow", 1, actor="test", reason="compare")
    predictor.get_predictor().aliases._routing.clear()  # as if the alias TTL had elapsed
    assert call(PREDICT, instances, {"version": "1"})[0] == 200  # aliased: served
    assert call(PREDICT, instances)[1]["version"] == 3  # production is untouched


@pytest.mark.parametrize("status", ["Rejected", "PendingApproval", "Registered"])
def test_an_alias_never_serves_a_version_that_was_not_approved(served: Stack, status: str) -> None:
    """An aliased version used to skip the status check: ?version=N served whatever the shadow
    pointed at, from the session cache. The status is read on each pinned request."""
    from mlstack_predict import predictor

    served.publish("penguins", classifier(), promote=False, status="Approved")  # v2
    _challenger(served, "shadow", 2)
    instances = {"instances": mixed_records(1, seed=1)}
    assert call(PREDICT, instances, {"version": "2"})[0] == 200  # loaded and cached

    served.registry.set_status("penguins", 2, status, "test", "withdrawn")
    for fresh in (False, True):
        if fresh:  # the alias cache expired, and another container, without the session
            predictor.get_predictor().aliases._routing.clear()
            predictor.get_predictor().sessions.entries.clear()
        code, body, _ = call(PREDICT, instances, {"version": "2"})
        assert code == 404
        assert f"version 2 of 'penguins' is {status}" in body["error"]
    assert served.registry.aliases("penguins")["shadow"] == {"version": 2}


def test_an_archived_version_serves_pinned_only_while_an_alias_points_at_it(served: Stack) -> None:
    from mlstack_predict import predictor

    served.publish("penguins", classifier())  # v2: production; v1 is now Archived
    instances = {"instances": mixed_records(1, seed=1)}
    assert call(PREDICT, instances, {"version": "1"})[0] == 404
    _challenger(served, "canary", 1, share=0.1)
    predictor.get_predictor().aliases._routing.clear()  # as if the alias TTL had elapsed
    assert call(PREDICT, instances, {"version": "1"})[0] == 200

    served.registry.clear_challenger("penguins", "canary", actor="test", reason="done")
    predictor.get_predictor().aliases._routing.clear()
    code, body, _ = call(PREDICT, instances, {"version": "1"})
    assert code == 404
    assert "left production" in body["error"]


def test_cycling_through_rejected_versions_loads_nothing(served: Stack) -> None:
    """?version=N of a version that is neither approved nor aliased is refused before anything
    is read from S3, so it cannot push the served versions out of the session cache."""
    from mlstack_predict import predictor

    rejected = [served.publish("penguins", classifier(), promote=False) for _ in range(3)]
    for version in rejected:
        served.registry.set_status("penguins", version, "Rejected", "pipeline", "gate")
    instances = {"instances": mixed_records(1, seed=2)}
    assert call(PREDICT, instances)[0] == 200
    before = list(predictor.get_predictor().sessions.entries)
    for version in rejected * 3:
        assert call(PREDICT, instances, {"version": str(version)})[0] == 404
    assert list(predictor.get_predictor().sessions.entries) == before


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ({"version": "9"}, 404, "has no version 9"),
        ({"version": "abc"}, 400, "positive integer"),
        ({"version": "0"}, 400, "positive integer"),
        ({"version": "-1"}, 400, "positive integer"),
        ({"versoin": "1"}, 400, "unknown query parameters: versoin"),
    ],
)
def test_bad_version_pins(served: Stack, query: dict[str, str], status: int, needle: str) -> None:
    answer = call(PREDICT, {"instances": mixed_records(1, seed=1)}, query)

    assert answer[0] == status
    assert needle in answer[1]["error"]


def test_pinned_version_of_an_unknown_model_is_404(served: Stack) -> None:
    status, _, _ = call("/models/nope/predict", {"instances": [{}]}, {"version": "1"})

    assert status == 404


def test_pinned_tampered_version_is_refused_with_503(served: Stack) -> None:
    served.publish("penguins", classifier(), promote=False, sha256="0" * 64)
    served.registry.set_status("penguins", 2, "Approved", "test", "servable")

    status, body, _ = call(PREDICT, {"instances": mixed_records(1, seed=1)}, {"version": "2"})

    assert status == 503
    assert "checksum mismatch" in body["details"][0]["message"]


def test_version_route_returns_metadata_metrics_and_schema(served: Stack) -> None:
    served.publish("penguins", regressor(), promote=False)

    first = invoke("GET", "/models/penguins/versions/1")
    second = invoke("GET", "/models/penguins/versions/2")

    assert first.status == 200
    assert first.body["version"] == 1
    assert first.body["schema"]["numeric"] == NUMERIC
    assert first.body["metrics"]["accuracy"] == 0.9
    assert first.body["aliases"] == ["production"]
    assert second.body["aliases"] == []
    # The public view: nothing that locates, identifies or explains the stack's internals.
    shown = json.dumps(first.body)
    for internal in (
        "artifact",
        "bucket",
        "sha256",
        "execution_arn",
        "library_versions",
        "mlstack-",
    ):
        assert internal not in shown, internal
    assert set(first.body) == {
        "model",
        "version",
        "status",
        "created_at",
        "task",
        "family",
        "metric",
        "metrics",
        "schema",
        "aliases",
    }
    for path in (
        "/models/penguins/versions/7",
        "/models/penguins/versions/x",
        "/models/no/versions/1",
    ):
        missing = invoke("GET", path)
        assert missing.status == 404, path
        assert set(missing.body) == {"error", "details"}


# hot reload ---------------------------------------------------------------------------------------
def test_promotion_and_rollback_are_served_without_a_new_process(
    serving: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    from mlstack_predict import predictor

    serving.publish("penguins", classifier())
    serving.publish("penguins", int_classifier(), promote=False)
    body = {"instances": mixed_records(3, seed=2)}
    first = predictor.get_predictor()
    assert invoke("POST", PREDICT, body).body["version"] == 1

    serving.promote("penguins", 2)
    promoted = invoke("POST", PREDICT, body).body
    serving.registry.move_alias(
        "penguins", 1, expected=2, actor="test", reason="rollback", rollback=True
    )
    rolled_back = invoke("POST", PREDICT, body).body

    assert (promoted["version"], promoted["classes"]) == (2, [0, 1])
    assert rolled_back["version"] == 1
    assert rolled_back["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    # the same container state answered all three: no redeploy, no new process
    assert predictor.get_predictor() is first
    assert set(first.sessions.entries) == {("penguins", 1), ("penguins", 2)}


def test_promotion_is_seen_once_the_ttl_expires(
    serving: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="30")
    from mlstack_predict import predictor

    clock = [1000.0]
    monkeypatch.setattr(predictor.time, "monotonic", lambda: clock[0])
    serving.publish("penguins", classifier())
    body = {"instances": mixed_records(1, seed=2)}
    assert invoke("POST", PREDICT, body).body["version"] == 1

    serving.publish("penguins", classifier())  # v2 promoted
    clock[0] += 29.0
    assert invoke("POST", PREDICT, body).body["version"] == 1
    clock[0] += 1.5
    assert invoke("POST", PREDICT, body).body["version"] == 2


def test_session_cache_is_bounded_by_artifact_bytes(
    serving: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, SESSION_CACHE_SIZE="10", SESSION_CACHE_BYTES="3000")
    from mlstack_predict import predictor

    for name in ("a", "b", "c"):
        serving.publish(name, classifier())  # ~1.9 kB each
        assert invoke("POST", f"/models/{name}/predict", {"instances": [{}]}).status == 400

    assert list(predictor.get_predictor().sessions.entries) == [("c", 1)]


# canary / shadow ----------------------------------------------------------------------------------
def _challenger(stack: Stack, alias: str, version: int, share: float | None = None) -> None:
    stack.registry.set_challenger(
        "penguins", alias, version, share=share, actor="test", reason="test"
    )


def test_canary_takes_its_share_of_requests(
    served: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    served.publish("penguins", classifier(), promote=False, status="Approved")  # v2
    _challenger(served, "canary", 2, share=0.3)
    from mlstack_predict import predictor

    predictor.get_predictor().aliases._random.seed(1)
    body = {"instances": mixed_records(1, seed=3)}
    capsys.readouterr()

    answers = [call(PREDICT, body)[1] for _ in range(300)]

    canary = [a for a in answers if a["variant"] == "canary"]
    assert all(a["version"] == 2 for a in canary)
    assert all(a["version"] == 1 for a in answers if a["variant"] == "production")
    assert 60 <= len(canary) <= 120  # 30% of 300, within a generous binomial margin
    records = [r for r in emf_records(capsys.readouterr().out) if "PredictionRequests" in r]
    assert sum("CanaryRequests" in r for r in records) == len(canary)
    assert {r["variant"] for r in records} == {"canary", "production"}

    served.registry.clear_challenger("penguins", "canary", actor="test", reason="done")
    assert {call(PREDICT, body)[1]["variant"] for _ in range(20)} == {"production"}


def test_a_canary_that_cannot_load_leaves_production_answering(
    served: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    served.publish("penguins", classifier(), promote=False, sha256="f" * 64, status="Approved")
    _challenger(served, "canary", 2, share=1.0)
    capsys.readouterr()

    status, body, _ = call(PREDICT, {"instances": mixed_records(1, seed=3)})

    assert (status, body["version"], body["variant"]) == (200, 1, "production")
    record = next(r for r in emf_records(capsys.readouterr().out) if "PredictionRequests" in r)
    assert record["CanaryFallbacks"] == [1.0]
    assert record["ModelLoadFailures"] == [1.0]


def test_shadow_is_scored_silently_and_compared(
    served: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    served.publish("penguins", classifier(), promote=False, status="Approved")  # v2: same model
    _challenger(served, "shadow", 2)
    records = mixed_records(40, seed=5)
    capsys.readouterr()

    status, body, _ = call(PREDICT, {"instances": records})

    assert status == 200
    assert (body["version"], body["variant"], body["shadow_version"]) == (1, "production", 2)
    record = next(r for r in emf_records(capsys.readouterr().out) if "PredictionRequests" in r)
    assert record["ShadowAgreement"] == [100.0]
    assert record["ShadowMaxAbsDiff"] == [0.0]
    assert record["shadow_version"] == 2
    names = {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"ShadowRequests", "ShadowAgreement", "ShadowMaxAbsDiff", "ShadowLatency"} <= names


def test_a_different_shadow_reports_disagreement(
    served: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    from sklearn.linear_model import LogisticRegression

    from tests.helpers import prediction

    fixture = classifier()
    records = mixed_records(60, seed=6)
    # same classes, labels shuffled: a challenger that disagrees often
    labels = np.random.default_rng(0).permutation(prediction.species_labels(records, 6))
    other = prediction.fit_pipeline(LogisticRegression(C=0.05, max_iter=500), labels, records)
    constant = prediction.ModelFixture(prediction.export_onnx(other), other, fixture.schema)
    served.publish("penguins", constant, promote=False, status="Approved")
    _challenger(served, "shadow", 2)
    capsys.readouterr()

    body = call(PREDICT, {"instances": records})[1]

    record = next(r for r in emf_records(capsys.readouterr().out) if "PredictionRequests" in r)
    shadow = other.predict(to_matrix(records))
    expected = np.mean(np.array(body["predictions"], dtype=object) == shadow) * 100
    assert expected < 100
    assert record["ShadowAgreement"] == [pytest.approx(expected)]
    difference = np.abs(np.array(body["probabilities"]) - other.predict_proba(to_matrix(records)))
    assert record["ShadowMaxAbsDiff"] == [pytest.approx(difference.max(), abs=1e-5)]


def test_a_failing_shadow_never_changes_the_answer(
    served: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(monkeypatch, ALIAS_TTL_SECONDS="0")
    # a regressor cannot shadow a classifier
    served.publish("penguins", regressor(), promote=False, status="Approved")
    _challenger(served, "shadow", 2)
    capsys.readouterr()

    status, body, _ = call(PREDICT, {"instances": mixed_records(3, seed=6)})

    assert status == 200
    assert "shadow_version" not in body
    record = next(r for r in emf_records(capsys.readouterr().out) if "PredictionRequests" in r)
    assert record["ShadowErrors"] == [1.0]


def test_describe_shows_challengers(served: Stack) -> None:
    served.publish("penguins", classifier(), promote=False, status="Approved")
    _challenger(served, "canary", 2, share=0.25)
    _challenger(served, "shadow", 2)

    body = invoke("GET", "/models/penguins").body

    assert body["canary"] == {"version": 2, "share": 0.25}
    assert body["shadow"] == {"version": 2}


def test_registry_refuses_bad_challengers(served: Stack) -> None:
    from mlstack_core.errors import ModelNotFound

    with pytest.raises(ValueError, match="traffic share"):
        _challenger(served, "canary", 1, share=0.0)
    with pytest.raises(ValueError, match="alias must be one of"):
        _challenger(served, "production", 1)
    with pytest.raises(ModelNotFound):
        _challenger(served, "shadow", 5)
    assert served.registry.clear_challenger("penguins", "shadow", actor="t", reason="t") is None


# fuzzing: both body forms, query strings ----------------------------------------------------------
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
_values = _scalars | st.lists(_scalars, max_size=2) | st.dictionaries(st.text(max_size=3), _scalars)
_names = st.sampled_from([*COLUMNS, "species", "", "x"])
_columnar = st.builds(
    lambda columns, rows: {"columns": columns, "data": rows},
    st.one_of(st.lists(_names, max_size=8), st.just(COLUMNS), _values),
    st.one_of(
        st.lists(st.lists(_scalars, min_size=6, max_size=6), min_size=1, max_size=4),
        st.lists(st.lists(_scalars, max_size=8), max_size=4),
        _values,
    ),
)
_bodies = st.one_of(
    _columnar.map(json.dumps),
    st.dictionaries(st.sampled_from(["columns", "data", "instances", "z"]), _values).map(
        json.dumps
    ),
    st.lists(st.fixed_dictionaries({c: _scalars for c in COLUMNS}), max_size=4).map(
        lambda rows: json.dumps({"instances": rows})
    ),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)
_queries = st.none() | st.dictionaries(
    st.sampled_from(["version", "v", ""]), st.text(max_size=12), max_size=2
)


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies, query=_queries)
def test_random_columnar_bodies_and_queries_never_get_a_5xx(
    served: Stack, body: str, query: dict[str, str] | None
) -> None:
    status, answer, response = call(PREDICT, body, query, raw=True)

    assert status < 500, (body, query, answer)
    assert ("error" in answer and "details" in answer) if status >= 400 else "predictions" in answer
    assert "Traceback" not in response["body"]


# OpenAPI, docs, import cost -----------------------------------------------------------------------
def test_openapi_document_is_valid_openapi_3(served: Stack) -> None:
    from openapi_spec_validator import validate

    result = invoke("GET", "/openapi.json")

    assert result.status == 200
    validate(result.body)
    assert result.body["openapi"].startswith("3.")
    body = result.body["paths"]["/models/{model}/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["oneOf"]
    records = result.body["components"]["schemas"]["Records"]
    assert records["properties"]["instances"]["maxItems"] == 10_000  # the configured MAX_ROWS
    routes = {(m.upper(), p) for p, ops in result.body["paths"].items() for m in ops}
    template = (ROOT / "template.yaml").read_text()
    for method, path in routes:  # every documented route is deployed, and vice versa
        assert f"Path: {path}\n            Method: {method.lower()}" in template, path


def test_docs_serve_swagger_ui_without_a_cdn(served: Stack) -> None:
    response = load_app().handler(event("GET", "/docs"), FakeLambdaContext())

    assert response["statusCode"] == 200
    headers = response.get("headers") or {
        k: ", ".join(v) for k, v in response["multiValueHeaders"].items()
    }
    assert headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in response["body"]
    assert "/openapi.json" in response["body"]
    assert "https://" not in response["body"].split("<script>")[0]


def test_predict_path_imports_neither_xray_nor_the_router() -> None:
    """Cold start: the X-Ray SDK (~190 ms) and the event handler (~70 ms) stay off the path of a
    first prediction."""
    script = """
import json, sys
import mlstack_predict.app
print(json.dumps(sorted(m for m in ("aws_xray_sdk", "aws_lambda_powertools.event_handler",
      "pydantic", "sklearn") if m in sys.modules)))
"""
    env = {"PYTHONPATH": f"{ROOT / 'layers' / 'core'}:{ROOT / 'functions' / 'predict'}"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_sha256_is_checked_for_canary_and_shadow_too(served: Stack) -> None:
    from mlstack_predict import predictor

    served.publish("penguins", classifier(), promote=False, sha256=hashlib.sha256(b"x").hexdigest())
    assert predictor.get_predictor().sessions.optional("penguins", 2) is None


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PREDICT, {"instances": [{}]}),
        ("POST", PREDICT, "not json"),
        ("POST", "/models/nope/predict", {"instances": [{}]}),
        ("GET", "/models/penguins", None),
        ("GET", "/models/penguins/versions/1", None),
        ("GET", "/health", None),
        ("GET", "/docs", None),
        ("GET", "/no/such/route", None),
    ],
)
def test_every_answer_says_nosniff_and_no_store(
    served: Stack, method: str, path: str, body: Any
) -> None:
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    response = load_app().handler(event(method, path, text), FakeLambdaContext())
    headers = {
        **(response.get("headers") or {}),
        **{k: v[0] for k, v in (response.get("multiValueHeaders") or {}).items()},
    }
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
