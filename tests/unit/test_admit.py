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
