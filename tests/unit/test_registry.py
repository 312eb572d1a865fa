"""Registry: version numbers and alias moves stay consistent under concurrency."""

from __future__ import annotations

from typing import Any, cast

import pytest

from mlstack_core.documents import FeatureSchema
from mlstack_core.errors import AliasConflict, ModelNotFound
from mlstack_core.registry import Registry
from tests.helpers.stack import Stack

pytestmark = pytest.mark.unit


def test_allocations_from_many_writers_never_share_a_version(aws: Stack) -> None:
    # Interleaved writers, each with its own client, as concurrent runs would be. The counter is a
    # single atomic ADD in DynamoDB; moto's in-process table is not thread-safe, so the writers
    # take turns here instead of racing threads.
    writers = [Registry(aws.registry_table, aws.dynamodb) for _ in range(4)]
    versions = [writers[i % 4].allocate_version("m") for i in range(40)]
    assert sorted(versions) == list(range(1, 41))
    assert aws.registry.list_models() == ["m"]


def test_alias_moves_only_from_the_expected_version(aws: Stack) -> None:
    registry = aws.registry
    for version in (1, 2, 3):
        registry.put_version("m", version, "Registered", {"metrics": {}})
    registry.move_alias("m", 1, expected=None, actor="a", reason="first")

    with pytest.raises(AliasConflict):
        registry.move_alias("m", 2, expected=None, actor="b", reason="stale: alias exists")
    with pytest.raises(AliasConflict):
        registry.move_alias("m", 3, expected=2, actor="c", reason="stale: points at 1")
    assert registry.get_alias("m") == 1

    registry.move_alias("m", 3, expected=1, actor="d", reason="rollforward")
    assert registry.get_alias("m") == 3
    moves = [h for h in registry.history("m") if h["kind"] == "alias"]
    assert [(m["version"], m["previous"], m["actor"]) for m in moves] == [
        (1, None, "a"),
        (3, 1, "d"),
    ]


def test_an_alias_cannot_point_at_a_missing_version(aws: Stack) -> None:
    with pytest.raises(ModelNotFound):
        aws.registry.move_alias("m", 7, expected=None, actor="a", reason="typo")
    assert aws.registry.get_alias("m") is None


def test_versions_are_never_overwritten(aws: Stack) -> None:
    aws.registry.put_version("m", 1, "Registered", {"metrics": {"accuracy": 0.9}})
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        aws.registry.put_version("m", 1, "Registered", {"metrics": {"accuracy": 0.1}})
    assert aws.registry.get_version("m", 1)["metrics"] == {"accuracy": 0.9}


def test_rollbacks_walk_back_and_production_is_never_shown_archived(aws: Stack) -> None:
    """Promote 1, 2, 3; roll back twice: production is 2 then 1, and the version in production
    is Approved again (with the rollback's reason), the ones it replaced Archived."""
    registry = aws.registry
    for _ in range(3):
        version = registry.allocate_version("m")
        registry.put_version("m", version, "Approved", {"schema": cast(FeatureSchema, {})})
        registry.move_alias("m", version, expected=registry.get_alias("m"), actor="a", reason="up")
    walked = []
    for reason in ("broke checkout", "still broken"):
        target = registry.rollback_target("m")
        assert target is not None
        registry.move_alias(
            "m", target, expected=registry.get_alias("m"), actor="a", reason=reason, rollback=True
        )
        walked.append(registry.get_alias("m"))
    assert walked == [2, 1]
    documents = {d["version"]: d for d in registry.list_versions("m")}
    assert {v: d["status"] for v, d in documents.items()} == {
        1: "Approved",
        2: "Archived",
        3: "Archived",
    }
    assert documents[1]["status_reason"] == "rolled back to: still broken"


def test_an_alias_move_and_everything_it_implies_are_one_transaction(
    aws: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move, its history entry and the statuses it changes are written together or not at
    all: when the transaction is refused, the alias, the history and both versions are as before."""
    registry = aws.registry
    for version in (1, 2):
        registry.put_version("m", version, "Registered", {"metrics": {}})
    registry.move_alias("m", 1, expected=None, actor="a", reason="first")
    before = (registry.history("m"), registry.get_version("m", 1), registry.get_version("m", 2))

    client = registry._table.meta.client
    transactions: list[int] = []
    original = client.transact_write_items

    def refused(**request: Any) -> Any:
        transactions.append(len(request["TransactItems"]))
        # The last write (a new history entry) made to fail: every other write must not land.
        request["TransactItems"][-1]["Put"]["ConditionExpression"] = "attribute_exists(pk)"
        return original(**request)

    monkeypatch.setattr(client, "transact_write_items", refused)
    with pytest.raises(Exception, match="TransactionCanceled"):
        registry.move_alias("m", 2, expected=1, actor="b", reason="second")
    # One call carried the alias, its history, 1 Archived and 2 Approved with their entries.
    assert transactions == [6]
    assert registry.get_alias("m") == 1
    after = (registry.history("m"), registry.get_version("m", 1), registry.get_version("m", 2))
    assert after == before

    monkeypatch.setattr(client, "transact_write_items", original)
    registry.move_alias("m", 2, expected=1, actor="b", reason="second")
    assert registry.get_version("m", 1)["status"] == "Archived"
    assert registry.get_version("m", 2)["status"] == "Approved"
    assert [h["version"] for h in registry.history("m") if h["kind"] == "alias"] == [1, 2]


def test_writes_made_for_a_run_are_made_once_however_often_it_asks(aws: Stack) -> None:
    """A retried pipeline step finds its own version number, alias move and status change done;
    other runs and other states still get their own."""
    registry = aws.registry
    run = "arn:aws:states:us-east-1:123456789012:execution:mlstack-training:run-1"
    interleaved = [
        registry.allocate_version("m", execution_arn=run, step="RegisterAndPromote"),
        registry.allocate_version("m"),
        registry.allocate_version("m", execution_arn=run, step="RegisterAndPromote"),
        registry.allocate_version("m", execution_arn=run + "-2", step="RegisterAndPromote"),
        registry.allocate_version("m", execution_arn=run, step="RecordRejection"),
    ]
    assert interleaved == [1, 2, 1, 3, 4]
    assert registry.allocated_version("m", run, "RegisterAndPromote") == 1
    assert registry.allocate_version("m") == 5  # no gap, no number handed out twice

    for version in (1, 2):
        registry.put_version("m", version, "Registered", {"metrics": {}})
    first = registry.move_alias("m", 1, expected=None, actor="a", reason="up", execution_arn=run)
    again = registry.move_alias("m", 1, expected=None, actor="a", reason="up", execution_arn=run)
    assert again == first
    with pytest.raises(AliasConflict):  # another run's stale expectation is still refused
        registry.move_alias("m", 1, expected=None, actor="a", reason="up", execution_arn="other")
    registry.set_status("m", 2, "Rejected", "a", "no", expected="Registered", execution_arn=run)
    registry.set_status("m", 2, "Rejected", "a", "no", expected="Registered", execution_arn=run)
    assert registry.get_version("m", 2)["status_changed_in"] == run

    history = registry.history("m")
    assert [(h["kind"], h["version"]) for h in history if h["kind"] == "alias"] == [("alias", 1)]
    assert [h["status"] for h in history if h["kind"] == "status" and h["version"] == 2] == [
        "Rejected"
    ]
