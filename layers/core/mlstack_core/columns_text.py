"""How a version's columns read, for the model card and the CLI: each column's kind, the reason
Preprocess recorded for it (``mlstack_core.kinds.inference``) and what it became as model input.
No numpy: the CLI's base install (boto3 only) imports it, as it does ``evidence_text``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ColumnReading:
    """How Preprocess read one column: its kind, the reason in words and, for the kinds that
    need them, what it became (a datetime's parts and training range, a text's TF-IDF bounds)."""

    name: str
    kind: str
    reason: str
    details: tuple[str, ...]
    feature: bool

    @property
    def because(self) -> str:
        """The reason as a line shows it: an identifier's says it is not a feature."""
        return self.reason if self.feature else f"not a feature: {self.reason or 'identifier'}"


def column_entries(schema: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], bool]]:
    """(schema entry, is a feature): the features in file order, then the identifiers."""
    entries = [
        *((entry, True) for entry in schema.get("features") or []),
        *((entry, False) for entry in schema.get("identifiers") or []),
    ]
    return [(entry, feature) for entry, feature in entries if isinstance(entry, Mapping)]


def column_readings(schema: Mapping[str, Any]) -> list[ColumnReading]:
    """Every column the profile read: the features in file order, then the identifiers. A
    version registered before kinds had reasons reads with an empty reason."""
    return [column_reading(entry, feature) for entry, feature in column_entries(schema)]


def column_reading(entry: Mapping[str, Any], feature: bool) -> ColumnReading:
    return ColumnReading(
        name=str(entry.get("name")),
        kind=str(entry.get("kind") or ("feature" if feature else "identifier")),
        reason=str(entry.get("reason") or ""),
        details=_details(entry) if feature else (),
        feature=feature,
    )


def kind_counts(readings: list[ColumnReading]) -> list[str]:
    """``["2 numeric", "1 datetime", "1 identifier"]``: features by kind in the kinds' order
    (an unknown kind after them), then the identifiers."""
    counts = Counter(r.kind for r in readings if r.feature)
    order = sorted(counts, key=lambda kind: (_KIND_ORDER.get(kind, len(_KIND_ORDER)), kind))
    counted = [f"{counts[kind]} {kind}" for kind in order]
    identifiers = sum(not r.feature for r in readings)
    if identifiers:
        counted.append(f"{identifiers} identifier{'s' if identifiers > 1 else ''}")
    return counted


_KIND_ORDER = {kind: i for i, kind in enumerate(("numeric", "categorical", "datetime", "text"))}


def _details(entry: Mapping[str, Any]) -> tuple[str, ...]:
    kind = entry.get("kind")
    if kind == "datetime":
        form = entry.get("format")
        read = () if f"{form} dates" in str(entry.get("reason")) else (f"read as {form} dates",)
        parts = f"parts {', '.join(map(str, entry.get('parts') or []))}"
        span = date_range(entry)
        return (*read, parts, *((f"trained on {span}",) if span else ()))
    if kind == "text":
        terms, ngrams = entry.get("max_terms"), entry.get("ngrams")
        phrases = "single words" if ngrams == 1 else f"phrases of 1 to {ngrams} words"
        return (f"TF-IDF of its words: at most {thousands(terms)} terms, {phrases}",)
    return ()


def thousands(value: Any) -> str:
    """A whole number with its thousands separated (1,000); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) else str(value)


def date_range(entry: Mapping[str, Any]) -> str:
    """A datetime's training range, ``first to last``; days only when none of its values had a
    time of day."""
    first, last = entry.get("first"), entry.get("last")
    if not first or not last:
        return ""
    if "hour" not in (entry.get("parts") or []):
        first, last = str(first)[:10], str(last)[:10]
    return f"{first} to {last}"
