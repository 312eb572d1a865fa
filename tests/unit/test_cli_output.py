"""What the CLI prints for people: ``mlstack models`` shows each version's reason whole (wrapped
between words, or on one line with ``--wide``)."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.cli.main import build_parser
from mlstack.cli.views import REASON_WIDTH, format_models

pytestmark = pytest.mark.unit

REASON = (
    "rejected by the gate: accuracy 0.7412 is not better than production's 0.7530 beyond "
    "noise (95% interval of the gain -0.0410 to 0.0172 includes 0); more rows would tell"
)


class Registry:
    def __init__(self, versions: list[dict[str, Any]]) -> None:
        self.versions = versions

    def list_versions(self, model: str) -> list[dict[str, Any]]:
        return self.versions

    def get_alias(self, model: str) -> int | None:
        return None

    def aliases(self, model: str) -> dict[str, Any]:
        return {}


class Client:
    def __init__(self, versions: list[dict[str, Any]]) -> None:
        self.registry = Registry(versions)


def _versions() -> list[dict[str, Any]]:
    return [
        {"version": 1, "status": "Rejected", "family": "logistic", "status_reason": REASON},
        {"version": 2, "status": "Rejected", "family": "forest", "status_reason": "too short"},
    ]


def _reason_lines(printed: str) -> list[str]:
    """The REASON column's text, line by line, read from where its header starts."""
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("VERSION"))
    start = lines[header].index("REASON")
    return [line[start:] for line in lines[header + 1 :] if len(line) > start]


def test_models_wraps_a_long_reason_between_words_and_shows_all_of_it() -> None:
    printed = format_models(Client(_versions()), "churn")  # type: ignore[arg-type]
    parts = _reason_lines(printed)
    assert " ".join(parts) == f"{REASON} too short"
    assert all(len(part) <= REASON_WIDTH for part in parts)
    assert len(parts) > 2  # the long reason took more than one line
    words = set(REASON.split())
    assert all(set(part.split()) <= words | {"too", "short"} for part in parts)  # no cut words


def test_models_wide_shows_each_reason_on_one_line() -> None:
    printed = format_models(Client(_versions()), "churn", wide=True)  # type: ignore[arg-type]
    assert _reason_lines(printed) == [REASON, "too short"]
    assert build_parser().parse_args(["models", "churn", "--wide"]).wide
