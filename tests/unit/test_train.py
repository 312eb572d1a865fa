"""The model zoo, the ONNX graph contract, parity, and the Train handler's Map behaviour."""

from __future__ import annotations

import io
import json
from typing import Any

import joblib
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.ensemble import RandomForestRegressor
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from mlstack_core.candidates import CATALOG, expand_candidates
from mlstack_core.contract import session_options
from mlstack_core.kinds.inputs import ModelInput, model_input
from mlstack_core.settings import ServingSettings
from mlstack_core.tabular import feature_feeds, read_split
from mlstack_train.zoo import (
    ESTIMATORS,
    MAX_ONE_HOT_LEVELS,
    build_pipeline,
    export_onnx,
    feature_importance,
    float32_thresholds,
    frequent_categories,
)
from tests.helpers.stack import Stack
from tests.helpers.tables import penguins_bytes, synthetic_regression

pytestmark = pytest.mark.unit


def run_export(
    model_bytes: bytes, numeric: np.ndarray, categorical: np.ndarray
) -> dict[str, np.ndarray]:
    """The export's outputs by name, in a session with the serving contract's options; inputs the
    graph does not have (no columns of that kind) are not fed."""
    options = session_options(ServingSettings.from_env())
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    available = {"numeric": numeric, "categorical": categorical}
    feeds = {i.name: available[i.name] for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def mixed_data(
    n: int, *, seed: int = 0, task: str = "classification", n_classes: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numeric float32 with ~8% NaN, categorical with "" as missing, and a target."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, 4)) * [1.0, 10.0, 100.0, 0.01] + [0.0, 50.0, 1000.0, 0.0]
    numeric[rng.random(numeric.shape) < 0.08] = np.nan
    numeric = numeric.astype(np.float32)
    categorical = np.stack(
        [rng.choice(["a", "b", "c", ""], n), rng.choice([f"k{i}" for i in range(12)], n)], axis=1
    ).astype(object)
    signal = (
        np.nan_to_num(numeric[:, 0])
        + 0.05 * np.nan_to_num(numeric[:, 1] - 50)
        + (categorical[:, 0] == "a")
        - (categorical[:, 1] == "k3")
    )
    noisy = signal + rng.normal(scale=0.5, size=n)
    if task == "regression":
        return numeric, categorical, (noisy * 100).astype(np.float64)
    if n_classes == 2:
        return numeric, categorical, np.where(noisy > 0.5, "yes", "no").astype(object)
    return numeric, categorical, np.digitize(noisy, [-0.5, 0.8]).astype(np.int64)


def fit_export_score(
    family: str,
    task: str,
    numeric: np.ndarray,
    categorical: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any] | None = None,
    train_share: float = 0.8,
) -> dict[str, Any]:
    """Fit on the first rows, export, and run both on the rest."""
    cut = int(len(y) * train_share)
    k, m = numeric.shape[1], categorical.shape[1]
    pipeline = build_pipeline(
        family,
        params or dict(CATALOG[task][family].defaults),
        task=task,
        n_numeric=k,
        n_categorical=m,
        seed=0,
    )
    inputs = model_input({"numeric": numeric, "categorical": categorical})
    pipeline.fit(inputs[:cut], y[:cut])
    model = export_onnx(pipeline, task=task, n_numeric=k, n_categorical=m)
    onnx_out = run_export(model.SerializeToString(), numeric[cut:], categorical[cut:])
    return {
        "pipeline": pipeline,
        "model": model,
        "onnx": onnx_out,
        "X_test": inputs[cut:],
        "y_test": y[cut:],
    }


def test_zoo_covers_the_catalogue() -> None:
    assert {t: set(f) for t, f in ESTIMATORS.items()} == {t: set(f) for t, f in CATALOG.items()}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CATALOG["classification"]))
