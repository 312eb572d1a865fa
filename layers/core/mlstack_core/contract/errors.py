"""What the serving contract raises: each error carries its HTTP status, a message and details."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

# Error details are capped so a 10,000-row request full of mistakes still gets a small response.
MAX_DETAILS: Final = 20


class HttpError(Exception):
    """An answer other than 200: its HTTP status, a message and per-field details."""

    status: int = 500

    def __init__(self, message: str, details: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class RequestError(HttpError):
    """The caller's request is unusable (400)."""

    status = 400


class PayloadTooLargeError(RequestError):
    status = 413


class ModelUnavailableError(HttpError):
    """Production points at a version that cannot be loaded, and no earlier version is loaded."""

    status = 503


class ModelLoadError(Exception):
    """One version's artifact could not be turned into a session (checksum, S3, ONNX, schema).

    The message is for the log (it may name keys, hashes and AWS errors); ``public`` is what a
    client is told in the 503."""

    def __init__(self, message: str, public: str = "the model could not be loaded") -> None:
        super().__init__(message)
        self.public = public


def shown(name: str) -> str:
    """A caller-supplied name, short enough to echo back in an error."""
    return name if len(name) <= 64 else f"{name[:61]}..."


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as error messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
