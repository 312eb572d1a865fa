"""Fixtures for the prediction function: real ONNX models, a mocked registry, API Gateway events.

Import this module before the handler: it sets the Powertools environment the observability module
reads at import time. scikit-learn and skl2onnx are used here only to build the fixtures; the
serving code under test never imports them.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from mlstack_core.documents import Artifact, VersionDocument

for _name, _value in {
    "POWERTOOLS_SERVICE_NAME": "predict",
    "POWERTOOLS_METRICS_NAMESPACE": "mlstack",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}.items():
    os.environ.setdefault(_name, _value)

from mlstack_core.registry import Registry  # noqa: E402 - needs the environment above
from mlstack_core.settings import serving_settings, stack_settings  # noqa: E402
from tests.helpers import ROOT  # noqa: E402
from tests.helpers.lambda_context import FakeLambdaContext  # noqa: E402

EVENTS = ROOT / "tests" / "events"
FUNCTION_DIR = ROOT / "functions" / "predict"
MODEL_BUCKET = "mlstack-test-models"
REGISTRY_TABLE = "mlstack-test-registry"

NUMERIC = ["bill_length_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex", "year"]
CATEGORIES = {
    "island": ["Biscoe", "Dream", "Torgersen"],
    "sex": ["female", "male"],
    "year": ["2007", "2008", "2009"],
}
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


# data ---------------------------------------------------------------------------------------------
def mixed_records(n: int, seed: int = 0, missing: float = 0.1) -> list[dict[str, Any]]:
    """Penguin-like records as a client would send them, with nulls in every column."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        record: dict[str, Any] = {
            "bill_length_mm": round(float(rng.normal(44, 5)), 1),
            "flipper_length_mm": int(rng.integers(170, 235)),
            "body_mass_g": round(float(rng.normal(4200, 800)), 0),
            "island": str(rng.choice(CATEGORIES["island"])),
            "sex": str(rng.choice(CATEGORIES["sex"])),
            "year": str(rng.choice(CATEGORIES["year"])),
        }
        for column in NUMERIC + CATEGORICAL:
            if rng.random() < missing:
                record[column] = None
        records.append(record)
    return records


def to_matrix(records: list[dict[str, Any]]) -> np.ndarray:
    """Records → the object matrix [numeric..., categorical...] the training pipeline sees."""
    matrix = np.empty((len(records), len(NUMERIC) + len(CATEGORICAL)), dtype=object)
    for i, record in enumerate(records):
        for j, column in enumerate(NUMERIC):
            value = record[column]
            matrix[i, j] = np.nan if value is None else float(value)
        for j, column in enumerate(CATEGORICAL, start=len(NUMERIC)):
            value = record[column]
            matrix[i, j] = "" if value is None else str(value)
    return matrix


def species_labels(records: list[dict[str, Any]], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    labels = []
    for record in records:
        bill = record["bill_length_mm"] or 44.0
        flipper = record["flipper_length_mm"] or 200
        score = (bill - 44) / 5 + (flipper - 200) / 15 + rng.normal(0, 0.6)
        if record["island"] == "Torgersen":
            score -= 1.0
        labels.append(CLASSES[0] if score < -0.5 else CLASSES[1] if score < 0.7 else CLASSES[2])
    return np.array(labels, dtype=object)


def _body_mass(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array(
        [
            50.0 * (r["flipper_length_mm"] or 200)
            - 5000
            + (300.0 if r["sex"] == "male" else 0.0)
            + 20.0 * (r["bill_length_mm"] or 44)
            for r in records
        ]
    )


# models -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFixture:
    onnx: bytes
    pipeline: Any  # the fitted sklearn Pipeline, to compare predictions with
    schema: Any  # a FeatureSchema, or a hand-written part of one


def _schema(task: str, classes: list[Any] | None, label_type: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "target": "species" if task == "classification" else "mass",
        "task": task,
        "features": [{"name": c, "kind": "numeric"} for c in NUMERIC]
        + [{"name": c, "kind": "categorical", "categories": CATEGORIES[c]} for c in CATEGORICAL],
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
    }
    if classes is not None:
        schema["classes"] = classes
        schema["label_type"] = label_type
    return schema


def fit_pipeline(estimator: Any, y: np.ndarray, records: list[dict[str, Any]]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    k = len(NUMERIC)
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                list(range(k)),
            ),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore"),
                list(range(k, k + len(CATEGORICAL))),
            ),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)]).fit(to_matrix(records), y)


