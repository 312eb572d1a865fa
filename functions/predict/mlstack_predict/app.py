"""API Gateway (REST) → predictions and model metadata. HTTP mapping only; logic: predictor.py.

``POST /models/{model}/predict`` is the hot path: the handler recognises its API Gateway resource
and answers it directly, without the router, so a single-row request costs little more than the
model itself (docs/performance.md). Every other route goes through the Powertools
``APIGatewayRestResolver``, imported on the first such request so it is not in the predict path's
cold start either. Both paths answer a named error the same way (``error_answer``: the status its
class carries), in the format ``{"error", "details"}``, and never return a stack trace.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any
from urllib.parse import unquote

from mlstack_core.contract import encode_json
from mlstack_core.errors import HttpError, MlstackError, RequestError
from mlstack_core.http import SECURITY_HEADERS, secured
from mlstack_core.observability.requests import logger, metrics, start_invocation
from mlstack_core.settings import FunctionSettings, serving_settings, stack_settings
from mlstack_predict.predictor import get_predictor

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings("predict", reads=(stack_settings, serving_settings))


PREDICT_RESOURCE = "/models/{model}/predict"
PREDICT_QUERY = frozenset({"version"})
JSON_HEADERS = {"Content-Type": "application/json", **SECURITY_HEADERS}


def _request_id(event: dict[str, Any], context: Any) -> str | None:
    request_id = (event.get("requestContext") or {}).get("requestId")
    return request_id or getattr(context, "aws_request_id", None)


def _response(
    status: int,
    body: dict[str, Any],
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_headers = {**JSON_HEADERS, **headers} if headers else dict(JSON_HEADERS)
    if request_id:
        all_headers["X-Request-Id"] = request_id
    return {
        "statusCode": status,
        "headers": all_headers,
        "body": encode_json(body),
        "isBase64Encoded": False,
    }


def error_body(message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": message, "details": details or []}


def error_answer(error: MlstackError) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """The status, body and extra headers that answer a request ``error`` ended, or None when the
    error is not a request's answer (the caller then answers a generic 500)."""
    status = error.http_status
    if status is None:
        return None
    headers: dict[str, str] = {}
    if isinstance(error, HttpError):
        body = error_body(error.message, error.details)
    else:
        body = error_body(str(error))
    if isinstance(error, RequestError):
        logger.info("Request refused", extra={"status": status, "error": error.message})
    if status == 503:
        # A version that failed to load is retried after alias_ttl_seconds: say when to return.
        headers["Retry-After"] = str(max(1, math.ceil(serving_settings().alias_ttl_seconds)))
    return status, body, headers


def _unexpected(request_id: str | None) -> dict[str, Any]:
    # The stack goes to the log only; the caller gets a generic message and the request id.
    logger.exception("Unhandled error")
    return error_body(
        "internal error; quote the request id to the operators", [{"request_id": request_id}]
    )


def checked_query(query: dict[str, str] | None) -> dict[str, str]:
    """The query of predict and explain, which take ``version`` only."""
    unknown = sorted(query.keys() - PREDICT_QUERY) if query else None
    if unknown:
        raise RequestError(
            f"unknown query parameters: {', '.join(unknown)[:200]}",
            [{"field": name[:64], "message": "not a parameter of this route"} for name in unknown][
                :20
            ],
        )
    return query or {}


def predict_response(event: dict[str, Any], request_id: str | None) -> dict[str, Any]:
    """POST /models/{model}/predict, as an API Gateway proxy response."""
    try:
        model = (event.get("pathParameters") or {}).get("model") or ""
        if "%" in model:
            model = unquote(model)
        query = checked_query(event.get("queryStringParameters"))
        body = get_predictor().predict(
            model,
            event.get("body"),
            bool(event.get("isBase64Encoded")),
            version=query.get("version"),
            request_id=request_id,
        )
        return _response(
            200,
            body,
            request_id,
            {"X-Model-Version": str(body["version"]), "X-Model-Variant": body["variant"]},
        )
    except MlstackError as error:
        answer = error_answer(error)
        if answer is None:
            return _response(500, _unexpected(request_id), request_id)
        status, body, headers = answer
        return _response(status, body, request_id, headers)
    except Exception:
        return _response(500, _unexpected(request_id), request_id)


@cache
def router() -> Any:
    """The Powertools resolver for every route but predict (imported on first use)."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError

    from mlstack_predict.openapi import document, swagger_html

    app = APIGatewayRestResolver()

    def reply(status: int, body: dict[str, Any]) -> Response[Any]:
        return Response(status_code=status, content_type="application/json", body=body)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/models")
    def list_models() -> dict[str, Any]:
        return get_predictor().list_models()

    @app.get("/models/<model>")
    def describe_model(model: str) -> dict[str, Any]:
        return get_predictor().describe(unquote(model))

    @app.get("/models/<model>/versions/<version>")
    def describe_version(model: str, version: str) -> dict[str, Any]:
        return get_predictor().version_document(unquote(model), unquote(version))

    @app.post("/models/<model>/predict")
    def predict(model: str) -> Response[Any]:
        # Reached only when the event lacks the REST resource (the handler answers it directly).
        response = predict_response(
            app.current_event.raw_event,
            _request_id(app.current_event.raw_event, app.lambda_context),
        )
        return Response(
            status_code=response["statusCode"],
            content_type="application/json",
            body=response["body"],
            headers=response["headers"],
        )

    @app.post("/models/<model>/explain")
    def explain(model: str) -> Response[Any]:
        event = app.current_event
        query = checked_query(event.query_string_parameters)
        request_id = _request_id(event.raw_event, app.lambda_context)
        body = get_predictor().explain(
            unquote(model),
            event.body,
            bool(event.is_base64_encoded),
            version=query.get("version"),
            request_id=request_id,
        )
        return Response(
            status_code=200,
            content_type="application/json",
            body=encode_json(body),
            headers={"X-Model-Version": str(body["version"])},
        )

    @app.get("/openapi.json")
    def openapi() -> dict[str, Any]:
        return document(serving_settings())

    @app.get("/docs")
    def docs() -> Response[str]:
        stage = (app.current_event.get("requestContext") or {}).get("stage")
        # On AWS the stage is part of the URL; the local API serves without a stage prefix.
        prefix = f"/{stage}" if stage and stage != "local" else ""
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=swagger_html(f"{prefix}/openapi.json"),
        )

    @app.not_found
    def route_not_found(_: NotFoundError) -> Response[Any]:
        event = app.current_event
        return reply(404, error_body(f"no route for {event.http_method} {event.path}"))

    @app.exception_handler(Exception)
    def unexpected(_: Exception) -> Response[Any]:
        return reply(500, _unexpected(_request_id(app.current_event.raw_event, app.lambda_context)))

    @app.exception_handler(MlstackError)
    def named_error(error: MlstackError) -> Response[Any]:
        answer = error_answer(error)
        if answer is None:
            return unexpected(error)
        status, body, headers = answer
        return Response(
            status_code=status, content_type="application/json", body=body, headers=headers
        )

    return app


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    SETTINGS.check()
    request_id = _request_id(event, context)
    start_invocation(context, request_id)
    try:
        if event.get("resource") == PREDICT_RESOURCE and event.get("httpMethod") == "POST":
            return predict_response(event, request_id)
        response: dict[str, Any] = router().resolve(event, context)
        return secured(response)
    finally:
        metrics.flush()
