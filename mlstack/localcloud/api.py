"""API Gateway in front of the stack's functions, locally.

HTTP requests become API Gateway REST proxy events for the routes the template declares (the Api
events of each function), like ``sam local start-api``: same paths, no stage prefix.

A route the template authorises with ``AWS_IAM`` (approve, reject) needs a SigV4 ``Authorization``
header, as on AWS: without one the answer is API Gateway's 403. The signature is not verified;
its access key is looked up in the local cloud's IAM (moto's STS), and the caller's ARN goes into
``requestContext.identity.userArn``, where the function reads who is asking.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# What Lambda accepts in a synchronous invocation; API Gateway's own 10 MB limit is above it.
MAX_REQUEST_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # e.g. /models/{model}/predict
    function_logical_id: str
    iam: bool = False  # the event's Auth.Authorizer is AWS_IAM

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = []
        for segment in self.resource.strip("/").split("/"):
            parameter = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
            if parameter is None:
                parts.append(re.escape(segment))
            else:  # {name+} is a greedy proxy parameter
                name, greedy = parameter.groups()
                parts.append(f"(?P<{name}>{'.+' if greedy else '[^/]+'})")
        return re.compile("^/" + "/".join(parts) + "/?$")


def routes_from_template(template: dict[str, Any]) -> list[Route]:
    routes = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "Api":
                properties = event["Properties"]
                iam = (properties.get("Auth") or {}).get("Authorizer") == "AWS_IAM"
                routes.append(
                    Route(properties["Method"].upper(), properties["Path"], logical_id, iam)
                )
    return routes


def proxy_event(
    method: str,
    path: str,
    resource: str,
    path_parameters: dict[str, str] | None,
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: bytes,
    stage: str = "local",
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as Lambda receives it."""
    try:
        text: str | None = body.decode("utf-8") if body else None
        is_base64 = False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
                **(identity or {}),
            },
            "accountId": "123456789012",
            "apiId": "local",
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


Invoke = Callable[[str, dict[str, Any]], Any]
Identify = Callable[[str], str | None]  # access key id -> the caller's ARN
CREDENTIAL = re.compile(r"Credential=([A-Za-z0-9]+)/")


def caller_identity(headers: dict[str, str], identify: Identify | None) -> dict[str, Any] | None:
    """The ``requestContext.identity`` fields of an IAM-authorised request, or None unsigned."""
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    match = CREDENTIAL.search(authorization)
    if match is None or identify is None:
        return None
    arn = identify(match.group(1))
    if arn is None:
        return None
    return {"accessKey": match.group(1), "userArn": arn, "caller": arn.rsplit("/", 1)[-1]}


class LocalApi:
    """Routes requests to functions; ``invoke(logical_id, event)`` runs the function."""

    def __init__(
        self, routes: list[Route], invoke: Invoke, identify: Identify | None = None
    ) -> None:
        self.routes = routes
        self._invoke = invoke
        self._identify = identify
        # Set once the stack the routes invoke is deployed; until then every request gets 503.
        self.ready = threading.Event()

    def handle(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if not self.ready.is_set():
            return (
                HTTPStatus.SERVICE_UNAVAILABLE.value,
                {"Content-Type": "application/json", "Retry-After": "1"},
                json.dumps(
                    {
                        "error": "starting",
                        "details": [{"message": "the local stack is being deployed; retry soon"}],
                    }
                ).encode(),
            )
        parts = urlsplit(url)
        path = parts.path or "/"
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.method == method:
                identity = caller_identity(headers or {}, self._identify)
                if route.iam and identity is None:
                    return _json_error(HTTPStatus.FORBIDDEN, "Missing Authentication Token")
                event = proxy_event(
                    method,
                    path,
                    route.resource,
                    match.groupdict(),
                    parse_qs(parts.query),
                    headers or {},
                    body,
                    identity=identity,
                )
                response = self._invoke(route.function_logical_id, event)
                return _http_response(response)
        if any(route.pattern.match(path) for route in self.routes):
            return _json_error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
        # API Gateway's answer for a path no route matches
        return _json_error(HTTPStatus.FORBIDDEN, "Missing Authentication Token")

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        api = self

        class RequestHandler(BaseHTTPRequestHandler):
            def _respond(self) -> None:
                refusal = _body_refusal(self.headers.get("Content-Length"), self.headers)
                if refusal is not None:
                    self.close_connection = True  # the body, if any, is left unread
                    status, headers, payload = refusal
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                    status, headers, payload = api.handle(
                        self.command, self.path, dict(self.headers.items()), body
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _respond  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return  # the functions log every request already

        server = ThreadingHTTPServer((host, port), RequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True, name="local-api").start()
        return server


def _body_refusal(declared: str | None, headers: Any) -> tuple[int, dict[str, str], bytes] | None:
    if declared is None:
        if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            return _json_error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        return None
    if not declared.isdigit():
        return _json_error(HTTPStatus.BAD_REQUEST, f"Content-Length {declared!r} is not a number")
    if int(declared) > MAX_REQUEST_BYTES:
        return _json_error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the request body is {int(declared)} bytes; the API accepts at most "
            f"{MAX_REQUEST_BYTES} (Lambda's limit for a synchronous invocation)",
        )
    return None


def _http_response(response: Any) -> tuple[int, dict[str, str], bytes]:
    if not isinstance(response, dict) or "statusCode" not in response:
        # What API Gateway answers when the integration returns something malformed or fails.
        return _json_error(HTTPStatus.BAD_GATEWAY, "Internal server error")
    headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    body = response.get("body") or ""
    payload = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    return int(response["statusCode"]), headers, payload


def _json_error(status: HTTPStatus, message: str) -> tuple[int, dict[str, str], bytes]:
    return (
        status.value,
        {"Content-Type": "application/json"},
        json.dumps({"message": message}).encode(),
    )
