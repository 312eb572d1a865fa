"""Train's model input (kinds.inputs.ModelInput): indexed as the object array of the same columns
is, and every zoo family fits and predicts on it exactly as on that array."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core.kinds.inputs import ModelInput, model_input
from mlstack_core.tasks import CLASSIFICATION, REGRESSION
from mlstack_train import zoo

ROWS = 600


def feeds(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 3)).astype(np.float32)
    numeric[rng.random((rows, 3)) < 0.1] = np.nan
    categorical = np.array(rng.choice(["a", "b", "", "c"], size=(rows, 2)), dtype=object)
    text = np.array(rng.choice(["red fox", "blue", "", "red"], size=(rows, 1)), dtype=object)
    return {"numeric": numeric, "categorical": categorical, "text": text}


def _same(ours: Any, theirs: Any) -> None:
    if isinstance(ours, ModelInput):
        ours = np.asarray(ours)
    assert np.asarray(ours).shape == np.asarray(theirs).shape
    assert [str(v) for v in np.ravel(ours)] == [str(v) for v in np.ravel(theirs)]


column_keys = st.one_of(
    st.integers(0, 5),
    st.lists(st.integers(0, 5), min_size=1, max_size=6),
    st.tuples(st.integers(0, 5), st.integers(0, 6)).map(lambda t: slice(*t)),
)
row_keys = st.one_of(
    st.lists(st.integers(0, 19), max_size=20).map(lambda r: np.asarray(r, dtype=np.intp)),
    st.lists(st.booleans(), min_size=20, max_size=20).map(np.asarray),
    st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda t: slice(*t)),
)


@settings(max_examples=200, deadline=None)
@given(rows=row_keys, columns=column_keys)
def test_indexing_matches_the_object_array(rows: Any, columns: Any) -> None:
    table = model_input(feeds(20))
    array = np.asarray(table)
    _same(table[rows, ...], array[rows, ...])
    _same(table[rows], array[rows])
    _same(table[:, columns], array[:, columns])
    _same(table[rows][:, columns], array[rows][:, columns])
    assert table[3, 1] == array[3, 1] or (np.isnan(table[3, 1]) and np.isnan(array[3, 1]))


def test_a_numeric_selection_is_float64_and_a_string_one_objects() -> None:
    table = model_input(feeds(20))
    assert table[:, [0, 2]].dtype == np.float64
    assert table[:, [3, 4]].dtype == object
    assert table[:, 5].shape == (20,)
    assert np.asarray(table).dtype == object
    assert table.shape == (20, 6)
    assert len(table) == 20


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "family"),
    [(REGRESSION, family) for family in zoo.ESTIMATORS[REGRESSION]]
    + [(CLASSIFICATION, family) for family in zoo.ESTIMATORS[CLASSIFICATION]],
)
def test_every_family_fits_as_on_the_object_array(task: str, family: str) -> None:
    data = feeds(ROWS, seed=3)
    table = model_input(data)
    array = np.asarray(table)
    signal = np.nan_to_num(data["numeric"][:, 0].astype(np.float64))
    y: np.ndarray = signal + (data["categorical"][:, 0] == "a") + 0.1
    if task == CLASSIFICATION:
        y = (y > 0.5).astype(np.int64)

    def fitted(inputs: Any) -> Any:
        pipeline = zoo.build_pipeline(
            family,
            {},
            task=task,
            n_numeric=3,
            n_categorical=2,
            seed=0,
            categories=zoo.frequent_categories(inputs[:, 3:5]),
            text=[{"max_terms": 20, "ngrams": 1}],
        )
        return pipeline.fit(inputs, y)

    ours, theirs = fitted(table), fitted(array)
    assert np.array_equal(ours.predict(table), theirs.predict(array))
    if task == CLASSIFICATION:
        assert np.array_equal(ours.predict_proba(table), theirs.predict_proba(array))