def test_every_classifier_meets_the_graph_contract_and_parity(family: str) -> None:
    numeric, categorical, y = mixed_data(1500, n_classes=3)
    result = fit_export_score(family, "classification", numeric, categorical, y)
    graph = result["model"].graph
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        ("numeric", onnx.TensorProto.FLOAT),
        ("categorical", onnx.TensorProto.STRING),
    ]
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    pipeline, out = result["pipeline"], result["onnx"]
    assert out["probabilities"].shape == (len(result["y_test"]), 3)
    assert out["label"].dtype == np.int64
    assert np.mean(out["label"] == pipeline.predict(result["X_test"])) == 1.0
    assert np.abs(out["probabilities"] - pipeline.predict_proba(result["X_test"])).max() < 1e-4
    # Better than always guessing the most frequent class on held-out rows.
    majority = np.max(np.bincount(result["y_test"])) / len(result["y_test"])
    assert np.mean(out["label"] == result["y_test"]) > majority


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CATALOG["regression"]))
def test_every_regressor_meets_the_graph_contract_and_parity(family: str) -> None:
    numeric, categorical, y = mixed_data(1500, task="regression")
    result = fit_export_score(family, "regression", numeric, categorical, y)
    assert [o.name for o in result["model"].graph.output] == ["variable"]
    values = result["onnx"]["variable"]
    assert values.shape == (len(result["y_test"]), 1)
    expected = result["pipeline"].predict(result["X_test"])
    assert np.abs(values.ravel() - expected).max() / np.std(result["y_test"]) < 1e-4
    residual = np.mean((values.ravel() - result["y_test"]) ** 2)
    assert residual < np.var(result["y_test"])  # explains some variance out of sample


@pytest.mark.slow
@pytest.mark.parametrize(("k", "m", "inputs"), [(3, 0, ["numeric"]), (0, 2, ["categorical"])])
def test_an_input_is_absent_when_it_has_no_columns(k: int, m: int, inputs: list[str]) -> None:
    numeric, categorical, y = mixed_data(400)
    result = fit_export_score(
        "logistic_regression", "classification", numeric[:, :k], categorical[:, :m], y
    )
    assert [i.name for i in result["model"].graph.input] == inputs
    assert np.mean(result["onnx"]["label"] == result["pipeline"].predict(result["X_test"])) == 1


@pytest.mark.slow
def test_unseen_category_is_served_not_rejected() -> None:
    numeric, categorical, y = mixed_data(600)
    cut = 480
    categorical[cut:, 0] = "never-seen"
    result = fit_export_score("random_forest", "classification", numeric, categorical, y)
    pipeline, rows = result["pipeline"], result["X_test"]
    expected, proba = pipeline.predict(rows), pipeline.predict_proba(rows)
    np.testing.assert_allclose(result["onnx"]["probabilities"], proba, atol=1e-5)
    # Pure leaves and an even number of trees make exact vote ties (0.5/0.5), which float32 sums
    # break either way: a label may differ only where scikit-learn's two classes tie.
    classes = list(pipeline.classes_)
    for row in np.flatnonzero(result["onnx"]["label"] != expected):
        a = classes.index(result["onnx"]["label"][row])
        b = classes.index(expected[row])
        assert proba[row, a] == proba[row, b], (row, proba[row])
    assert np.mean(result["onnx"]["label"] == expected) > 0.9


def test_hist_gradient_boosting_takes_nan_natively() -> None:
    pipeline = build_pipeline(
        "hist_gradient_boosting", {}, task="classification", n_numeric=2, n_categorical=1, seed=0
    )
    assert pipeline.named_steps["preprocess"].transformers[0][1] == "passthrough"


@pytest.mark.parametrize("task", sorted(CATALOG))
def test_only_hist_gradient_boosting_encodes_categories_as_ordinal_codes(task: str) -> None:
    """One code per column for HistGradientBoosting (NaN for an unseen value); one-hot columns
    for every other family."""
    for family in CATALOG[task]:
        pipeline = build_pipeline(
            family, {}, task=task, n_numeric=1, n_categorical=2, seed=0, categories=[["a"], ["b"]]
        )
        (encoder,) = [
            t
            for name, t, _ in pipeline.named_steps["preprocess"].transformers
            if name == "categorical"
        ]
        if family == "hist_gradient_boosting":
            assert isinstance(encoder, OrdinalEncoder)
            codes = encoder.fit(np.array([["a", "b"]], dtype=object)).transform(
                np.array([["a", "other"]], dtype=object)
            )
            assert codes.shape == (1, 2)
            assert codes[0, 0] == 0
            assert np.isnan(codes[0, 1])
        else:
            assert isinstance(encoder, OneHotEncoder), family


