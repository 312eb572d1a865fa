"""Whether one version can answer the requests another accepts: what makes a canary or a shadow
safe to put beside production. Pure Python over the feature schemas of two version documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _names(columns: list[str]) -> str:
    return ", ".join(repr(c) for c in sorted(columns)[:10]) + (" ..." if len(columns) > 10 else "")


def request_incompatibilities(
    production: Mapping[str, Any], challenger: Mapping[str, Any]
) -> list[str]:
    """Why requests that ``production`` accepts would be refused or answered in another shape by
    ``challenger`` (both are version documents); empty when every such request is served."""
    p_schema, c_schema = production.get("schema") or {}, challenger.get("schema") or {}
    p_task = p_schema.get("task") or production.get("task")
    c_task = c_schema.get("task") or challenger.get("task")
    if p_task != c_task:
        return [f"it is a {c_task} model and production a {p_task} one: answers change shape"]
    p_numeric, p_categorical = (
        set(p_schema.get("numeric", [])),
        set(p_schema.get("categorical", [])),
    )
    c_numeric, c_categorical = (
        set(c_schema.get("numeric", [])),
        set(c_schema.get("categorical", [])),
    )
    p_required = p_numeric | p_categorical
    c_required = c_numeric | c_categorical
    c_known = c_required | {str(f["name"]) for f in c_schema.get("features", [])}
    problems = []
    missing = sorted(c_required - p_required)
    if missing:
        problems.append(
            f"it requires column(s) {_names(missing)} that production's requests need not carry"
        )
    unknown = sorted(p_required - c_known)
    if unknown:
        problems.append(
            f"it does not know column(s) {_names(unknown)} that production's requests carry, and "
            "would refuse them"
        )
    retyped = sorted(p_categorical & c_numeric)
    if retyped:
        problems.append(
            f"column(s) {_names(retyped)} are categorical for production but numeric for it: "
            "text values would be refused"
        )
    return problems
