"""What the CLI prints for people: ``mlstack models`` shows each version's reason whole (wrapped
between words, or on one line with ``--wide``); the lifecycle commands say what moved in words,
and print their result as JSON only with ``--json``."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from mlstack.cli import lifecycle
from mlstack.cli.explain import format_explanations
from mlstack.cli.main import build_parser, main
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


NOTE = lifecycle.REACHES_SERVING
ANSWERED = {"decision": "approved", "actor": "arn:aws:iam::1:user/ana", "reason": "reviewed"}
# Each lifecycle command, the function it calls and what that returns, and the words it prints.
MOVES: list[tuple[list[str], str, dict[str, Any], str]] = [
    (
        ["approve", "churn", "2", "--reason", "reviewed"],
        "approve",
        {
            "model": "churn",
            "version": 2,
            **ANSWERED,
            "run": "SUCCEEDED",
            "status": "Approved",
            "production": 2,
        },
        "version 2 of 'churn' approved by arn:aws:iam::1:user/ana (reviewed); its run SUCCEEDED; "
        "version 2 is Approved; production = version 2",
    ),
    (
        ["reject", "churn", "2"],
        "reject",
        {
            "model": "churn",
            "version": 2,
            **ANSWERED,
            "decision": "rejected",
            "run": "RUNNING",
            "status": "PendingApproval",
            "production": 1,
        },
        "version 2 of 'churn' rejected by arn:aws:iam::1:user/ana (reviewed); its run is still "
        "RUNNING; version 2 is PendingApproval; production = version 1",
    ),
    (
        ["promote", "churn", "3"],
        "promote",
        {"model": "churn", "production": 3, "previous": 1},
        "'churn': production moved from version 1 to version 3",
    ),
    (
        ["rollback", "churn"],
        "rollback",
        {"model": "churn", "production": 1, "previous": 3},
        "'churn': production rolled back from version 3 to version 1",
    ),
    (
        ["canary", "churn", "1", "--share", "0.25"],
        "canary",
        {"model": "churn", "canary": 1, "share": 0.25, "production": 3, "note": NOTE},
        f"'churn': canary = version 1, 25% of requests, beside production version 3; {NOTE}",
    ),
    (
        ["shadow", "churn", "1"],
        "shadow",
        {"model": "churn", "shadow": 1, "production": 3, "note": NOTE},
        f"'churn': shadow = version 1, beside production version 3; {NOTE}",
    ),
    (
        ["shadow", "churn", "--off"],
        "clear_challenger",
        {"model": "churn", "shadow": None, "previous": 1},
        "'churn': shadow off (it was version 1)",
    ),
]


@pytest.mark.parametrize(
    ("argv", "function", "result", "words"), MOVES, ids=[m[0][0] for m in MOVES]
)
def test_lifecycle_commands_print_words_and_json_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    function: str,
    result: dict[str, Any],
    words: str,
) -> None:
    client = SimpleNamespace(registry=None)
    monkeypatch.setattr("mlstack.cli.main.StackClient", lambda stack: client)
    # The model-name check has its own test (tests/integration/test_cli_exit_codes.py).
    monkeypatch.setattr("mlstack.cli.main.require_model", lambda registry, model: None)
    monkeypatch.setattr(lifecycle, "current_actor", lambda client: "ana")
    monkeypatch.setattr(lifecycle, function, lambda *args, **kwargs: result)

    assert main(argv) == 0
    assert capsys.readouterr().out == words + "\n"

    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result


def test_every_lifecycle_command_offers_json() -> None:
    parser = build_parser()
    for argv, *_ in MOVES:
        assert parser.parse_args([*argv, "--json"]).json


def test_explain_lists_the_largest_contributions_first_and_sums_the_rest() -> None:
    columns = {f"c{i}": (-1) ** i * i / 10 for i in range(15)}
    body = {
        "model": "churn",
        "version": 3,
        "predictions": ["yes"],
        "classes": ["no", "yes"],
        "probabilities": [[0.2, 0.8]],
        "explanations": [
            {
                "base": [0.6, 0.4],
                "contributions": {name: [-value, value] for name, value in columns.items()},
                "exact": False,
            }
        ],
        "method": {"name": "shapley", "background_rows": 32, "coalitions": 128},
    }
    lines = format_explanations(body)
    assert (
        lines[1] == "row 1: prediction yes (probability 0.800); base 0.4 (sampled, 128 coalitions)"
    )
    shown = [line.split()[0] for line in lines[2:-1]]
    assert shown == [f"c{i}" for i in range(14, 2, -1)]  # by absolute size, largest first
    assert lines[2].split()[1] == "+1.4"
    assert lines[-1].strip().startswith("(3 more columns)")
    assert lines[-1].split()[-1] == f"{columns['c0'] + columns['c1'] + columns['c2']:+.4g}"
