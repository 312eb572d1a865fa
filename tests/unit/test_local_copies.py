"""The local cloud copies moto's state data as JSON: a deep copy, equal to the original, and
``copy.deepcopy`` for anything JSON would not give back unchanged."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlstack.localcloud.moto_patches import json_copy

pytestmark = pytest.mark.unit

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(value=JSON)
def test_state_data_is_copied_deeply_and_unchanged(value: Any) -> None:
    copied = json_copy(value)
    assert copied == value
    assert type(copied) is type(value)
    if isinstance(value, dict | list) and value:
        assert copied is not value
        first = next(iter(value.values())) if isinstance(value, dict) else value[0]
        again = next(iter(copied.values())) if isinstance(copied, dict) else copied[0]
        assert again is not first or not isinstance(first, dict | list)


@pytest.mark.parametrize(
    "value",
    [
        {"nan": math.nan},  # orjson would write null
        {"tuple": (1, 2)},  # orjson would give a list
        {1: "integer key"},
        {"big": 2**70},
        [object()],
    ],
)
def test_what_json_would_change_is_deep_copied(value: Any) -> None:
    copied = json_copy(value)
    assert type(copied) is type(value)
    inner = next(iter(copied.values())) if isinstance(copied, dict) else copied[0]
    original = next(iter(value.values())) if isinstance(value, dict) else value[0]
    assert type(inner) is type(original)
    if isinstance(original, float):
        assert math.isnan(inner)
    elif isinstance(original, tuple | int | str):
        assert inner == original
    else:
        assert inner is not original  # deepcopy made a new object


def test_a_copy_does_not_share_its_rows() -> None:
    batch: dict[str, Any] = {"Items": [{"row": 0, "values": {"a": "1"}}]}
    copied = json_copy(batch)
    copied["Items"][0]["values"]["a"] = "2"
    assert batch["Items"][0]["values"]["a"] == "1"
