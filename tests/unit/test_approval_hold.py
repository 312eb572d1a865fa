"""AwaitApproval's task, retried: holding the same token twice leaves one waiting run."""

from __future__ import annotations

from typing import Any, cast

import boto3
import pytest

from mlstack_core.documents import DatasetRef
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import REGION, Stack, load_handler

pytestmark = pytest.mark.unit

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:mlstack-training:penguins-1"


def approvals_table(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The approvals table, as the template defines its key, named in the function's settings."""
    table = boto3.resource("dynamodb", region_name=REGION).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("APPROVALS_TABLE", name)
    from mlstack_core.settings import forget

    forget()
    return table


def test_holding_a_token_twice_has_the_effect_of_once(
    aws: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = approvals_table("approvals-hold", monkeypatch)
    hold = load_handler("approval")
    event = {
        "action": "hold",
        "model": "penguins",
        "version": 3,
        "task_token": "token-1",
        "execution_arn": EXECUTION,
    }
    hold(event, FakeLambdaContext())
    hold(event, FakeLambdaContext())
    (item,) = table.scan()["Items"]
    assert (item["task_token"], item["execution_arn"]) == ("token-1", EXECUTION)

    # A retried AwaitApproval gets a new token from Step Functions: the newest is the one held.
    hold({**event, "task_token": "token-2"}, FakeLambdaContext())
    (item,) = table.scan()["Items"]
    assert item["task_token"] == "token-2"


def test_an_answer_in_the_moment_before_the_run_pauses_waits_for_the_pause(
    aws: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Register marks the version PendingApproval a moment before the run pauses and hands over
    its token: an answer in between waits for the token instead of finding no run waiting."""
    import threading
    import time

    table = approvals_table("approvals-race", monkeypatch)
    version = aws.registry.allocate_version("penguins")
    aws.registry.put_version(
        "penguins", version, "PendingApproval", {"dataset": cast(DatasetRef, {})}
    )
    load_handler("approval")  # the function's modules, importable below
    from mlstack_approval import approval

    paused = threading.Timer(
        1.0, approval.hold, args=("penguins", version, "token-after-a-second", EXECUTION)
    )
    paused.start()
    started = time.monotonic()
    approval.answer(approval.Answer("penguins", version, True, "arn:aws:iam::1:user/a", "ok"))
    paused.join()
    # The answer waited for the token the run held a second later, took it and sent it.
    assert time.monotonic() - started >= 1.0
    assert table.scan()["Items"] == []
