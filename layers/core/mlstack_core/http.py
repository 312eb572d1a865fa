"""Headers every API response carries, whichever function answers.

``nosniff``: a browser must not run a JSON error body as HTML or script. ``no-store``: answers
are per request (predictions, registry state that moves) and must not be kept by caches on the
way. Standard library only: the prediction path imports it.
"""

from __future__ import annotations

from typing import Any, Final

SECURITY_HEADERS: Final = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def secured(response: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway proxy response with the security headers added (its own win)."""
    if "multiValueHeaders" in response and response["multiValueHeaders"] is not None:
        multi = response["multiValueHeaders"]
        for name, value in SECURITY_HEADERS.items():
            multi.setdefault(name, [value])
    else:
        response["headers"] = {**SECURITY_HEADERS, **(response.get("headers") or {})}
    return response