def export_onnx(pipeline: Any) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    estimator = pipeline.steps[-1][1]
    onx = to_onnx(
        pipeline,
        initial_types=[
            ("numeric", FloatTensorType([None, len(NUMERIC)])),
            ("categorical", StringTensorType([None, len(CATEGORICAL)])),
        ],
        options={id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None,
    )
    names = [output.name for output in onx.graph.output]
    expected = ["label", "probabilities"] if len(names) == 2 else ["variable"]
    assert names == expected, names  # the graph contract; skl2onnx already uses these names
    return bytes(onx.SerializeToString())


@cache
def classifier() -> ModelFixture:
    """LogisticRegression with string labels (label_type "str")."""
    from sklearn.linear_model import LogisticRegression

    records = mixed_records(400, seed=1)
    pipeline = fit_pipeline(LogisticRegression(max_iter=500), species_labels(records, 1), records)
    classes = [str(c) for c in pipeline.classes_]
    return ModelFixture(export_onnx(pipeline), pipeline, _schema("classification", classes, "str"))


@cache
def int_classifier() -> ModelFixture:
    """Binary LogisticRegression with integer labels (label_type "int")."""
    from sklearn.linear_model import LogisticRegression

    records = mixed_records(300, seed=2)
    y = (species_labels(records, 2) == CLASSES[2]).astype(np.int64)
    pipeline = fit_pipeline(LogisticRegression(max_iter=500), y, records)
    classes = [int(c) for c in pipeline.classes_]
    return ModelFixture(export_onnx(pipeline), pipeline, _schema("classification", classes, "int"))


@cache
def regressor() -> ModelFixture:
    from sklearn.linear_model import Ridge

    records = mixed_records(300, seed=3)
    pipeline = fit_pipeline(Ridge(), _body_mass(records), records)
    return ModelFixture(export_onnx(pipeline), pipeline, _schema("regression", None, None))


# AWS ----------------------------------------------------------------------------------------------
@dataclass
class Stack:
    """The mocked resources the prediction function reads."""

    registry: Registry
    s3: Any
    bucket: str = MODEL_BUCKET

    def publish(
        self,
        model: str,
        fixture: ModelFixture,
        *,
        promote: bool = True,
        sha256: str | None = None,
        pin_version_id: bool = True,
        status: str = "Registered",
        background: list[dict[str, Any]] | None = None,
    ) -> int:
        """Register a version the way the Register step does, optionally promoting it (a canary
        or shadow must be Approved or Archived: ``status="Approved"``); with ``background``
        records, the rows its explanations compare with, stored as Register stores them."""
        version = self.registry.allocate_version(model)
        key = f"models/{model}/{version}/model.onnx"
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=fixture.onnx)
        artifact: Artifact = {
            "bucket": self.bucket,
            "key": key,
            "version_id": put.get("VersionId") if pin_version_id else None,
            "sha256": sha256 or hashlib.sha256(fixture.onnx).hexdigest(),
            "bytes": len(fixture.onnx),
        }
        document: VersionDocument = {
            "family": "logistic_regression",
            "task": fixture.schema["task"],
            "metric": "accuracy" if fixture.schema["task"] == "classification" else "rmse",
            "metrics": {"accuracy": 0.9, "rmse": 123.4},
            "schema": fixture.schema,
            "classes": fixture.schema.get("classes"),
            "artifact": artifact,
        }
        if background is not None:
            columns = list(background[0])
            stored = {"columns": columns, "data": [[row[c] for c in columns] for row in background]}
            background_key = f"models/{model}/{version}/background.json"
            self.s3.put_object(Bucket=self.bucket, Key=background_key, Body=json.dumps(stored))
            document["files"] = {"background": background_key}
        self.registry.put_version(model, version, status, document)
        if promote:
            self.promote(model, version)
        return version

    def promote(self, model: str, version: int) -> None:
        current = self.registry.get_alias(model)
        self.registry.move_alias(model, version, expected=current, actor="test", reason="test")


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Resource names + serving knobs for one test; drops every settings and predictor cache."""
    monkeypatch.setenv("MODEL_BUCKET", MODEL_BUCKET)
    monkeypatch.setenv("REGISTRY_TABLE", REGISTRY_TABLE)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stack_settings.cache_clear()
    serving_settings.cache_clear()
    predictor = sys.modules.get("mlstack_predict.predictor")
    if predictor is not None:
        predictor.reset_predictor()


# handler ------------------------------------------------------------------------------------------
@cache
def load_app() -> ModuleType:
    """The prediction function's handler module, ``mlstack_predict.app``."""
    return importlib.import_module("mlstack_predict.app")


@cache
def _template(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def event(
    method: str,
    path: str,
    body: str | None = None,
    *,
    base64: bool = False,
) -> dict[str, Any]:
    """A REST proxy event for ``path``, built from the recorded templates."""
    parts = path.strip("/").split("/")
    if method == "POST":
        evt = copy.deepcopy(_template("apigw_predict.json"))
    else:
        evt = copy.deepcopy(_template("apigw_get_model.json"))
    resource, params = path, None
    if len(parts) >= 2 and parts[0] == "models":
        params = {"model": parts[1]}
        action = parts[2:] if parts[2:] in (["predict"], ["explain"]) else []
        resource = "/models/{model}" + "".join(f"/{part}" for part in action)
    evt.update(
        resource=resource,
        path=path,
        httpMethod=method,
        pathParameters=params,
        body=body,
        isBase64Encoded=base64,
    )
    evt["requestContext"].update(resourcePath=resource, httpMethod=method, path=f"/Prod{path}")
    return evt


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any
    raw: dict[str, Any]


def invoke(method: str, path: str, body: Any = None, *, raw_body: bool = False) -> HttpResult:
    """Call the handler as API Gateway would; ``body`` is JSON-encoded unless ``raw_body``."""
    text = body if raw_body or body is None else json.dumps(body)
    response = load_app().handler(event(method, path, text), FakeLambdaContext())
    return HttpResult(response["statusCode"], json.loads(response["body"]), response)
