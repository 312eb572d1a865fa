"""InspectImport and PrepareImport through their handlers (moto): an upload as ``mlstack import``
makes it becomes one candidate that Evaluate measures as it measures a trained one, parity
against the original's answers included; what cannot be admitted fails by name before anything
is stored."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstack_core.errors import ExternalDataRefused, ImportContractMismatch
from tests.helpers.imports import admitted_run, import_event, with_external_data
from tests.helpers.stack import Stack, load_handler

pytestmark = pytest.mark.slow

TARGET = "churned"


def churn(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows),
            "charges": rng.normal(70, 20, rows).round(2),
            "note id": [f"n-{seed}-{i}" for i in range(rows)],
        }
    )
    signal = (data["plan"] == "basic") * 1.5 - data["tenure"] / 24
    data[TARGET] = np.where(signal + rng.normal(0, 0.6, rows) > -0.5, "yes", "no")
    return data


def fitted(data: pd.DataFrame) -> Pipeline:
    features = ["tenure", "plan", "charges"]
    return Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numbers", StandardScaler(), ["tenure", "charges"]),
                        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(data[features], data[TARGET])


def files(tmp_path: Path, model: Any, holdout: pd.DataFrame) -> tuple[Path, Path]:
    joblib.dump(model, tmp_path / "model.joblib")
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    return tmp_path / "model.joblib", tmp_path / "holdout.csv"


def test_an_imported_pipeline_is_measured_as_a_trained_candidate(
    aws: Stack, tmp_path: Path
) -> None:
    model_file, holdout = files(tmp_path, fitted(churn(800, 1)), churn(400, 2))
    churn(300, 3).to_csv(tmp_path / "sample.csv", index=False)
    event = import_event(
        aws, "churn", model_file, holdout, TARGET, train_sample=tmp_path / "sample.csv"
    )
    state = admitted_run(aws, event)
    run, evaluation = state["run"], state["evaluation"]
    assert run["splits"]["holdout_rows"] == 400
    assert run["splits"]["train_rows"] == 300  # the sample: baseline and background
    assert run["splits"]["judged_on"] == "holdout"
    assert run["schema"]["numeric"] == ["tenure", "charges"]
    assert run["schema"]["categorical"] == ["plan"]
    assert run["schema"]["classes"] == ["no", "yes"]
    assert run["imported"]["source"] == "scikit-learn"
    assert run["imported"]["uploaded_by"] == "123456789012"
    best = evaluation["best"]
    assert best["candidate_id"] == "imported"
    assert best["parity"]["passed"]
    assert best["parity"]["label_agreement"] == 1.0
    assert evaluation["decision"] == "promote"  # the first version: it beats the baseline
    assert evaluation["rehearsal"]["passed"]


def test_a_hostile_file_stops_the_run_before_anything_is_stored(aws: Stack, tmp_path: Path) -> None:
    model_file, holdout = files(tmp_path, fitted(churn(400, 1)), churn(200, 2))
    event = import_event(aws, "churn", model_file, holdout, TARGET)
    onnx_key = f"imports/churn/{event['dataset']['key'].split('/')[2]}/model.onnx"
    hostile = with_external_data(
        aws.s3.get_object(Bucket=aws.data_bucket, Key=onnx_key)["Body"].read(),
        "/proc/self/environ",
    )
    aws.s3.put_object(Bucket=aws.data_bucket, Key=onnx_key, Body=hostile)
    manifest = aws.s3.get_object(Bucket=aws.data_bucket, Key=event["dataset"]["key"])
    document = json.loads(manifest["Body"].read())
    document["onnx_sha256"] = hashlib.sha256(hostile).hexdigest()
    put = aws.s3.put_object(
        Bucket=aws.data_bucket, Key=event["dataset"]["key"], Body=json.dumps(document).encode()
    )
    event["dataset"]["version_id"] = put.get("VersionId")
    with pytest.raises(ExternalDataRefused, match="/proc/self/environ"):
        load_handler("admit")(event, aws.context)
    stored = aws.s3.list_objects_v2(Bucket=aws.model_bucket).get("Contents", [])
    assert stored == []


def test_a_holdout_whose_labels_the_model_never_answers_is_refused(
    aws: Stack, tmp_path: Path
) -> None:
    holdout = churn(200, 2)
    holdout.loc[:4, TARGET] = "maybe"
    model_file, holdout_file = files(tmp_path, fitted(churn(400, 1)), holdout)
    event = import_event(aws, "churn", model_file, holdout_file, TARGET)
    with pytest.raises(ImportContractMismatch, match="'maybe' the model never answers"):
        load_handler("admit")(event, aws.context)


@pytest.mark.parametrize(
    "labels",
    [
        {"yes": 1, "no": 0},
        {"yes": 3, "no": 7},
        {"yes": "True", "no": "False"},
    ],
    ids=["zero_one", "other_integers", "true_false"],
)
def test_labels_of_other_kinds_keep_their_classes_through_the_gate(
    aws: Stack, tmp_path: Path, labels: dict[str, Any]
) -> None:
    """Integer and True/False labels: the schema's classes are the model's, typed as the
    holdout's labels are, and parity holds."""
    train, holdout = churn(600, 1), churn(300, 2)
    for data in (train, holdout):
        data[TARGET] = data[TARGET].map(labels)
    model_file, holdout_file = files(tmp_path, fitted(train), holdout)
    state = admitted_run(aws, import_event(aws, "churn", model_file, holdout_file, TARGET))
    best = state["evaluation"]["best"]
    assert best["parity"]["passed"], best["excluded"]
    assert [str(c) for c in state["run"]["schema"]["classes"]] == sorted(
        str(v) for v in labels.values()
    )
    assert state["evaluation"]["decision"] == "promote"


