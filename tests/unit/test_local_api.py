"""The local API Gateway: routes from the template, and 503 until its stack is deployed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.localcloud.api import LocalApi, Route

pytestmark = pytest.mark.unit


def _api() -> tuple[LocalApi, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def invoke(logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event)
        return {"statusCode": 200, "headers": {}, "body": json.dumps({"status": "ok"})}

    return LocalApi([Route("GET", "/health", "PredictFunction")], invoke), calls


def test_requests_before_the_stack_is_deployed_get_503_starting() -> None:
    api, calls = _api()
    status, headers, body = api.handle("GET", "/health")
    assert status == 503
    assert json.loads(body)["error"] == "starting"
    assert headers["Retry-After"] == "1"
    assert calls == []  # no function is invoked before its stack exists

    api.ready.set()
    status, _, body = api.handle("GET", "/health")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert len(calls) == 1
