"""spec.json: schema, defaults, every-problem reporting, task resolution, candidate expansion."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlstack_core.candidates import (
    ALL_FAMILIES,
    CATALOG,
    DEFAULT_CANDIDATES,
    MAX_CANDIDATES,
    cv_fold_problems,
    expand_candidates,
)
from mlstack_core.errors import SpecError
from mlstack_core.spec import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    load_spec,
    resolve_task,
    spec_schema,
)
from mlstack_core.tasks import CLASSIFICATION, REGRESSION

pytestmark = pytest.mark.unit


def spec_bytes(**fields: Any) -> bytes:
    return json.dumps({"target": "y", **fields}).encode()


def problems_of(raw: bytes | None) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(raw)
    return str(caught.value)


# -- the published schema -------------------------------------------------------------------------


def test_schema_is_valid_draft_07() -> None:
    jsonschema.Draft7Validator.check_schema(spec_schema())


def test_schema_enums_match_the_code() -> None:
    schema = spec_schema()
    assert set(schema["definitions"]["family"]["enum"]) == set(ALL_FAMILIES)
    metrics = {m for m in schema["properties"]["metric"]["enum"] if m is not None}
    assert metrics == set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS)


def test_every_default_is_valid_against_the_schema_itself() -> None:
    spec = load_spec(spec_bytes())
    jsonschema.Draft7Validator(spec_schema()).validate(spec)


# -- defaults -------------------------------------------------------------------------------------


def test_minimal_spec_gets_every_documented_default() -> None:
    spec = load_spec(b'{"target": "species"}')
    assert spec["target"] == "species"
    assert spec["task"] is None
    assert spec["metric"] is None
    assert spec["candidates"] is None
    assert spec["threshold"] is None
    assert spec["test_size"] == 0.2
    assert spec["min_improvement"] == 0.0
    assert spec["approval"] == "auto"
    assert spec["random_seed"] == 42
    assert spec["delimiter"] == ","
    assert spec["max_concurrency"] == 4
    assert spec["columns"] == {"types": {}, "drop": []}
    assert {"NA", "N/A", "NaN", "nan", "null", "NULL", "None"} == set(spec["na_values"])
    assert set(spec["parity_tolerance"]) == {"label_agreement", "max_abs_diff", "max_scaled_diff"}


def test_partial_nested_objects_are_completed() -> None:
    spec = load_spec(
        spec_bytes(parity_tolerance={"label_agreement": 0.95}, columns={"drop": ["id"]})
    )
    assert spec["parity_tolerance"]["label_agreement"] == 0.95
    assert spec["parity_tolerance"]["max_abs_diff"] > 0
    assert spec["columns"] == {
        "drop": ["id"],
        "types": {},
        "date_formats": {},
        "text": {"max_terms": 1000, "ngrams": 2},
    }


def test_utf8_bom_and_editor_fields_are_accepted() -> None:
    raw = b"\xef\xbb\xbf" + spec_bytes(**{"$schema": "./spec.schema.json", "description": "x"})
    assert load_spec(raw)["target"] == "y"


# -- errors ---------------------------------------------------------------------------------------


def test_missing_spec_is_a_spec_error() -> None:
    assert "missing" in problems_of(None)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"target"', "must be a JSON object"),
    ],
)
def test_unreadable_specs(raw: bytes, needle: str) -> None:
    assert needle in problems_of(raw)


def test_every_schema_problem_is_listed_at_once() -> None:
    message = problems_of(
        json.dumps(
            {
                "target": 3,
                "test_size": 0.9,
                "metirc": "accuracy",
                "approval": "sometimes",
                "candidates": ["forest", {"family": "knn", "grid": {"n_neighbors": 3}}],
                "columns": {"types": {"a": "prose"}, "drop": "id"},
                "max_concurrency": 0,
                "random_seed": -1,
            }
        ).encode()
    )
    for path in (
        "target:",
        "test_size:",
        "metirc: unknown field (did you mean 'metric'?)",
        "approval:",
        "candidates[0]:",
        "candidates[1].grid.n_neighbors:",
        "columns.types.a:",
        "columns.drop:",
        "max_concurrency:",
        "random_seed:",
    ):
        assert path in message
    assert message.startswith("spec.json has 10 problems")


def test_missing_target_is_reported_with_other_problems() -> None:
    message = problems_of(b'{"test_size": 2}')
    assert "target: is required" in message
    assert "test_size:" in message


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"task": "classification", "metric": "r2"}, "'r2' does not apply to classification"),
        ({"task": "regression", "metric": "accuracy"}, "does not apply to regression"),
        ({"task": "classification", "candidates": ["ridge"]}, "not available for classification"),
        ({"candidates": [{"family": "knn", "params": {"leaf": 3}}]}, "'leaf' is not settable"),
        (
            {"candidates": [{"family": "random_forest", "params": {"random_state": 1}}]},
            "'random_state' is not settable",
        ),
        ({"metric": "accuracy", "threshold": 1.5}, "can never be met"),
        ({"metric": "rmse", "threshold": -1}, "never negative"),
        ({"columns": {"drop": ["y"]}}, "lists the target"),
        ({"delimiter": '"'}, "cannot separate"),
        (
            {
                "candidates": [
                    {
                        "family": "random_forest",
                        "grid": {
                            "max_depth": list(range(1, 41)),
                            "min_samples_leaf": list(range(1, 27)),
                        },
                    }
                ]
            },
            f"the limit is {MAX_CANDIDATES}",
        ),
    ],
)
def test_semantic_problems(fields: dict[str, Any], needle: str) -> None:
    assert needle in problems_of(spec_bytes(**fields))


def test_semantic_and_schema_problems_are_reported_together() -> None:
    message = problems_of(spec_bytes(task="regression", metric="f1_macro", test_size=0.01))
    assert "test_size:" in message
    assert "f1_macro" in message


# -- task resolution ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["Adelie", "Gentoo"], "classification"),
        (["0", "1", "1", "0"], "classification"),
        (["1.0", "2.0", "3.0"], "classification"),
        (["1.5", "2", "3"], "regression"),
        ([str(i) for i in range(21)], "regression"),
        ([str(i) for i in range(20)], "classification"),
        (["1", "2", "x"], "classification"),
    ],
)
def test_task_inference(values: list[str], task: str) -> None:
    resolved = resolve_task(load_spec(spec_bytes()), values)
    assert resolved["task"] == task
    assert resolved["metric"] == ("accuracy" if task == "classification" else "r2")
    assert resolved["candidates"] == DEFAULT_CANDIDATES[task]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1))
def test_non_integer_numbers_are_regression(values: list[float]) -> None:
    if all(v.is_integer() for v in values) and len(set(values)) <= 20:
        expected = "classification"
    else:
        expected = "regression"
    assert resolve_task(load_spec(spec_bytes()), [repr(v) for v in values])["task"] == expected


def test_explicit_task_wins_over_inference() -> None:
    spec = load_spec(spec_bytes(task="regression"))
    assert resolve_task(spec, ["1", "2", "3"])["task"] == "regression"


def test_declared_categorical_target_is_classification() -> None:
    spec = load_spec(spec_bytes(columns={"types": {"y": "categorical"}}))
    assert resolve_task(spec, [str(i) for i in range(50)])["task"] == "classification"


def test_candidates_that_do_not_fit_the_inferred_task_are_a_spec_error() -> None:
    spec = load_spec(spec_bytes(candidates=["ridge"], metric="rmse"))
    with pytest.raises(SpecError, match="inferred from the target"):
        resolve_task(spec, ["cat", "dog"])


# -- candidates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_default_candidates_are_three_single_points(task: str) -> None:
    candidates = expand_candidates({"candidates": None}, task)
    assert len(candidates) == 3
    assert len({c["family"] for c in candidates}) == 3
    for index, candidate in enumerate(candidates):
        assert candidate["candidate_id"] == f"c{index:02d}-{candidate['family']}"
        assert candidate["params"] == dict(CATALOG[task][candidate["family"]].defaults)


# benchmarks/tree_defaults.py: above ~80k nodes a 3-class forest serves slower in onnxruntime than
# in scikit-learn at 10,000 rows.
MAX_DEFAULT_FOREST_NODES = 60_000


def test_default_forests_bound_their_node_count_whatever_the_data() -> None:
    for task in CATALOG:
        for name in ("random_forest", "extra_trees"):
            points = [dict(CATALOG[task][name].defaults)]
            points += [c["params"] for c in expand_candidates({"candidates": [name]}, task)]
            for params in points:
                leaves = int(params["max_leaf_nodes"] or 0)
                assert leaves > 0, (task, name, params)  # a depth bound grows with the data
                nodes = int(params["n_estimators"] or 0) * (2 * leaves - 1)
                assert nodes <= MAX_DEFAULT_FOREST_NODES, (task, name, params)


def test_bare_family_name_expands_the_default_grid() -> None:
    candidates = expand_candidates({"candidates": ["random_forest"]}, "classification")
    grid = CATALOG["classification"]["random_forest"].grid
    expected = 1
    for values in grid.values():
        expected *= len(values)
    assert len(candidates) == expected > 1
    assert len({json.dumps(c["params"], sort_keys=True) for c in candidates}) == expected


def test_params_override_defaults_and_grid_multiplies() -> None:
    spec = {
        "candidates": [
            {"family": "knn", "params": {"weights": "distance"}, "grid": {"n_neighbors": [3, 7]}},
            {"family": "knn", "params": {"weights": "distance", "n_neighbors": 3}},  # duplicate
            "logistic_regression",
        ]
    }
    candidates = expand_candidates(spec, "classification")
    knn = [c for c in candidates if c["family"] == "knn"]
    assert [c["params"]["n_neighbors"] for c in knn] == [3, 7]
    assert all(c["params"]["weights"] == "distance" for c in knn)
    ids = [c["candidate_id"] for c in candidates]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"c\d\d-[a-z_]+", i) for i in ids)
    # Stable: the same spec expands to the same ids and params.
    assert expand_candidates(spec, "classification") == candidates


# -- the zoo and cross-validation within a family -------------------------------------------------

_TREES = ("random_forest", "extra_trees", "gradient_boosting", "hist_gradient_boosting")
_SIZE_BOUNDS = ("max_depth", "max_leaf_nodes")


@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION])
def test_the_zoo_has_six_families_per_task_with_bounded_trees(task: str) -> None:
    families = CATALOG[task]
    assert len(families) >= 6
    for name in _TREES:
        family = families[name]
        # Every default and every default grid point bounds tree size: fully grown trees are
        # hundreds of MB as ONNX.
        for point in expand_candidates({"candidates": [name]}, task):
            assert any(point["params"].get(bound) for bound in _SIZE_BOUNDS), (name, point)
            size = point["params"].get("n_estimators") or point["params"].get("max_iter")
            assert size is not None
            assert int(size) <= 200
        assert any(family.defaults.get(bound) for bound in _SIZE_BOUNDS)


def test_a_cv_entry_is_one_candidate_carrying_its_grid() -> None:
    spec = {
        "candidates": [
            {
                "family": "random_forest",
                "params": {"n_estimators": 50},
                "grid": {"max_depth": [4, 8]},
                "cv": 3,
            },
            {"family": "knn", "cv": 5},
            "logistic_regression",
        ]
    }
    candidates = expand_candidates(spec, CLASSIFICATION)
    forest, knn, *logistic = candidates
    assert forest["cv"] == 3
    assert forest["grid"] == {"max_depth": [4, 8]}
    assert forest["params"]["n_estimators"] == 50
    assert forest["candidate_id"] == "c00-random_forest"
    # No grid: the family's default grid is searched.
    assert knn["grid"] == {k: list(v) for k, v in CATALOG[CLASSIFICATION]["knn"].grid.items()}
    assert knn["cv"] == 5
    assert len(logistic) == len(CATALOG[CLASSIFICATION]["logistic_regression"].grid["C"])
    assert all("cv" not in c for c in logistic)
    load_spec(spec_bytes(**spec))  # valid against the published schema


def test_cv_entries_count_once_against_the_candidate_limit_but_bound_their_grid() -> None:
    wide = {"n_estimators": [50, 100, 150, 200], "max_depth": [2, 4, 6, 8, 10, 12, 14, 16, 18]}
    message = problems_of(
        spec_bytes(candidates=[{"family": "random_forest", "grid": wide, "cv": 3}])
    )
    assert "cv grid has 36 points" in message
    many = [{"family": "knn", "params": {"n_neighbors": k}, "cv": 2} for k in range(1, 33)]
    load_spec(spec_bytes(candidates=many))  # 32 Map items: at the limit


@pytest.mark.parametrize("cv", [1, 11, "5", 2.5, True])
def test_invalid_folds_are_spec_problems(cv: Any) -> None:
    message = problems_of(spec_bytes(candidates=[{"family": "knn", "cv": cv}], test_size=9))
    assert "candidates[0].cv" in message
    assert "test_size" in message  # still every problem at once


def test_folds_must_fit_the_rarest_class_or_the_rows() -> None:
    entries: list[Any] = [{"family": "knn", "cv": 5}, "ridge", {"family": "ridge", "cv": 3}]
    assert cv_fold_problems(entries, 5, CLASSIFICATION) == []
    (problem,) = cv_fold_problems(entries, 4, CLASSIFICATION)
    assert problem.startswith("candidates[0] (knn): cv 5")
    assert "rarest class has 4" in problem
    assert len(cv_fold_problems(entries, 2, REGRESSION)) == 2


# -- bounded cost ---------------------------------------------------------------------------------
BOUNDED = spec_schema()["definitions"]["bounded_parameters"]["properties"]


def test_every_size_parameter_a_family_accepts_has_a_maximum() -> None:
    """Trees, iterations, leaves, depth, neighbours: what a spec could set to make one candidate
    train for hours or export a model too large to serve."""
    settable = {
        name for families in CATALOG.values() for f in families.values() for name in f.allowed
    }
    sizes = {"n_estimators", "max_iter", "max_leaf_nodes", "max_depth", "n_neighbors"}
    assert sizes <= settable
    assert sizes <= set(BOUNDED)
    assert all(isinstance(BOUNDED[name]["maximum"], int) for name in BOUNDED)


@given(
    name=st.sampled_from(sorted(BOUNDED)),
    excess=st.integers(min_value=1, max_value=10**9),
    where=st.sampled_from(["params", "grid"]),
)
def test_a_size_parameter_above_its_maximum_is_refused_by_name(
    name: str, excess: int, where: str
) -> None:
    value = BOUNDED[name]["maximum"] + excess
    entry = {"family": "random_forest", where: {name: [1, value] if where == "grid" else value}}
    message = problems_of(spec_bytes(candidates=[entry]))
    assert f"candidates[0].{where}.{name}" in message
    assert str(value) in message


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"description": "x" * 2001}, "description"),
        ({"na_values": ["?"] * 51}, "na_values"),
        ({"columns": {"drop": ["c" * 257]}}, "columns.drop[0]"),
        ({"candidates": ["knn"] * 51}, "candidates"),
        ({"candidates": [{"family": "knn", "params": {"weights": "w" * 65}}]}, "weights"),
    ],
)
def test_text_and_lists_in_a_spec_are_bounded(fields: dict[str, Any], needle: str) -> None:
    assert needle in problems_of(spec_bytes(**fields))
