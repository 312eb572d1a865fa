"""The prediction API over HTTP in the local cloud, checked against its own OpenAPI document.

schemathesis generates requests for every operation of ``GET /openapi.json`` (positive and
negative cases, plus the document's examples) and sends them to the local API; a 5xx, a status code
or content type the document does not list, or a body that breaks the documented schema fails
the test.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections import Counter
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.storage_keys import version_model_key

pytestmark = pytest.mark.integration
MODEL = "penguins"  # the name the OpenAPI examples use


@pytest.fixture(scope="module")
def api(cloud: LocalCloud, stack: StackClient) -> str:
    """The local API with a classifier registered as the documented example model."""
    from tests.helpers.prediction import classifier

    fixture = classifier()
    s3 = cloud.client("s3")
    bucket = cloud.outputs["ModelBucketName"]
    registry = stack.registry
    if registry.get_alias(MODEL) is None:
        version = registry.allocate_version(MODEL)
        key = version_model_key(MODEL, version)
        put = s3.put_object(Bucket=bucket, Key=key, Body=fixture.onnx)
        registry.put_version(
            MODEL,
            version,
            "Approved",
            {
                "task": "classification",
                "metric": "accuracy",
                "metrics": {"accuracy": 0.9},
                "schema": fixture.schema,
                "artifact": {
                    "bucket": bucket,
                    "key": key,
                    "version_id": put.get("VersionId"),
                    "sha256": hashlib.sha256(fixture.onnx).hexdigest(),
                    "bytes": len(fixture.onnx),
                },
            },
        )
        registry.move_alias(MODEL, version, expected=None, actor="test", reason="api test")
    return cloud.outputs["ApiUrl"].rstrip("/")


def _get(url: str) -> tuple[int, Any, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
            return response.status, text, response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers.get("Content-Type", "")


def test_openapi_document_is_served_and_valid(api: str) -> None:
    from openapi_spec_validator import validate

    status, text, content_type = _get(f"{api}/openapi.json")

    assert status == 200
    assert content_type.startswith("application/json")
    validate(json.loads(text))


def test_swagger_ui_is_served_locally(api: str) -> None:
    status, text, content_type = _get(f"{api}/docs")

    assert status == 200
    assert content_type.startswith("text/html")
    assert "SwaggerUIBundle" in text


def test_columnar_predictions_over_http(api: str) -> None:
    from tests.helpers.prediction import CATEGORICAL, NUMERIC, mixed_records

    columns = NUMERIC + CATEGORICAL
    body = {"columns": columns, "data": [[r[c] for c in columns] for r in mixed_records(5)]}
    request = urllib.request.Request(
        f"{api}/models/{MODEL}/predict?version=1",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
        assert response.headers["X-Request-Id"] == answer["request_id"]
    assert (answer["variant"], answer["version"], len(answer["predictions"])) == ("pinned", 1, 5)


def test_canary_and_shadow_are_switched_from_the_cli(
    api: str, cloud: LocalCloud, stack: StackClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack.cli.main import main
    from mlstack_core.errors import EXIT_REFUSED, EXIT_USAGE

    registry = stack.registry
    document = registry.get_version(MODEL, 1)
    for _ in range(2):  # versions 2 and 3: the same artifact, registered again
        version = registry.allocate_version(MODEL)
        registry.put_version(MODEL, version, "Approved", {**document, "version": version})
    name = ["--stack", cloud.stack_name]

    assert main([*name, "canary", MODEL, "2", "--share", "0.25", "--reason", "try v2"]) == 0
    assert main([*name, "shadow", MODEL, "3"]) == 0
    capsys.readouterr()
    assert main([*name, "models", MODEL]) == 0
    listed = capsys.readouterr().out
    assert "canary 25% = version 2" in listed
    assert "shadow = version 3" in listed
    assert main([*name, "canary", MODEL, "1", "--share", "0.5"]) == EXIT_REFUSED  # production
    assert main([*name, "canary", MODEL, "2", "--share", "1.5"]) == EXIT_USAGE
    capsys.readouterr()
    # no such version: a sentence, no traceback
    assert main([*name, "promote", MODEL, "99"]) == EXIT_REFUSED
    refused = capsys.readouterr().err
    assert "has no version 99" in refused
    assert "Traceback" not in refused
    described = json.loads(_get(f"{api}/models/{MODEL}")[1])
    assert described["canary"] == {"version": 2, "share": 0.25}
    assert described["shadow"] == {"version": 3}
    assert json.loads(_get(f"{api}/models/{MODEL}/versions/2")[1])["aliases"] == ["canary"]

    assert main([*name, "canary", MODEL, "--off"]) == 0
    assert main([*name, "shadow", MODEL, "--off"]) == 0
    assert main([*name, "shadow", MODEL, "--off"]) == EXIT_REFUSED  # nothing to turn off
    assert "has no shadow" in capsys.readouterr().err
    described = json.loads(_get(f"{api}/models/{MODEL}")[1])
    assert (described["canary"], described["shadow"]) == (None, None)
    moves = [h for h in registry.history(MODEL) if h.get("kind") == "challenger"]
    assert [(m["alias"], m["version"]) for m in moves] == [
        ("canary", 2),
        ("shadow", 3),
        ("canary", None),
        ("shadow", None),
    ]
    assert moves[0]["reason"] == "try v2"
    capsys.readouterr()
    assert main([*name, "history", MODEL]) == 0
    history = capsys.readouterr().out
    assert "canary -> 2 (25%)" in history
    assert "try v2" in history
    assert "shadow off" in history


def test_schemathesis_finds_no_server_errors_or_schema_violations(api: str) -> None:
    import schemathesis
    from schemathesis.checks import CHECKS
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    schema.config.base_url = api
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    checks = [
        CHECKS.get_one(name)
        for name in (
            "not_a_server_error",
            "status_code_conformance",
            "content_type_conformance",
            "response_schema_conformance",
        )
    ]
    operations: list[Any] = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /models/{model}/predict",
        "GET /models/{model}/versions/{version}",
        "GET /health",
    }
    seen: dict[str, Counter[int]] = {op.label: Counter() for op in operations}
    for operation in operations:

        @settings(
            max_examples=100,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy() | st.sampled_from(_examples(operation)))
        def run(case: Any) -> None:
            response = case.call()
            seen[case.operation.label][response.status_code] += 1
            case.validate_response(response, checks=checks)

        run()
    predict = seen["POST /models/{model}/predict"]
    # the generated requests reached the model (200), the validation (400) and the lookup (404)
    assert {200, 400, 404} <= set(predict), predict
    assert sum(sum(c.values()) for c in seen.values()) >= 300, seen


def _examples(operation: Any) -> list[Any]:
    """Valid requests for the registered model, so 200 responses are checked against the schema
    too (generated bodies almost never match a model's columns)."""
    from tests.helpers.prediction import CATEGORICAL, NUMERIC, mixed_records

    if operation.label == "POST /models/{model}/predict":
        columns = NUMERIC + CATEGORICAL
        rows = mixed_records(3, seed=1)
        bodies = [
            {"instances": rows},
            {"columns": columns, "data": [[r[c] for c in columns] for r in rows]},
        ]
        return [
            operation.Case(
                path_parameters={"model": MODEL},
                query=query,
                body=body,
                media_type="application/json",
            )
            for body in bodies
            for query in (None, {"version": "1"})
        ]
    if "{version}" in operation.label:
        return [operation.Case(path_parameters={"model": MODEL, "version": "1"})]
    if "{model}" in operation.label:
        return [operation.Case(path_parameters={"model": MODEL})]
    return [operation.Case()]
