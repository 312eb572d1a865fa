"""Ground truth's names and settings, shared by the prediction function (which captures) and the
Monitor (which joins labels to captures): where captures live and what a version's spec asks.
No model runtime here: the Monitor imports it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlstack_core.drift import dated_key, dated_prefix

# Captures have a prefix of their own, so one lifecycle rule expires them (CaptureRetentionDays).
CAPTURES = "captures"


def captures_prefix(model: str, version: int, day: str | None = None) -> str:
    """``captures/<model>/<version>/[<YYYY-MM-DD>/]`` in the model bucket."""
    return dated_prefix(f"{CAPTURES}/{model}/{version}/", day)


def capture_key(model: str, version: int, at: float, writer: str, sequence: int) -> str:
    return dated_key(captures_prefix(model, version), at, writer, sequence, ".jsonl")


def quality_settings(document: Mapping[str, Any]) -> dict[str, Any]:
    """The version's spec ``quality`` block, with the schema's defaults."""
    from mlstack_core.spec import spec_schema

    defaults = dict(spec_schema()["properties"]["quality"]["default"])
    configured = (document.get("spec") or {}).get("quality") or {}
    return {**defaults, **configured}


def capture_enabled(document: Mapping[str, Any]) -> bool:
    return bool(((document.get("spec") or {}).get("quality") or {}).get("capture"))


def key_column(document: Mapping[str, Any]) -> str | None:
    key = ((document.get("spec") or {}).get("quality") or {}).get("key")
    return str(key) if key else None