@pytest.mark.parametrize("task", sorted(CATALOG))
def test_linear_models_get_a_sparse_matrix_when_one_hot_columns_dominate(task: str) -> None:
    """57 one-hot columns beside 2 numbers: the linear families' input is sparse (a tenth of the
    dense matrix's memory at scale); the other families', which need dense input, is not."""
    rows = 300
    levels = [[f"l{i}" for i in range(k)] for k in (5, 12, 40)]
    inputs = np.empty((rows, 5), dtype=object)
    inputs[:, :2] = np.arange(rows * 2).reshape(rows, 2) / 7
    for j, kept in enumerate(levels):
        inputs[:, 2 + j] = [kept[i % len(kept)] for i in range(rows)]
    for family in CATALOG[task]:
        pipeline = build_pipeline(
            family, {}, task=task, n_numeric=2, n_categorical=3, seed=0, categories=levels
        )
        matrix = pipeline.named_steps["preprocess"].fit_transform(inputs)
        linear = family in {"logistic_regression", "ridge", "linear_regression"}
        assert sparse.issparse(matrix) == linear, family
        assert matrix.shape[1] == (5 if family == "hist_gradient_boosting" else 2 + 57)


@st.composite
def categorical_tables(draw: Any) -> dict[str, Any]:
    """A task, numeric columns (some cells NaN), categorical columns of 1 to 150 levels (so some
    keep only their MAX_ONE_HOT_LEVELS most frequent, the rest rare) with "" as a missing value,
    a target that depends on both, and held-out categorical cells that are unseen, "" or rare."""
    task = draw(st.sampled_from(["regression", "binary", "multiclass"]))
    k = draw(st.integers(0, 3))
    levels = draw(st.lists(st.sampled_from([1, 3, 12, 70, 150]), min_size=1, max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n, held_out = 700, 200
    numeric = rng.normal(size=(n, k)).astype(np.float32)
    numeric[rng.random(numeric.shape) < 0.1] = np.nan
    columns, signal = [], np.nan_to_num(numeric[:, 0]) if k else np.zeros(n)
    for j, count in enumerate(levels):
        # Skewed: a few frequent levels and a long tail of rare ones.
        weights = 1.0 / np.arange(1, count + 1)
        codes = rng.choice(count, size=n, p=weights / weights.sum())
        column = np.array([f"c{j}_{c}" for c in codes], dtype=object)
        column[rng.random(n) < 0.1] = ""
        signal = signal + np.where(codes % 3 == 0, 1.0, -0.5) * (column != "")
        columns.append(column)
    categorical = np.stack(columns, axis=1)
    served = categorical[-held_out:]  # a view: edits reach the held-out rows only
    served[:20, 0] = "never-seen"
    served[20:40, -1] = ""
    for j, count in enumerate(levels):
        if count > MAX_ONE_HOT_LEVELS:
            served[40:60, j] = f"c{j}_{count - 1}"  # the rarest level: not among those kept
    noisy = signal + rng.normal(scale=0.5, size=n)
    y: np.ndarray
    if task == "regression":
        y = noisy * 10.0
    elif task == "binary":
        y = np.where(noisy > np.median(noisy), "yes", "no").astype(object)
    else:
        y = np.digitize(noisy, np.quantile(noisy, [0.33, 0.66])).astype(np.int64)
    return {
        "task": task,
        "numeric": numeric,
        "categorical": categorical,
        "y": y,
        "cut": n - held_out,
    }


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(table=categorical_tables())
def test_hist_gradient_boosting_export_matches_scikit_learn_on_unseen_missing_and_rare_categories(
    table: dict[str, Any],
) -> None:
    """The ordinal codes of the export (skl2onnx's OrdinalEncoder → onnxruntime) and of
    scikit-learn agree, unseen and rare values included (both NaN), so the trees answer alike."""
    numeric, categorical, y, cut = table["numeric"], table["categorical"], table["y"], table["cut"]
    task = "regression" if table["task"] == "regression" else "classification"
    k, m = numeric.shape[1], categorical.shape[1]
    pipeline = build_pipeline(
        "hist_gradient_boosting",
        dict(CATALOG[task]["hist_gradient_boosting"].defaults),
        task=task,
        n_numeric=k,
        n_categorical=m,
        seed=0,
        categories=frequent_categories(categorical[:cut]),  # as Train keeps them
    )
    inputs = model_input({"numeric": numeric, "categorical": categorical})
    pipeline.fit(inputs[:cut], y[:cut])
    codes = pipeline.named_steps["preprocess"].named_transformers_["categorical"]
    assert np.isnan(codes.transform(categorical[cut:])).any()  # unseen values reach the trees
    model = export_onnx(pipeline, task=task, n_numeric=k, n_categorical=m)
    out = run_export(model.SerializeToString(), numeric[cut:], categorical[cut:])
    rows = inputs[cut:]
    if task == "regression":
        scale = float(np.std(y[:cut])) or 1.0
        assert np.abs(out["variable"].ravel() - pipeline.predict(rows)).max() / scale < 1e-4
        return
    proba = pipeline.predict_proba(rows)
    assert np.abs(out["probabilities"] - proba).max() < 1e-5
    # A label may differ only where scikit-learn's two classes tie (float32 sums break ties).
    expected, classes = pipeline.predict(rows), list(pipeline.classes_)
    for row in np.flatnonzero(out["label"] != expected):
        a, b = classes.index(out["label"][row]), classes.index(expected[row])
        assert abs(proba[row, a] - proba[row, b]) < 1e-6, (row, proba[row])


@pytest.mark.slow
def test_an_ordinal_encoded_column_is_one_input_of_the_importances() -> None:
    """Importance widths follow the encoder: an ordinal-encoded column is one input (a one-hot
    one is as many as its categories). HistGradientBoosting has no importance of its own, so a
    forest stands in behind its preprocessing."""
    numeric, categorical, y = mixed_data(600, task="regression")
    pipeline = build_pipeline(
        "hist_gradient_boosting", {}, task="regression", n_numeric=4, n_categorical=2, seed=0
    )
    pipeline.set_params(model=RandomForestRegressor(n_estimators=20, random_state=0))
    pipeline.fit(model_input({"numeric": numeric, "categorical": categorical}), y)
    importance = feature_importance(pipeline, ["n0", "n1", "n2", "n3"], ["c0", "c1"])
    assert importance is not None
    assert importance["features_total"] == 6
    by_name = {f["name"]: f["importance"] for f in importance["features"]}
    assert set(by_name) == {"n0", "n1", "n2", "n3", "c0", "c1"}
    assert sum(by_name.values()) == pytest.approx(1.0, abs=1e-5)
    assert by_name["n0"] == max(by_name.values())  # the target's strongest term


@pytest.mark.slow
@pytest.mark.parametrize("n_classes", [2, 3])
def test_hist_gradient_boosting_parity_on_10k_mixed_rows_with_nan(n_classes: int) -> None:
    numeric, categorical, y = mixed_data(10_000, seed=3, n_classes=n_classes)
    result = fit_export_score("hist_gradient_boosting", "classification", numeric, categorical, y)
    sklearn_labels = result["pipeline"].predict(result["X_test"])
    assert np.isnan(numeric[8000:]).any()
    assert int(np.sum(result["onnx"]["label"] != sklearn_labels)) == 0
    proba = result["pipeline"].predict_proba(result["X_test"])
    assert np.abs(result["onnx"]["probabilities"] - proba).max() < 1e-5


# -- the handler ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_handler_trains_every_default_penguins_candidate(aws: Stack) -> None:
    aws.put_spec("penguins", {"target": "species"})
    run = aws.preprocess(aws.upload("penguins", penguins_bytes()))
    trained = aws.train(run)
    assert [t["candidate_id"] for t in trained] == [c["candidate_id"] for c in run["candidates"]]
    for entry in trained:
        assert entry["status"] == "trained", entry["error"]
        prefix = f"runs/penguins/{run['run_id']}/candidates/{entry['candidate_id']}"
        assert entry["onnx_key"] == f"{prefix}/model.onnx"
        assert entry["sklearn_key"] == f"{prefix}/model.joblib"
        onnx_body = aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["onnx_key"])["Body"]
        model = onnx.load_from_string(onnx_body.read())
        assert len(model.SerializeToString()) == entry["onnx_bytes"]
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["mlstack.candidate_id"] == entry["candidate_id"]
        pickled = aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["sklearn_key"])["Body"]
        pipeline = joblib.load(io.BytesIO(pickled.read()))
        assert list(pipeline.classes_) == run["schema"]["classes"]
        assert entry["sklearn_holdout_key"] == f"{prefix}/sklearn_holdout.npz"
        stored = load_holdout_outputs(aws, entry)
        # 344 rows: judged by cross-validation, so the out-of-fold answers are stored too.
        assert set(stored) == {
            "label",
            "probabilities",
            "classes",
            "oof_label",
            "oof_probabilities",
        }
        assert stored["oof_probabilities"].shape == (3, run["splits"]["holdout_rows"], 3)
        assert stored["oof_label"].dtype.kind == "U"
        assert entry["cross_validation_seconds"] >= 0
        assert stored["label"].dtype.kind == "U"  # string labels as unicode, not object
        assert stored["classes"].tolist() == run["schema"]["classes"]
        inputs = holdout_inputs(aws, run)
        assert stored["label"].shape == (run["splits"]["holdout_rows"],)
        assert stored["label"].tolist() == pipeline.predict(inputs).tolist()
        assert stored["probabilities"].dtype == np.float64
        assert stored["probabilities"].shape == (run["splits"]["holdout_rows"], 3)
        assert np.array_equal(stored["probabilities"], pipeline.predict_proba(inputs))
        assert entry["fit_seconds"] >= 0
        assert entry["library_versions"]["scikit-learn"]
        # Bounded defaults keep the forest small enough to serve.
        assert entry["onnx_bytes"] < 5_000_000


