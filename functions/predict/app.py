"""API Gateway (REST) → predictions and model metadata. HTTP mapping only; logic: predictor.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from predictor import ModelUnavailableError, RequestError, get_predictor

from mlstack_core.errors import ModelNotFound
from mlstack_core.observability import logger, metrics, tracer

app = APIGatewayRestResolver()


def _error(status: int, message: str, details: list[Any] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": message, "details": details or []},
    )


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/models")
def list_models() -> dict[str, Any]:
    return get_predictor().list_models()


@app.get("/models/<model>")
def describe_model(model: str) -> dict[str, Any]:
    return get_predictor().describe(unquote(model))


@app.post("/models/<model>/predict")
def predict(model: str) -> dict[str, Any]:
    event = app.current_event
    return get_predictor().predict(unquote(model), event.body, bool(event.is_base64_encoded))


@app.exception_handler(RequestError)
def request_error(error: RequestError) -> Response[Any]:
    logger.info("Request refused", extra={"status": error.status, "error": error.message})
    return _error(error.status, error.message, error.details)


@app.exception_handler(ModelNotFound)
def model_not_found(error: ModelNotFound) -> Response[Any]:
    return _error(404, str(error))


@app.exception_handler(ModelUnavailableError)
def model_unavailable(error: ModelUnavailableError) -> Response[Any]:
    return _error(error.status, error.message, error.details)


@app.not_found
def route_not_found(_: NotFoundError) -> Response[Any]:
    event = app.current_event
    return _error(404, f"no route for {event.http_method} {event.path}")


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response[Any]:
    # The stack goes to the log only; the caller gets a generic message and the request id.
    logger.exception("Unhandled error")
    request_id = (app.current_event.get("requestContext") or {}).get("requestId")
    return _error(
        500, "internal error; quote the request id to the operators", [{"request_id": request_id}]
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