def shaped(kind: str, rows: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """A table of one shape users bring, its label following its features (``"no signal"``: a
    coin flip), and the columns a notebook's pipeline would read."""
    rng = np.random.default_rng(seed)
    if kind == "all categorical":
        data = pd.DataFrame(
            {c: rng.choice(["a", "b", "c", "d"], rows) for c in ("plan", "région", "channel")}
        )
        signal = (data["plan"] == "a") * 2.0 + (data["région"] == "b")
        features = ["plan", "région", "channel"]
    elif kind == "one feature":
        data = pd.DataFrame({"tenure": rng.normal(0, 1, rows).round(3)})
        signal, features = data["tenure"] * 2, ["tenure"]
    elif kind == "hundreds of columns":
        data = pd.DataFrame(rng.normal(0, 1, (rows, 200)).round(3)).add_prefix("x ")
        signal, features = data["x 0"] * 2 + data["x 1"], list(data.columns)
    elif kind == "dates, free text and an identifier":
        days = pd.to_datetime("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D")
        data = pd.DataFrame(
            {
                "customer id": [f"c-{i:05d}" for i in range(rows)],
                "signed": days.strftime("%Y-%m-%d"),
                "note": rng.choice(
                    ["late again", "happy with the service", "asked to cancel"], rows
                ),
                "tenure": rng.integers(1, 72, rows).astype(float),
            }
        )
        signal = (data["note"] == "asked to cancel") * 2.0 - data["tenure"] / 36
        features = ["signed", "note", "tenure"]  # the identifier is not read
    else:  # no signal
        data = pd.DataFrame(
            {"a": rng.normal(0, 1, rows).round(3), "b": rng.choice(["x", "y"], rows)}
        )
        signal, features = pd.Series(np.zeros(rows)), ["a", "b"]
    noise = rng.normal(0, 0.7 if kind != "no signal" else 1.0, rows)
    data[TARGET] = np.where(signal + noise > np.median(signal + noise), "yes", "no")
    return data, features


def notebook_pipeline(data: pd.DataFrame, features: list[str]) -> Pipeline:
    numbers = [c for c in features if pd.api.types.is_numeric_dtype(data[c])]
    strings = [c for c in features if c not in numbers]
    parts: list[tuple[str, Any, list[str]]] = []
    if numbers:
        parts.append(("numbers", StandardScaler(), numbers))
    if strings:
        parts.append(("strings", OneHotEncoder(handle_unknown="ignore"), strings))
    return Pipeline(
        [("preprocess", ColumnTransformer(parts)), ("model", LogisticRegression(max_iter=1000))]
    ).fit(data[features], data[TARGET])


@pytest.mark.parametrize(
    "kind",
    ["all categorical", "one feature", "hundreds of columns", "dates, free text and an identifier"],
)
def test_imports_of_the_shapes_users_bring_pass_parity_and_the_gate(
    aws: Stack, tmp_path: Path, kind: str
) -> None:
    """The graph reads what the pipeline read, as the kinds its inputs declare (a date or a text
    read as strings is categorical; an identifier it never reads is no feature), and answers as
    the original through the serving contract."""
    train, features = shaped(kind, 800, 1)
    holdout, _ = shaped(kind, 500, 2)
    model_file, holdout_file = files(tmp_path, notebook_pipeline(train, features), holdout)
    state = admitted_run(aws, import_event(aws, "shapes", model_file, holdout_file, TARGET))
    schema, best = state["run"]["schema"], state["evaluation"]["best"]
    assert sorted([*schema["numeric"], *schema["categorical"]]) == sorted(features)
    assert not schema["datetime"]
    assert not schema["text"]
    assert best["parity"]["passed"], best["excluded"]
    assert state["evaluation"]["decision"] == "promote", state["evaluation"]["reasons"]


def test_an_import_that_learned_nothing_is_not_promoted(aws: Stack, tmp_path: Path) -> None:
    """A first version imported from a table whose label is a coin flip: parity holds, and the
    gate rejects it against the trivial baseline, as it would a trained one."""
    train, features = shaped("no signal", 800, 1)
    holdout, _ = shaped("no signal", 500, 2)
    model_file, holdout_file = files(tmp_path, notebook_pipeline(train, features), holdout)
    state = admitted_run(aws, import_event(aws, "noise", model_file, holdout_file, TARGET))
    evaluation = state["evaluation"]
    assert evaluation["best"]["parity"]["passed"]
    assert evaluation["decision"] == "reject"
    assert evaluation.get("error") == "NotBetterThanBaseline", evaluation["reasons"]
