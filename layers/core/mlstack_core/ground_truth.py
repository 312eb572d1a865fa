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


def join_key(quality: Mapping[str, Any]) -> str | None:
    """The column labels are joined by besides ``request_id`` and ``row``: the spec's
    ``quality.key``, only when ``quality.key_trusted`` says so. Its values are whatever the caller
    sent, so trusting it lets anyone who can call the API attach their rows to the labels (and,
    with ``quality.action`` ``retrain``, to the next training set); the request id is the API's
    own, so without that trust only what the API answered can be labelled."""
    key = quality.get("key")
    return str(key) if key and quality.get("key_trusted") else None


# A feedback file's label column, when it is not named after the target.
LABEL_COLUMN = "label"


def feedback_problem(
    header: Sequence[str], target: str | None, key: str | None, untrusted_key: str | None = None
) -> str | None:
    """Why the Monitor could not join a feedback file with this header, or None. ``key`` is the
    join key (``join_key``); ``untrusted_key`` a ``quality.key`` the spec does not trust, named
    in the answer when the file relies on it."""
    labels = [c for c in (target, LABEL_COLUMN) if c]
    if not any(c in header for c in labels):
        return f"the file needs a label column ({' or '.join(map(repr, labels))})"
    if not ({"request_id", "row"} <= set(header) or (key and key in header)):
        joins = "'request_id' and 'row' (as the API answered)" + (f", or {key!r}" if key else "")
        untrusted = (
            f" ({untrusted_key!r}, the spec's quality.key, joins only with quality.key_trusted: "
            "its values are whatever callers sent)"
            if untrusted_key and untrusted_key in header
            else ""
        )
        return f"the file needs {joins} to say which prediction each label is for{untrusted}"
    return None
