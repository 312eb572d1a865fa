"""Ground truth's rules, shared by the prediction function (which captures), the Monitor (which
joins labels to captures) and the CLI (which uploads labels): what a feedback file needs and what
a version's spec asks (where captures, feedback and quality reports live: ``storage_keys``). No
model runtime here: the Monitor imports it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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


# A feedback file's label column, when it is not named after the target.
LABEL_COLUMN = "label"


def feedback_problem(header: Sequence[str], target: str | None, key: str | None) -> str | None:
    """Why the Monitor could not join a feedback file with this header, or None."""
    labels = [c for c in (target, LABEL_COLUMN) if c]
    if not any(c in header for c in labels):
        return f"the file needs a label column ({' or '.join(map(repr, labels))})"
    if not ({"request_id", "row"} <= set(header) or (key and key in header)):
        joins = "'request_id' and 'row' (as the API answered)" + (f", or {key!r}" if key else "")
        return f"the file needs {joins} to say which prediction each label is for"
    return None
