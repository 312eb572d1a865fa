"""Registry: version numbers and alias moves stay consistent under concurrency."""

from __future__ import annotations

import pytest

from mlstack_core.errors import ModelNotFound
from mlstack_core.registry import AliasConflict, Registry
from tests.conftest import Stack

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
