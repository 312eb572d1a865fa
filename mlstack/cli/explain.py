"""``mlstack explain MODEL rows.json``: why the model answered what it did, per row, as a table of
the columns' contributions, largest first."""

from __future__ import annotations

from typing import Any

# Contributions shown per row; the rest are summed on one line.
SHOWN = 12


def _number(value: float) -> str:
    return f"{value:+.4g}"


def _picked(explanation: dict[str, Any], body: dict[str, Any], row: int) -> tuple[str, Any, Any]:
    """(what is explained, its base, each column's contribution to it): a regressor's value, or
    a classifier's probability of the class it predicted."""
    prediction = body["predictions"][row]
    if "classes" not in body:
        return f"prediction {prediction}", explanation["base"], explanation["contributions"]
    position = body["classes"].index(prediction)
    probability = body["probabilities"][row][position]
    contributions = {
        name: values[position] for name, values in explanation["contributions"].items()
    }
    return (
        f"prediction {prediction} (probability {probability:.3f})",
        explanation["base"][position],
        contributions,
    )


def format_explanations(body: dict[str, Any]) -> list[str]:
    """The answer of POST /models/{model}/explain as lines a person reads."""
    method = body.get("method") or {}
    rows = method.get("background_rows")
    lines = [
        f"{body['model']} v{body['version']}: Shapley values against {rows} training rows; "
        "base + contributions = the explained output"
    ]
    for row, explanation in enumerate(body["explanations"]):
        what, base, contributions = _picked(explanation, body, row)
        exact = (
            "exact"
            if explanation.get("exact")
            else f"sampled, {method.get('coalitions')} coalitions"
        )
        lines.append(f"row {row + 1}: {what}; base {base:.4g} ({exact})")
        ranked = sorted(contributions.items(), key=lambda item: -abs(item[1]))
        width = max((len(name) for name, _ in ranked[:SHOWN]), default=0)
        for name, value in ranked[:SHOWN]:
            lines.append(f"  {name:<{width}}  {_number(value)}")
        rest = ranked[SHOWN:]
        if rest:
            lines.append(f"  ({len(rest)} more columns)  {_number(sum(v for _, v in rest))}")
    return lines