def load_holdout_outputs(aws: Stack, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    """The stored .npz, read as Evaluate reads it: without pickle."""
    body = aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["sklearn_holdout_key"])["Body"]
    with np.load(io.BytesIO(body.read()), allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def holdout_inputs(aws: Stack, run: dict[str, Any]) -> ModelInput:
    splits = run["splits"]
    body = aws.s3.get_object(Bucket=splits["bucket"], Key=splits["holdout_key"])["Body"].read()
    return model_input(feature_feeds(read_split(body), run["schema"]))


@pytest.mark.slow
def test_integer_labels_are_stored_as_int64(aws: Stack) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    rows = [f"{x[i]:.4f},{int(x[i] + rng.normal(scale=0.3) > 0)}" for i in range(120)]
    aws.put_spec("ints", {"target": "y", "candidates": [{"family": "logistic_regression"}]})
    run = aws.preprocess(aws.upload("ints", ("x,y\n" + "\n".join(rows) + "\n").encode()))
    assert run["schema"]["label_type"] == "int"
    (entry,) = aws.train(run)
    stored = load_holdout_outputs(aws, entry)
    assert stored["label"].dtype == np.int64
    assert stored["classes"].tolist() == [0, 1]


@pytest.mark.slow
def test_regressors_store_their_holdout_values(aws: Stack) -> None:
    aws.put_spec(
        "houses",
        {
            "target": "price",
            "columns": {"drop": ["id"]},
            "candidates": [{"family": "ridge"}],
            "judge": "holdout",
        },
    )
    run = aws.preprocess(aws.upload("houses", synthetic_regression(200)))
    (entry,) = aws.train(run)
    stored = load_holdout_outputs(aws, entry)
    assert set(stored) == {"variable"}
    assert stored["variable"].dtype == np.float64
    assert stored["variable"].shape == (run["splits"]["holdout_rows"],)
    body = aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["sklearn_key"])["Body"].read()
    pipeline = joblib.load(io.BytesIO(body))
    assert np.array_equal(stored["variable"], pipeline.predict(holdout_inputs(aws, run)))


