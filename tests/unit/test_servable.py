"""The one rule for versions named by number (mlstack_core.servable), at the registry and in the
``mlstack canary`` and ``mlstack shadow`` commands; the prediction API and batch jobs apply it in
test_predict_api.py and test_score.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pytest

from mlstack.cli import lifecycle
from mlstack.cli.lifecycle import LifecycleError
from mlstack.cli.stack import StackClient
from mlstack_core.documents import VersionDocument
from mlstack_core.errors import EXIT_REFUSED, VersionNotServed
from mlstack_core.registry import Registry
from mlstack_core.servable import check_servable
from tests.helpers.stack import Stack

pytestmark = pytest.mark.unit

NEVER_APPROVED = ["Registered", "PendingApproval", "Rejected"]


@pytest.mark.parametrize(
    ("status", "aliased", "served"),
    [
        ("Approved", False, True),
        ("Approved", True, True),
        ("Archived", True, True),
        ("Archived", False, False),
        *[(status, aliased, False) for status in NEVER_APPROVED for aliased in (False, True)],
        (None, True, False),
    ],
)
def test_the_rule(status: str | None, aliased: bool, served: bool) -> None:
    if served:
        check_servable("m", 2, status, aliased=aliased)
    else:
        with pytest.raises(VersionNotServed, match="only approved versions are served by number"):
            check_servable("m", 2, status, aliased=aliased)


@dataclass
class _Client:
    """The one part of StackClient the lifecycle commands use."""

    registry: Registry


def _model(aws: Stack, status: str) -> tuple[StackClient, int]:
    """Production (version 1) and a second version, in ``status``, of the same columns."""
    schema = {"task": "classification", "numeric": ["a"], "categorical": [], "features": []}
    document = cast(VersionDocument, {"task": "classification", "schema": schema})
    for version in (1, 2):
        aws.registry.put_version("m", version, "Approved", document)
    aws.registry.move_alias("m", 1, expected=None, actor="t", reason="t")
    if status != "Approved":
        aws.registry.set_status("m", 2, status, "t", "t")
    return cast(StackClient, _Client(aws.registry)), 2


@pytest.mark.parametrize("status", NEVER_APPROVED)
def test_a_version_never_approved_cannot_be_canary_or_shadow(aws: Stack, status: str) -> None:
    client, version = _model(aws, status)

    for role, move in (
        ("canary", lambda: lifecycle.canary(client, "m", version, 0.5, "t", "try")),
        ("shadow", lambda: lifecycle.shadow(client, "m", version, "t", "try")),
    ):
        with pytest.raises(LifecycleError) as refused:
            move()
        assert f"version 2 of 'm' is {status}" in str(refused.value)
        assert f"it cannot be the {role}" in str(refused.value)
        assert refused.value.exit_code == EXIT_REFUSED
        # The registry refuses it too, whoever calls it.
        share = 0.5 if role == "canary" else None
        with pytest.raises(VersionNotServed, match="never approved"):
            aws.registry.set_challenger("m", role, version, share=share, actor="t", reason="t")
    assert set(aws.registry.aliases("m")) == {"production"}
    assert not [h for h in aws.registry.history("m") if h.get("kind") == "challenger"]


@pytest.mark.parametrize("status", ["Approved", "Archived"])
def test_an_approved_or_archived_version_can_be_canary_and_shadow(aws: Stack, status: str) -> None:
    client, version = _model(aws, status)

    assert lifecycle.canary(client, "m", version, 0.5, "t", "try")["canary"] == version
    assert lifecycle.shadow(client, "m", version, "t", "try")["shadow"] == version
    aliases = aws.registry.aliases("m")
    assert (aliases["canary"]["version"], aliases["shadow"]["version"]) == (version, version)
