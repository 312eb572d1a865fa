"""A split's model inputs survive the binary file Preprocess writes and Train loads."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core.split_inputs import EncodedInputs, read_split_inputs, split_inputs_bytes

_cells = st.text(st.characters(codec="utf-8"), max_size=12)


def _object_block(rows: list[list[str]], width: int) -> np.ndarray:
    block = np.empty((len(rows), width), dtype=object)
    for i, row in enumerate(rows):
        block[i, :] = row
    return block


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_rows=st.integers(0, 30),
    n_numeric=st.integers(0, 3),
    n_categorical=st.integers(0, 3),
    target_kind=st.sampled_from(["float", "int", "str"]),
)
def test_inputs_and_target_round_trip(
    data: st.DataObject, n_rows: int, n_numeric: int, n_categorical: int, target_kind: str
) -> None:
    feeds: dict[str, np.ndarray] = {}
    if n_numeric:
        values = data.draw(
            st.lists(
                st.floats(width=32, allow_nan=True, allow_infinity=False),
                min_size=n_rows * n_numeric,
                max_size=n_rows * n_numeric,
            )
        )
        feeds["numeric"] = np.asarray(values, dtype=np.float32).reshape(n_rows, n_numeric)
    if n_categorical:
        rows = data.draw(
            st.lists(
                st.lists(_cells, min_size=n_categorical, max_size=n_categorical),
                min_size=n_rows,
                max_size=n_rows,
            )
        )
        feeds["categorical"] = _object_block(rows, n_categorical)
    target: np.ndarray
    if target_kind == "float":
        target = np.arange(n_rows, dtype=np.float64) / 3
    elif target_kind == "int":
        target = np.arange(n_rows, dtype=np.int64) - 5
    else:
        target = np.asarray(
            data.draw(st.lists(_cells, min_size=n_rows, max_size=n_rows)), dtype=object
        ).reshape(n_rows)

    loaded, loaded_target = read_split_inputs(split_inputs_bytes(feeds, target))

    assert set(loaded) == set(feeds)
    for name, feed in feeds.items():
        assert loaded[name].dtype == feed.dtype
        assert loaded[name].shape == feed.shape
        if feed.dtype == object:
            assert loaded[name].tolist() == feed.tolist()
        else:
            np.testing.assert_array_equal(loaded[name], feed)
    assert loaded_target.dtype == target.dtype
    assert loaded_target.tolist() == target.tolist()

    # A split's file from the inputs encoded once for the whole table: its rows, in its order.
    index = np.asarray(data.draw(st.permutations(range(n_rows))), dtype=np.intp)[: n_rows // 2]
    split, split_target = read_split_inputs(EncodedInputs(feeds, target).split_bytes(index))
    for name, feed in feeds.items():
        assert split[name].dtype == feed.dtype
        assert split[name].shape == feed[index].shape
        if feed.dtype == object:
            assert split[name].tolist() == feed[index].tolist()
        else:
            np.testing.assert_array_equal(split[name], feed[index])
    assert split_target.dtype == target.dtype
    assert split_target.tolist() == target[index].tolist()


def test_a_repeated_value_is_stored_once_and_loaded_as_one_object() -> None:
    """A categorical cell costs a code, not a copy of its text."""
    level = 'Ærøskøbing, "Dock" 7'
    feeds = {"categorical": _object_block([[level, ""]] * 1000, 2)}
    body = split_inputs_bytes(feeds, np.zeros(1000))
    loaded, _ = read_split_inputs(body)
    column = loaded["categorical"][:, 0]
    assert len({id(value) for value in column}) == 1
    assert column[0] == level
    assert loaded["categorical"][:, 1].tolist() == [""] * 1000
    # codes, not texts: well under the 1000 copies of the level
    assert len(body) < 1000 * len(level.encode())
