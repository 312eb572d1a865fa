"""POST /models/{model}/explain through the prediction function: API Gateway proxy events in, the
real handler and router, onnxruntime; each row's base plus contributions is its served answer."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.prediction import (
    ModelFixture,
    Stack,
    classifier,
    event,
    invoke,
    load_app,
    mixed_records,
    regressor,
)

pytestmark = pytest.mark.unit


def published(serving: Stack, model: str, fixture: ModelFixture, **options: Any) -> int:
    return serving.publish(model, fixture, background=mixed_records(32, seed=9), **options)


def test_a_regressors_contributions_add_up_to_its_prediction(serving: Stack) -> None:
    published(serving, "mass", regressor())
    rows = mixed_records(6, seed=4)
    answer = invoke("POST", "/models/mass/explain", {"instances": rows})
    assert answer.status == 200, answer.body
    # The router answers with API Gateway's multi-value headers.
    assert answer.raw["multiValueHeaders"]["X-Model-Version"] == ["1"]
    predicted = invoke("POST", "/models/mass/predict", {"instances": rows}).body["predictions"]
    assert answer.body["predictions"] == predicted
    assert answer.body["method"]["background_rows"] == 32
    for row, explanation, prediction in zip(
        rows, answer.body["explanations"], predicted, strict=True
    ):
        # One contribution per column the request sent, by the name it sent.
        assert set(explanation["contributions"]) == set(row)
        total = explanation["base"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(prediction, rel=1e-6, abs=1e-4)


def test_a_classifiers_contributions_add_up_to_each_class_probability(serving: Stack) -> None:
    published(serving, "species", classifier())
    rows = mixed_records(4, seed=5)
    columns = list(rows[0])
    body = {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}
    answer = invoke("POST", "/models/species/explain", body)
    assert answer.status == 200, answer.body
    classes = answer.body["classes"]
    for explanation, probabilities in zip(
        answer.body["explanations"], answer.body["probabilities"], strict=True
    ):
        assert len(explanation["base"]) == len(classes)
        total = np.asarray(explanation["base"]) + np.sum(
            list(explanation["contributions"].values()), axis=0
        )
        np.testing.assert_allclose(total, probabilities, atol=1e-6)
        assert explanation["exact"]  # six columns: 64 coalitions fit the budget


def test_a_pinned_version_is_explained(serving: Stack) -> None:
    published(serving, "mass", regressor())
    published(serving, "mass", regressor(), promote=False, status="Approved")
    request = event("POST", "/models/mass/explain", json.dumps({"instances": mixed_records(1)}))
    request["queryStringParameters"] = {"version": "2"}
    response = load_app().handler(request, FakeLambdaContext())
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["version"] == 2
    request["queryStringParameters"] = {"verison": "2"}
    refused = load_app().handler(request, FakeLambdaContext())
    assert refused["statusCode"] == 400
    assert "unknown query parameters: verison" in json.loads(refused["body"])["error"]


def test_more_rows_than_the_limit_are_refused_by_name(serving: Stack) -> None:
    published(serving, "mass", regressor())
    answer = invoke("POST", "/models/mass/explain", {"instances": mixed_records(11)})
    assert answer.status == 413
    assert "11 rows exceed the limit of 10 per explain request" in answer.body["error"]


def test_a_version_without_background_rows_says_so(serving: Stack) -> None:
    serving.publish("old", regressor())
    answer = invoke("POST", "/models/old/explain", {"instances": mixed_records(1)})
    assert answer.status == 409
    assert "has no background rows" in answer.body["error"]
    # Predictions are unaffected.
    assert invoke("POST", "/models/old/predict", {"instances": mixed_records(1)}).status == 200


def test_a_bad_value_is_a_400_naming_row_and_column(serving: Stack) -> None:
    published(serving, "mass", regressor())
    rows = mixed_records(2)
    column = next(c for c, v in rows[1].items() if isinstance(v, float))
    rows[1][column] = "heavy"
    answer = invoke("POST", "/models/mass/explain", {"instances": rows})
    assert answer.status == 400
    assert any(d.get("row") == 1 and d.get("column") == column for d in answer.body["details"]), (
        answer.body
    )


def test_an_unknown_model_is_a_404(serving: Stack) -> None:
    answer = invoke("POST", "/models/nobody/explain", {"instances": mixed_records(1)})
    assert answer.status == 404


def test_the_openapi_document_describes_the_route(serving: Stack) -> None:
    document = invoke("GET", "/openapi.json").body
    operation = document["paths"]["/models/{model}/explain"]["post"]
    assert operation["operationId"] == "explain"
    assert {"200", "400", "404", "409", "413"} <= set(operation["responses"])
    assert "Explanation" in document["components"]["schemas"]