@pytest.mark.slow
def test_a_failing_candidate_reports_instead_of_raising(aws: Stack) -> None:
    aws.put_spec(
        "penguins",
        {
            "target": "species",
            "candidates": [
                {"family": "random_forest", "params": {"max_features": "nonsense"}},
                {"family": "logistic_regression"},
            ],
        },
    )
    run = aws.preprocess(aws.upload("penguins", penguins_bytes()))
    failed, ok = aws.train(run)
    assert failed["status"] == "failed"
    assert "max_features" in failed["error"]
    assert failed["onnx_key"] is None
    assert failed["sklearn_holdout_key"] is None
    assert ok["status"] == "trained"


@pytest.mark.slow
def test_grid_candidates_from_the_spec_are_expanded_and_trained(aws: Stack) -> None:
    spec = {
        "target": "species",
        "candidates": [{"family": "knn", "grid": {"n_neighbors": [3, 9]}}, "extra_trees"],
    }
    aws.put_spec("penguins", spec)
    run = aws.preprocess(aws.upload("penguins", penguins_bytes()))
    assert run["candidates"] == expand_candidates(run["spec"], "classification")
    assert len(run["candidates"]) == 2 + 4
    trained = aws.train(run)
    assert all(t["status"] == "trained" for t in trained)


# -- cross-validation within a family -------------------------------------------------------------


