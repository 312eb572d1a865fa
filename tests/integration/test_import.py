"""``mlstack import`` end to end in the local cloud: the CLI converts and uploads, the manifest
starts the training state machine (statemachine/training.asl.json), InspectImport and
PrepareImport admit the model, Evaluate gates it against production, Register serves it; the
HTTP API then answers what the original answers. A worse import is rejected and a hostile file
refused, production unchanged."""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstack.cli.importing import prepare_import, upload_import
from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.conversion import original_answers
from mlstack.localcloud import LocalCloud
from tests.helpers import ROOT
from tests.helpers.imports import with_external_data
from tests.helpers.local_cloud import AlertInbox

pytestmark = pytest.mark.integration

TARGET = "churned"
FEATURES = ["tenure", "plan", "monthly charges"]
NUMBERS = ["tenure", "monthly charges"]


def churn(rows: int, seed: int, noise: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, rows).astype(float),
            "plan": rng.choice(["basic", "pro", "équipe"], rows),
            "monthly charges": rng.normal(70, 20, rows).round(2),
        }
    )
    data.loc[rng.random(rows) < 0.03, "monthly charges"] = np.nan
    signal = (data["plan"] == "basic") * 1.5 - data["tenure"] / 24
    labels = np.where(signal + rng.normal(0, 0.5, rows) > -0.5, "yes", "no")
    flip = rng.random(rows) < noise
    labels[flip] = np.where(labels[flip] == "yes", "no", "yes")
    data[TARGET] = labels
    return data


def pipeline(estimator: Any) -> Pipeline:
    """Numbers imputed and scaled for a linear model; a tree ensemble takes them as they are
    (missing values included), so float32 inputs cross no split a float64 input would not."""
    trees = isinstance(estimator, lightgbm.LGBMClassifier)
    numbers: Any = (
        "passthrough"
        if trees
        else Pipeline([("fill", SimpleImputer()), ("scale", StandardScaler())])
    )
    return Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numbers", numbers, NUMBERS),
                        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("model", estimator),
        ]
    )


