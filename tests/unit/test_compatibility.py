"""A canary or shadow must answer every request production accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from mlstack.cli import lifecycle
from mlstack.cli.lifecycle import LifecycleError
from mlstack.cli.stack import StackClient
from mlstack_core.compatibility import request_incompatibilities
from mlstack_core.documents import VersionDocument
from mlstack_core.registry import Registry
from tests.helpers.stack import Stack

pytestmark = pytest.mark.unit


def _document(numeric: list[str], categorical: list[str], task: str = "classification") -> dict:
    features = [{"name": n, "kind": "numeric"} for n in numeric]
    features += [{"name": n, "kind": "categorical"} for n in categorical]
    schema = {"task": task, "numeric": numeric, "categorical": categorical, "features": features}
    return {"task": task, "schema": schema}


@dataclass
class _Client:
    """The one part of StackClient the lifecycle commands use."""

    registry: Registry


def _client(aws: Stack) -> StackClient:
    return cast(StackClient, _Client(aws.registry))


def _publish(aws: Stack, model: str, document: dict[str, Any]) -> int:
    version = aws.registry.allocate_version(model)
    aws.registry.put_version(model, version, "Approved", cast(VersionDocument, document))
    return version


def test_a_canary_that_needs_a_column_production_does_not_is_refused(aws: Stack) -> None:
    """The reported case: version 1 needs customer_id, production (version 2) does not."""
    old = _publish(aws, "churn", _document(["tenure", "customer_id"], ["plan"]))
    production = _publish(aws, "churn", _document(["tenure"], ["plan"]))
    aws.registry.move_alias("churn", production, expected=None, actor="t", reason="t")

    with pytest.raises(LifecycleError) as refused:
        lifecycle.canary(_client(aws), "churn", old, 0.5, "t", "try")
    assert "'customer_id'" in str(refused.value)
    assert "cannot be the canary of production version 2" in str(refused.value)
    with pytest.raises(LifecycleError, match="customer_id"):
        lifecycle.shadow(_client(aws), "churn", old, "t", "try")
    assert set(aws.registry.aliases("churn")) == {"production"}


def test_a_compatible_canary_is_set_and_the_cli_says_when_it_is_served(aws: Stack) -> None:
    production = _publish(aws, "churn", _document(["tenure", "charges"], ["plan"]))
    aws.registry.move_alias("churn", production, expected=None, actor="t", reason="t")
    # The same columns, charges read as a category: numbers are sent to it as their text.
    retyped = _publish(aws, "churn", _document(["tenure"], ["plan", "charges"]))

    result = lifecycle.canary(_client(aws), "churn", retyped, 0.2, "t", "try")
    assert result["canary"] == retyped
    assert "ALIAS_TTL_SECONDS" in result["note"]
    assert aws.registry.aliases("churn")["canary"]["version"] == retyped


@pytest.mark.parametrize(
    ("challenger", "needle"),
    [
        (_document(["a"], ["b", "c"]), "requires column(s) 'c'"),
        (_document(["a"], []), "does not know column(s) 'b'"),
        (_document(["a", "b"], []), "categorical for production but numeric"),
        (_document(["a"], ["b"], task="regression"), "answers change shape"),
    ],
)
def test_each_incompatibility_is_named(challenger: dict[str, Any], needle: str) -> None:
    problems = request_incompatibilities(_document(["a"], ["b"]), challenger)
    assert any(needle in problem for problem in problems), problems


def test_a_numeric_column_read_as_text_by_the_challenger_is_compatible() -> None:
    """The serving contract turns a number sent for a categorical column into its text."""
    assert request_incompatibilities(_document(["a", "b"], []), _document(["a"], ["b"])) == []
