"""moto's server for ``mlstack local up``, closed to what a laptop should not answer.

moto's own server answers any origin with permissive CORS and accepts any body, so a web page
open in the same browser could drive the local cloud. Here the server answers only AWS SDKs and
CLIs: moto's global CORS is off, any request a browser marks with ``Origin`` (every cross-site
request, simple or not) is refused, and bodies are capped at the largest upload the stack accepts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def refuse_browsers_and_large_bodies(app: WsgiApp, max_body_bytes: int) -> WsgiApp:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = _refusal(environ, max_body_bytes)
        if refusal is None:
            return app(environ, start_response)
        status, message = refusal
        body = json.dumps({"message": message}).encode()
        start_response(
            f"{status.value} {status.phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        return [body]

    return guarded


def _refusal(environ: dict[str, Any], max_body_bytes: int) -> tuple[HTTPStatus, str] | None:
    if environ.get("HTTP_ORIGIN") is not None or environ.get("REQUEST_METHOD") == "OPTIONS":
        return (
            HTTPStatus.FORBIDDEN,
            "the local cloud answers AWS SDKs and CLIs, not web pages (the request has an Origin)",
        )
    declared = environ.get("CONTENT_LENGTH") or ""
    if not declared:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return HTTPStatus.LENGTH_REQUIRED, "the local cloud needs a Content-Length"
        return None
    if not declared.isdigit():
        return HTTPStatus.BAD_REQUEST, f"Content-Length {declared!r} is not a byte count"
    if int(declared) > max_body_bytes:
        return (
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the request body is {int(declared)} bytes; the local cloud accepts at most "
            f"{max_body_bytes} (the stack's MaxUploadMiB, plus room for the request itself)",
        )
    return None


class LocalMotoServer:
    """moto's WSGI application on werkzeug, as ``moto.server.ThreadedMotoServer`` runs it, with
    the guards above in front."""

    def __init__(self, host: str, port: int, max_body_bytes: int) -> None:
        from moto.moto_server import werkzeug_app
        from werkzeug.serving import make_server

        # Read when each service's Flask app is created: off before the first request.
        werkzeug_app.DISABLE_GLOBAL_CORS = True
        app = werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app)
        self._server = make_server(
            host,
            port,
            refuse_browsers_and_large_bodies(app, max_body_bytes),
            threaded=True,
            request_handler=werkzeug_app.MotoRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="local-moto"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
