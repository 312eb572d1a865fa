"""A run that ended while its version waited for a person leaves that version Rejected, through
the RunEnded rule's real event (Step Functions' status change) and Register's real handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from mlstack_core.documents import VersionDocument
from mlstack_core.registry_keys import (
    STATUS_APPROVED,
    STATUS_PENDING_APPROVAL,
    STATUS_REJECTED,
)
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import Stack, load_handler

pytestmark = pytest.mark.unit

EVENT = Path(__file__).resolve().parents[1] / "events" / "eventbridge_sfn_execution_aborted.json"
MODEL = "penguins"


def _ended(status: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(EVENT.read_text())
    event["detail"]["status"] = status
    return event


def _execution() -> str:
    return str(json.loads(EVENT.read_text())["detail"]["executionArn"])


def _register(aws: Stack, status: str, execution_arn: str) -> int:
    """A version as RegisterForApproval leaves it: registered by the execution, in ``status``."""
    version = aws.registry.allocate_version(MODEL)
    document = cast(VersionDocument, {"execution_arn": execution_arn, "family": "forest"})
    aws.registry.put_version(MODEL, version, status, document)
    return version


@pytest.mark.parametrize(
    ("status", "said"), [("TIMED_OUT", "timed out"), ("ABORTED", "was aborted")]
)
def test_a_version_pending_when_its_run_ends_is_rejected(
    aws: Stack, status: str, said: str
) -> None:
    pending = _register(aws, STATUS_PENDING_APPROVAL, _execution())
    handler = load_handler("register")
    result = handler(_ended(status), FakeLambdaContext())
    assert result["rejected"] == [pending]
    document = aws.registry.get_version(MODEL, pending)
    assert document["status"] == STATUS_REJECTED
    assert said in str(document["status_reason"])
    assert status in str(document["status_reason"])
    history = [h for h in aws.registry.history(MODEL) if h.get("kind") == "status"]
    assert [(h["version"], h["status"], h["actor"]) for h in history] == [
        (pending, STATUS_REJECTED, "pipeline")
    ]
    # The same event delivered again: nothing more changes.
    assert handler(_ended(status), FakeLambdaContext())["rejected"] == []
    assert len([h for h in aws.registry.history(MODEL) if h.get("kind") == "status"]) == 1


def test_only_the_ended_run_s_pending_versions_are_rejected(aws: Stack) -> None:
    """Another run's pending version still waits for its person; an answered one is kept."""
    other_run = _execution().replace("penguins-0123", "penguins-9999")
    others = _register(aws, STATUS_PENDING_APPROVAL, other_run)
    answered = _register(aws, STATUS_APPROVED, _execution())
    result = load_handler("register")(_ended("ABORTED"), FakeLambdaContext())
    assert result["rejected"] == []
    assert aws.registry.get_version(MODEL, others)["status"] == STATUS_PENDING_APPROVAL
    assert aws.registry.get_version(MODEL, answered)["status"] == STATUS_APPROVED