@pytest.mark.slow
def test_a_cv_candidate_searches_its_grid_and_exports_the_best(aws: Stack) -> None:
    grid = {"max_depth": [2, 6], "min_samples_leaf": [1, 20]}
    spec = {
        "target": "species",
        "metric": "balanced_accuracy",
        "candidates": [
            {"family": "random_forest", "params": {"n_estimators": 20}, "grid": grid, "cv": 3}
        ],
    }
    aws.put_spec("penguins", spec)
    run = aws.preprocess(aws.upload("penguins", penguins_bytes()))
    (candidate,) = run["candidates"]
    (entry,) = aws.train(run)
    assert entry["status"] == "trained", entry["error"]

    cv = entry["cv"]
    assert (cv["folds"], cv["metric"], cv["grid"]) == (3, "balanced_accuracy", grid)
    assert len(cv["points"]) == 4
    assert {json.dumps(p["params"], sort_keys=True) for p in cv["points"]} == {
        json.dumps({"max_depth": d, "min_samples_leaf": leaf}, sort_keys=True)
        for d in grid["max_depth"]
        for leaf in grid["min_samples_leaf"]
    }
    for point in cv["points"]:
        assert len(point["fold_scores"]) == 3
        assert point["mean_score"] == pytest.approx(np.mean(point["fold_scores"]), abs=1e-5)
    best = max(cv["points"], key=lambda p: p["mean_score"])
    assert cv["best_score"] == best["mean_score"]
    assert next(p for p in cv["points"] if p["rank"] == 1)["params"] == cv["best_params"]
    # The reported params are what was fitted: defaults + spec params + the chosen grid point.
    assert entry["params"] == {**candidate["params"], **cv["best_params"]}
    body = aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["sklearn_key"])["Body"].read()
    fitted = joblib.load(io.BytesIO(body)).named_steps["model"]
    assert fitted.get_params()["max_depth"] == cv["best_params"]["max_depth"]
    assert fitted.get_params()["n_estimators"] == 20
    json.dumps(entry, allow_nan=False)  # the Map result must be strict JSON


@pytest.mark.slow
def test_lower_is_better_cv_scores_are_reported_in_metric_units(aws: Stack) -> None:
    spec = {
        "target": "price",
        "metric": "rmse",
        "columns": {"drop": ["id"]},
        "candidates": [{"family": "ridge", "grid": {"alpha": [0.01, 1000.0]}, "cv": 4}],
    }
    aws.put_spec("houses", spec)
    run = aws.preprocess(aws.upload("houses", synthetic_regression(200)))
    (entry,) = aws.train(run)
    cv = entry["cv"]
    assert cv["scoring"] == "neg_root_mean_squared_error"
    scores = {p["params"]["alpha"]: p["mean_score"] for p in cv["points"]}
    assert all(score > 0 for score in scores.values())  # an RMSE, not its negation
    # A huge ridge penalty underfits: the search picks the small one and reports its RMSE.
    assert scores[0.01] < scores[1000.0]
    assert cv["best_params"] == {"alpha": 0.01}
    assert cv["best_score"] == scores[0.01]


