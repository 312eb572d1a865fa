"""``mlstack import``'s conversion on the user's machine (mlstack.conversion): scikit-learn
pipelines, LightGBM and XGBoost models become ONNX graphs that answer what the originals answer;
what skl2onnx cannot carry is refused before anything converts, naming the step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import xgboost
from pandas.api.types import is_numeric_dtype
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mlstack.cli.main import main
from mlstack.conversion import (
    MATRIX_INPUT,
    ModelNotConvertible,
    convert_file,
    original_answers,
)

pytestmark = pytest.mark.unit


def table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "âge": rng.normal(40, 10, rows).round(1),
            "income": rng.normal(50, 20, rows).round(2),
            "city": rng.choice(["Lyon", "Oslo", "Tōkyō"], rows),
        }
    )
    signal = (frame["âge"] - 40) / 10 + (frame["city"] == "Oslo")
    frame["churned"] = np.where(signal + rng.normal(0, 0.7, rows) > 0.3, "yes", "no")
    frame["spend"] = 3 * frame["income"] + 20 * (frame["city"] == "Lyon") + rng.normal(0, 5, rows)
    return frame


FEATURES = ["âge", "income", "city"]


def preprocess(numeric: Any = None, categorical: Any = None) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numbers", numeric or StandardScaler(), ["âge", "income"]),
            ("words", categorical or OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )


def served(onnx_bytes: bytes, frame: pd.DataFrame, features: list[str]) -> list[np.ndarray]:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names == [MATRIX_INPUT]:
        feeds = {MATRIX_INPUT: frame[features].to_numpy(np.float32)}
    else:
        feeds = {
            name: frame[[name]].to_numpy(
                np.float32 if is_numeric_dtype(frame[name].dtype) else object
            )
            for name in names
        }
    return list(session.run(None, feeds))


def saved(tmp_path: Path, model: Any) -> Path:
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    return path


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=500),
        lightgbm.LGBMClassifier(n_estimators=30, verbose=-1),
    ],
    ids=["logistic_regression", "lightgbm"],
)
def test_a_classifier_pipeline_answers_as_the_original(tmp_path: Path, estimator: Any) -> None:
    frame = table()
    pipeline = Pipeline([("preprocess", preprocess()), ("model", estimator)]).fit(
        frame[FEATURES], frame["churned"]
    )
    converted = convert_file(saved(tmp_path, pipeline), frame, FEATURES)
    expected = original_answers(converted.original, frame, FEATURES)
    labels, probabilities = served(converted.onnx, frame, FEATURES)
    assert expected["classes"] == ["no", "yes"]
    assert labels.tolist() == expected["labels"]
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=1e-5)
    assert converted.source == (
        "lightgbm" if "LGBM" in type(estimator).__name__ else "scikit-learn"
    )
    assert {"scikit-learn", "skl2onnx", "onnx"} <= set(converted.libraries)


def test_an_xgboost_model_on_a_bare_matrix_takes_one_input_in_the_holdouts_order(
    tmp_path: Path,
) -> None:
    frame = table()
    numbers = ["âge", "income"]
    model = xgboost.XGBRegressor(n_estimators=30, max_depth=3).fit(
        frame[numbers].to_numpy(np.float32), frame["spend"]
    )
    converted = convert_file(saved(tmp_path, model), frame, numbers)
    (values,) = served(converted.onnx, frame, numbers)
    expected = original_answers(converted.original, frame, numbers)
    np.testing.assert_allclose(values.ravel(), expected["values"], rtol=1e-5, atol=1e-3)
    assert converted.source == "xgboost"
    assert "onnxmltools" in converted.libraries


def test_a_regression_pipeline_with_an_identity_function_transformer_converts(
    tmp_path: Path,
) -> None:
    frame = table()
    pipeline = Pipeline(
        [("preprocess", preprocess(numeric=FunctionTransformer())), ("model", Ridge())]
    ).fit(frame[FEATURES], frame["spend"])
    converted = convert_file(saved(tmp_path, pipeline), frame, FEATURES)
    (values,) = served(converted.onnx, frame, FEATURES)
    expected = original_answers(converted.original, frame, FEATURES)
    np.testing.assert_allclose(values.ravel(), expected["values"], rtol=1e-4)


class Doubled(BaseEstimator, TransformerMixin):
    def fit(self, x: Any, y: Any = None) -> Doubled:
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x, dtype=float) * 2


@pytest.mark.parametrize(
    ("numeric", "categorical", "named", "says"),
    [
        (Doubled(), None, "preprocess/numbers", "no ONNX converter knows"),
        (
            FunctionTransformer(np.tanh),
            None,
            "preprocess/numbers",
            "FunctionTransformer(func=tanh)",
        ),
        (
            None,
            Pipeline(
                [("fill", SimpleImputer(strategy="most_frequent")), ("code", OneHotEncoder())]
            ),
            "preprocess/words/fill",
            "SimpleImputer on string columns (city)",
        ),
    ],
    ids=["own_transformer", "function_transformer", "string_imputer"],
)
def test_what_skl2onnx_cannot_carry_is_refused_naming_the_step(
    tmp_path: Path, numeric: Any, categorical: Any, named: str, says: str
) -> None:
    frame = table()
    pipeline = Pipeline(
        [("preprocess", preprocess(numeric, categorical)), ("model", LogisticRegression())]
    ).fit(frame[FEATURES], frame["churned"])
    with pytest.raises(ModelNotConvertible) as refused:
        convert_file(saved(tmp_path, pipeline), frame, FEATURES)
    assert f"step {named!r}" in str(refused.value)
    assert says in str(refused.value)


def test_an_onnx_file_is_taken_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "colleague.onnx"
    path.write_bytes(b"\x08\x07not checked here")
    converted = convert_file(path, table(), FEATURES)
    assert converted.onnx == path.read_bytes()
    assert converted.source == "onnx"
    assert converted.original is None
    assert len(converted.file_sha256) == 64


def test_a_file_of_another_kind_is_refused_by_its_suffix(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"")
    with pytest.raises(ModelNotConvertible.__mro__[1], match=r"\.joblib .* or \.onnx"):
        convert_file(path, table(), FEATURES)


def test_an_xgboost_classifier_as_a_pipelines_last_step_and_a_bare_lightgbm_regressor(
    tmp_path: Path,
) -> None:
    frame = table()
    numbers = ["âge", "income"]
    xgb_pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numbers", "passthrough", numbers),
                        ("words", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                    ]
                ),
            ),
            ("model", xgboost.XGBClassifier(n_estimators=20, max_depth=3)),
        ]
    ).fit(frame[FEATURES], (frame["churned"] == "yes").astype(int))
    converted = convert_file(saved(tmp_path, xgb_pipeline), frame, FEATURES)
    labels, probabilities = served(converted.onnx, frame, FEATURES)
    expected = original_answers(converted.original, frame, FEATURES)
    assert converted.source == "xgboost"
    assert labels.tolist() == expected["labels"]
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=1e-5)

    regressor = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(
        frame[numbers], frame["spend"]
    )
    converted = convert_file(saved(tmp_path, regressor), frame, numbers)
    (values,) = served(converted.onnx, frame, numbers)
    expected = original_answers(converted.original, frame, numbers)
    assert converted.source == "lightgbm"
    np.testing.assert_allclose(values.ravel(), expected["values"], rtol=1e-4, atol=1e-3)


def test_mlstack_import_refuses_an_unconvertible_model_before_reaching_any_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 (the command as given cannot run), the step named, and nothing asked of AWS: the
    stack name given exists nowhere."""
    frame = table()
    pipeline = Pipeline(
        [
            ("preprocess", preprocess(numeric=FunctionTransformer(np.tanh))),
            ("model", LogisticRegression()),
        ]
    ).fit(frame[FEATURES], frame["churned"])
    frame.to_csv(tmp_path / "holdout.csv", index=False)
    code = main(
        [
            "--stack",
            "no-such-stack",
            "import",
            "churn",
            str(saved(tmp_path, pipeline)),
            "--holdout",
            str(tmp_path / "holdout.csv"),
            "--target",
            "churned",
        ]
    )
    assert code == 2
    printed = capsys.readouterr()
    assert (
        "step 'preprocess/numbers' is FunctionTransformer(func=tanh)" in printed.out + printed.err
    )


def test_mlstack_import_without_its_extra_says_which_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxmltools" else found(name)
    )
    code = main(["import", "churn", str(tmp_path / "m.joblib"), "--holdout", "h", "--target", "t"])
    assert code == 2
    printed = capsys.readouterr()
    assert "needs onnxmltools: pip install 'mlstack[import]'" in printed.out + printed.err
