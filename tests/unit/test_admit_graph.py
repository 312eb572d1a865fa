"""An imported graph behind the serving contract (mlstack_admit.graph): the columns the graph reads
become the schema's kinds (through Preprocess's own ``prepare``), and the served graph, fed by
``build_inputs`` as every request is, answers what the original model answers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import onnx
import pandas as pd
import pytest
import xgboost
from onnx import TensorProto, helper
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlstack.conversion import convert_file, original_answers
from mlstack_admit.graph import model_task, plan_columns, served_graph
from mlstack_core.contract import load_model
from mlstack_core.contract.request import Batch
from mlstack_core.errors import ImportContractMismatch
from mlstack_core.settings import serving_settings
from mlstack_core.spec import load_spec, resolve_task
from mlstack_core.tabular import prepare, read_csv, target_values

pytestmark = pytest.mark.unit

TARGET = "churned"


def frame(rows: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "customer id": [f"c{i}" for i in range(rows)],
            "tenure (mois)": rng.integers(1, 60, rows).astype(float),
            "plan": rng.choice(["basic", "pro", "équipe"], rows),
            "charges": rng.normal(70, 20, rows).round(2),
        }
    )
    data.loc[rng.random(rows) < 0.05, "charges"] = np.nan
    signal = (data["plan"] == "basic").astype(float) - data["tenure (mois)"] / 30
    data[TARGET] = np.where(signal + rng.normal(0, 0.5, rows) > -0.5, "yes", "no")
    return data


def csv_bytes(data: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    data.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def served(onnx_model: onnx.ModelProto, data: pd.DataFrame, dropped: list[str]) -> Any:
    """The served graph loaded as a version is, its schema from ``prepare`` on the holdout."""
    plan = plan_columns(onnx_model, list(data.columns), TARGET, dropped)
    spec = load_spec(
        json.dumps(
            {"target": TARGET, "columns": {"types": plan.kinds, "drop": [*dropped, *plan.dropped]}}
        ).encode()
    )
    # As Preprocess reads a dataset: the spec's dropped columns are not kept.
    table = read_csv(csv_bytes(data), skip=spec["columns"]["drop"])
    spec = resolve_task(spec, target_values(table, TARGET))
    schema = prepare(table, spec).schema
    graph = served_graph(onnx_model, plan)
    loaded = load_model(graph.SerializeToString(), {"schema": schema}, serving_settings())
    return plan, schema, loaded


def records(data: pd.DataFrame, columns: list[str]) -> Batch:
    rows = data[columns].astype(object).where(data[columns].notna(), None)
    return Batch.of_columns(columns, rows.values.tolist())


@pytest.mark.parametrize(
    "estimator",
    [LogisticRegression(max_iter=1000), lightgbm.LGBMClassifier(n_estimators=25, verbose=-1)],
    ids=["logistic_regression", "lightgbm"],
)
def test_a_pipeline_read_by_column_answers_through_the_contract_as_the_original(
    tmp_path: Path, estimator: Any
) -> None:
    data = frame()
    features = ["tenure (mois)", "plan", "charges"]
    pipeline = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numbers", SimpleImputer(), ["tenure (mois)", "charges"]),
                        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", estimator),
        ]
    ).fit(data[features], data[TARGET])
    joblib.dump(pipeline, tmp_path / "model.joblib")
    converted = convert_file(tmp_path / "model.joblib", data, features)
    model = onnx.load_from_string(converted.onnx)
    plan, schema, loaded = served(model, data, dropped=[])
    # The identifier the pipeline never reads is left out; the kinds are what the graph takes.
    assert plan.dropped == ["customer id"]
    assert schema["numeric"] == ["tenure (mois)", "charges"]
    assert schema["categorical"] == ["plan"]
    _, (labels, probabilities) = loaded.run_request(records(data, features))
    expected = original_answers(pipeline, data, features)
    assert np.asarray(labels).ravel().tolist() == expected["labels"]
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=1e-5)


def test_a_model_read_as_one_matrix_gets_the_numeric_columns_in_file_order(tmp_path: Path) -> None:
    data = frame()
    numbers = ["tenure (mois)", "charges"]
    # A quantity to predict in the target's place.
    data[TARGET] = (data["tenure (mois)"] * 2 + data["charges"].fillna(0)).round(3)
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3).fit(
        data[numbers].to_numpy(np.float32), data[TARGET]
    )
    joblib.dump(model, tmp_path / "model.joblib")
    converted = convert_file(tmp_path / "model.joblib", data, numbers)
    graph = onnx.load_from_string(converted.onnx)
    assert model_task(graph) == "regression"
    plan, schema, loaded = served(graph, data, dropped=["customer id", "plan"])
    assert plan.matrix is not None
    assert schema["numeric"] == numbers
    _, (values,) = loaded.run_request(records(data, numbers))
    expected = original_answers(model, data, numbers)
    np.testing.assert_allclose(np.asarray(values).ravel(), expected["values"], rtol=1e-5)


def one_input(name: str, elem_type: int, shape: list[Any]) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], ["y"])],
        "g",
        [helper.make_tensor_value_info(name, elem_type, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("model", "says"),
    [
        (one_input("salary", TensorProto.FLOAT, [None, 1]), "'salary' (float [None, 1]) is not"),
        (one_input("churned", TensorProto.FLOAT, [None, 1]), "'churned' is the target column"),
        (one_input("plan", TensorProto.FLOAT, [None, 3]), "has shape [None, 3]"),
        (one_input("input", TensorProto.FLOAT, [None, 7]), "nor a matrix of its 4 feature"),
        (one_input("input", TensorProto.STRING, [None, 4]), "(string [None, 4]) is not"),
    ],
    ids=["unknown_column", "target", "wide_column", "matrix_width", "string_matrix"],
)
def test_inputs_that_do_not_fit_the_holdout_are_refused_naming_them(
    model: onnx.ModelProto, says: str
) -> None:
    with pytest.raises(ImportContractMismatch, match=".*".join(map(_escaped, [says]))):
        plan_columns(model, list(frame(10).columns), TARGET)


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_a_zipmap_classifier_is_refused_with_what_to_do() -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["label"]),
            helper.make_node("Identity", ["x"], ["p"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [None])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_value_info(
                "p",
                helper.make_sequence_type_proto(
                    helper.make_map_type_proto(
                        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
                    )
                ),
            ),
        ],
    )
    with pytest.raises(ImportContractMismatch, match="zipmap"):
        model_task(helper.make_model(graph))


def test_a_column_read_as_a_vector_by_an_opset_10_graph_is_fed_as_one() -> None:
    """A graph of opset 10 whose inputs are [N] vectors (an int64 one among them): the front
    nodes slice, flatten and cast each column as it declares it."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["count"], ["count_float"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["amount", "count_float"], ["total"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("amount", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("count", TensorProto.INT64, [None]),
        ],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    plan = plan_columns(model, ["count", "amount", "y"], "y")
    served = served_graph(model, plan)
    import onnxruntime as ort

    session = ort.InferenceSession(served.SerializeToString(), providers=["CPUExecutionProvider"])
    numbers = np.array([[2.0, 0.5], [3.0, 1.25]], dtype=np.float32)  # count, amount: file order
    (variable,) = session.run(None, {"numeric": numbers})
    assert variable.tolist() == [[2.5], [4.25]]