@pytest.mark.slow
def test_plain_candidates_report_no_cv(aws: Stack) -> None:
    aws.put_spec("penguins", {"target": "species", "candidates": [{"family": "knn"}]})
    (entry,) = aws.train(aws.preprocess(aws.upload("penguins", penguins_bytes())))
    assert entry["cv"] is None


@pytest.mark.slow
def test_knn_export_uses_cdist_and_keeps_parity(aws: Stack) -> None:
    """k-NN exports with skl2onnx's CDist kernel (the default graph was 5-10x slower than
    scikit-learn, docs/performance.md); its ONNX must still agree with scikit-learn."""
    aws.put_spec("penguins", {"target": "species", "candidates": [{"family": "knn"}]})
    state = aws.run_pipeline("penguins", penguins_bytes())
    (entry,) = state["trained"]
    graph = onnx.load_from_string(
        aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["onnx_key"])["Body"].read()
    )
    assert "CDist" in {node.op_type for node in graph.graph.node}
    best = state["evaluation"]["best"]
    assert best["parity"]["passed"]
    assert best["parity"]["label_agreement"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("family", ["hist_gradient_boosting", "logistic_regression"])
def test_kept_categories_are_bounded_for_high_cardinality_columns(aws: Stack, family: str) -> None:
    """A 300-level column keeps its 64 most frequent levels (a dense one-hot otherwise grows
    with every level); rarer levels and unseen ones encode alike, in scikit-learn and ONNX, as
    ordinal codes (HistGradientBoosting) or one-hot columns (the others)."""
    rng = np.random.default_rng(3)
    rows = 1200
    level = rng.integers(0, 300, size=rows)
    level[: rows // 2] = rng.integers(0, 4, size=rows // 2)  # a few frequent levels
    x = rng.normal(size=rows)
    y = np.where(x + (level < 2) > 0.5, "yes", "no")
    lines = ["x,level,y"] + [f"{a:.4f},L{b},{c}" for a, b, c in zip(x, level, y, strict=True)]
    aws.put_spec("wide", {"target": "y", "candidates": [{"family": family}]})
    state = aws.run_pipeline("wide", "\n".join(lines).encode())
    (entry,) = state["trained"]
    assert entry["status"] == "trained", entry["error"]
    pipeline = joblib.load(
        io.BytesIO(
            aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["sklearn_key"])["Body"].read()
        )
    )
    encoder = pipeline.named_steps["preprocess"].named_transformers_["categorical"]
    assert len(encoder.categories_[0]) == 64
    assert {"L0", "L1", "L2", "L3"} <= set(encoder.categories_[0])
    best = state["evaluation"]["best"]
    assert best["parity"]["passed"]
    assert best["parity"]["label_agreement"] == 1.0


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_hist_gradient_boosting_exports_exactly_on_neighbouring_float32_values(task: str) -> None:
    """Split thresholds between two neighbouring float32 values: skl2onnx rounds them to the
    nearest float32 for this family, which sent half the rows the other way in the graph.
    float32_thresholds lowers them so the graph agrees, and scikit-learn's answers are unchanged."""
    generator = np.random.default_rng(3)
    rows = 20_000
    steps = generator.integers(0, 200, rows)
    neighbours = np.float32(1.0) + steps.astype(np.float32) * np.finfo(np.float32).eps
    numeric = np.stack([neighbours, generator.normal(size=rows).astype(np.float32)], axis=1)
    inputs = np.empty((rows, 2), dtype=object)
    inputs[:] = numeric
    signal = (steps > 100) * 3.0 + (steps % 7) * 0.5
    y = signal + generator.normal(size=rows) * 0.01 if task == "regression" else signal > 2.5
    pipeline = build_pipeline(
        "hist_gradient_boosting", {}, task=task, n_numeric=2, n_categorical=0, seed=0
    ).fit(inputs, y)
    answer = pipeline.predict_proba if task == "classification" else pipeline.predict
    before = answer(inputs)

    assert float32_thresholds(pipeline) > 0

    np.testing.assert_array_equal(answer(inputs), before)
    graph = export_onnx(pipeline, task=task, n_numeric=2, n_categorical=0)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    label, *rest = session.run(None, {"numeric": numeric})
    exported = rest[0] if task == "classification" else label.ravel()
    np.testing.assert_allclose(exported, before, atol=1e-5)