def instances(data: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    rows = data[columns].astype(object).where(data[columns].notna(), None)
    return [dict(zip(columns, row, strict=True)) for row in rows.values.tolist()]


def imported(
    tmp_path: Path, stack: StackClient, model: str, original: Any, holdout: pd.DataFrame, *more: str
) -> int:
    """``mlstack import MODEL model.joblib --holdout holdout.csv --target churned --wait``."""
    joblib.dump(original, tmp_path / "model.joblib")
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    return main(
        [
            "import",
            model,
            str(tmp_path / "model.joblib"),
            "--holdout",
            str(tmp_path / "holdout.csv"),
            "--target",
            TARGET,
            "--wait",
            *more,
        ]
    )


def served_like_the_original(
    stack: StackClient, model: str, original: Any, rows: pd.DataFrame, columns: list[str]
) -> dict[str, Any]:
    response = stack.predict(model, instances(rows, columns))
    assert response.status == 200, response.body
    expected = original_answers(original, rows, columns)
    if "probabilities" in expected:
        assert response.body["predictions"] == expected["labels"]
        assert response.body["classes"] == expected["classes"]
        np.testing.assert_allclose(
            response.body["probabilities"], expected["probabilities"], atol=1e-4
        )
    else:
        np.testing.assert_allclose(response.body["predictions"], expected["values"], rtol=1e-4)
    document: dict[str, Any] = dict(stack.registry.get_version(model, response.body["version"]))
    return document


@pytest.mark.parametrize(
    "estimator",
    [LogisticRegression(max_iter=1000), lightgbm.LGBMClassifier(n_estimators=40, verbose=-1)],
    ids=["scikit-learn", "lightgbm"],
)
def test_an_imported_pipeline_is_served_answering_as_the_original(
    tmp_path: Path, cloud: LocalCloud, stack: StackClient, estimator: Any
) -> None:
    model = f"import-{type(estimator).__name__.lower()}"
    original = pipeline(estimator).fit(churn(1500, 1)[FEATURES], churn(1500, 1)[TARGET])
    churn(400, 3).to_csv(tmp_path / "sample.csv", index=False)
    code = imported(
        tmp_path,
        stack,
        model,
        original,
        churn(600, 2),
        "--train-sample",
        str(tmp_path / "sample.csv"),
    )
    assert code == 0
    document = served_like_the_original(stack, model, original, churn(50, 4), FEATURES)
    assert document["status"] == "Approved"
    lineage = document["imported"]
    assert lineage["source"] == (
        "lightgbm" if "LGBM" in type(estimator).__name__ else "scikit-learn"
    )
    assert (
        lineage["file_sha256"]
        == hashlib.sha256((tmp_path / "model.joblib").read_bytes()).hexdigest()
    )
    assert lineage["training_sample"] is True
    assert "skl2onnx" in lineage["libraries"]
    assert document["parity"]["passed"]
    # As for a trained version: explanations against its background rows, and its card.
    rows = instances(churn(3, 5), FEATURES)
    explained = stack.explain(model, rows)
    assert explained.status == 200, explained.body
    for row, probabilities in zip(
        explained.body["explanations"], explained.body["probabilities"], strict=True
    ):
        total = np.asarray(row["base"]) + np.sum(list(row["contributions"].values()), axis=0)
        np.testing.assert_allclose(total, probabilities, atol=1e-5)
        assert set(row["contributions"]) == set(FEATURES)
    assert main(["card", model, "--out", str(tmp_path)]) == 0
    card = (tmp_path / "card.md").read_text()
    assert "Imported (`mlstack import`), not trained by the stack" in card


def test_an_xgboost_model_and_an_onnx_file_are_served_as_imported(
    tmp_path: Path, cloud: LocalCloud, stack: StackClient
) -> None:
    """A bare XGBoost regressor (one matrix of the numeric columns), then the same graph brought
    as an ONNX file: both answer over HTTP what the original answers."""
    train, holdout = churn(1500, 1), churn(600, 2)
    for data in (train, holdout):
        data[TARGET] = (3 * data["tenure"] + data["monthly charges"].fillna(70)).round(2)
    original = xgboost.XGBRegressor(n_estimators=40, max_depth=4).fit(
        train[NUMBERS].to_numpy(np.float32), train[TARGET]
    )
    holdout = holdout[[*NUMBERS, TARGET]]
    assert imported(tmp_path, stack, "import-xgboost", original, holdout) == 0
    document = served_like_the_original(
        stack, "import-xgboost", original, holdout.head(40), NUMBERS
    )
    assert document["imported"]["source"] == "xgboost"
    # Monitored and batch-scored like a trained version: a drift baseline (from the holdout,
    # no sample was given) beside it, and a scoring job answering as the original.
    assert {"baseline", "background"} <= set(document["files"])
    holdout.head(30).to_csv(tmp_path / "batch.csv", index=False)
    scored_file = tmp_path / "scored.csv"
    batch = str(tmp_path / "batch.csv")
    assert main(["score", "import-xgboost", batch, "--output", str(scored_file)]) == 0
    scored = pd.read_csv(scored_file)
    expected = original_answers(original, holdout.head(30), NUMBERS)
    np.testing.assert_allclose(scored["prediction"], expected["values"], rtol=1e-4)

    onnx_file = tmp_path / "colleague.onnx"
    converted = (
        cloud.client("s3")
        .get_object(
            Bucket=cloud.outputs["DataBucketName"],
            Key=document["imported"]["manifest_key"].replace("manifest.json", "model.onnx"),
        )["Body"]
        .read()
    )
    onnx_file.write_bytes(converted)
    code = main(
        [
            "import",
            "import-onnx",
            str(onnx_file),
            "--holdout",
            str(tmp_path / "holdout.csv"),
            "--target",
            TARGET,
            "--wait",
        ]
    )
    assert code == 0
    onnx_document = served_like_the_original(
        stack, "import-onnx", original, holdout.head(40), NUMBERS
    )
    assert onnx_document["imported"]["source"] == "onnx"


def test_a_worse_import_is_rejected_and_a_hostile_file_refused_production_unchanged(
    tmp_path: Path, cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    model = "import-gated"
    good = pipeline(LogisticRegression(max_iter=1000)).fit(
        churn(1500, 1)[FEATURES], churn(1500, 1)[TARGET]
    )
    holdout = churn(800, 2)
    assert imported(tmp_path, stack, model, good, holdout) == 0
    production = stack.registry.get_alias(model)

    noisy = churn(1500, 5, noise=0.45)
    worse = pipeline(LogisticRegression(max_iter=1000)).fit(noisy[FEATURES], noisy[TARGET])
    # The run ends as a rejected training run does: it succeeded, its version is Rejected.
    assert imported(tmp_path, stack, model, worse, holdout) == 0
    assert stack.registry.get_alias(model) == production
    (latest,) = stack.registry.list_versions(model)[-1:]
    assert latest["status"] == "Rejected"
    assert any("NotBetterThanProduction" in r for r in latest.get("decision_reasons", []))

    # A file whose tensor reads a path of the uploader's choosing, uploaded past the CLI (whose
    # own onnxruntime would refuse it first), as an attacker with write access would: refused
    # by name in the stack, no version, an alert.
    alerts.drain()
    joblib.dump(good, tmp_path / "good.joblib")
    upload = prepare_import(model, tmp_path / "good.joblib", tmp_path / "holdout.csv", TARGET)
    hostile = with_external_data(upload.files["model.onnx"], "/etc/shadow")
    upload.files["model.onnx"] = hostile
    upload.manifest["onnx_sha256"] = hashlib.sha256(hostile).hexdigest()
    versions = len(stack.registry.list_versions(model))
    manifest = upload_import(cloud.client("s3"), cloud.outputs["DataBucketName"], model, upload)
    result = cloud.wait_for_execution(stack.find_execution(manifest))
    assert result["status"] == "FAILED"
    assert stack.registry.get_alias(model) == production
    assert len(stack.registry.list_versions(model)) == versions
    failed = [
        json.loads(m["Message"]) for m in alerts.drain() if "ExternalDataRefused" in m["Message"]
    ]
    assert failed, "no alert named the refusal"
    assert "/etc/shadow" in json.dumps(failed[0])


def test_the_readmes_notebook_model_imports_as_the_readme_says(
    tmp_path: Path, stack: StackClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/churn/notebook.py, then the README's command: a first version in production,
    the command saying the name is new (and which names the stack knows, a typo's fix)."""
    runpy.run_path(str(ROOT / "examples/churn/notebook.py"))["main"](tmp_path)
    code = main(
        [
            "import",
            "churn-notebook",
            str(tmp_path / "model.joblib"),
            "--holdout",
            str(tmp_path / "holdout.csv"),
            "--target",
            "churned",
            "--wait",
        ]
    )
    assert code == 0
    assert "no model named 'churn-notebook'; models: " in capsys.readouterr().out
    version = stack.registry.get_alias("churn-notebook")
    assert version is not None
    lineage: Mapping[str, Any] = (
        stack.registry.get_version("churn-notebook", version).get("imported") or {}
    )
    assert lineage.get("source") == "scikit-learn"
