"""Shared test setup.

The environment is set before anything imports handler code: mlstack_core.observability creates
Powertools' Logger, Metrics and Tracer at import time, and boto3 must never see real credentials.
"""

from __future__ import annotations

import os
from typing import cast

from mlstack_core.documents import VersionDocument

for _name, _value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mlstack",
}.items():
    os.environ[_name] = _value
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mlstack-tests")
# HistGradientBoosting's OpenMP threads spin-wait; on a busy 2-core machine a 275-row fit went from
# 0.15 s to 5-12 s. One thread keeps test times stable. Must be set before OpenMP loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

import csv  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib import resources  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import boto3  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from mlstack_core.idempotency import TABLE_DEFINITION as IDEMPOTENCY_TABLE  # noqa: E402
from mlstack_core.observability.pipeline import metrics  # noqa: E402
from mlstack_core.registry import TABLE_DEFINITION, Registry  # noqa: E402
from mlstack_core.settings import forget  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_BUCKET = "mlstack-test-data"
MODEL_BUCKET = "mlstack-test-models"
REGISTRY_TABLE = "mlstack-test-registry"
REGION = "us-east-1"


@dataclass
class FakeLambdaContext:
    """The attributes Powertools' inject_lambda_context reads."""

    function_name: str = "mlstack-test-function"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:mlstack-test-function"
    )
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def register_event(
    action: str, run: dict[str, Any], evaluation: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """Register's input as the state machine builds it, with its idempotency key (the execution
    and the state)."""
    step = {"promote": "RegisterAndPromote", "reject": "RecordRejection"}.get(action, action)
    return {
        "action": action,
        "run": run,
        "evaluation": evaluation,
        "execution_arn": run["execution_arn"],
        "step": step,
        **extra,
    }


def load_handler(function_dir: str) -> Callable[[dict[str, Any], Any], Any]:
    """The handler of ``functions/<function_dir>/``: ``mlstack_<function_dir>.app.handler``, as
    template.yaml names it (each function's code is its own package on the test path)."""
    module = importlib.import_module(f"mlstack_{function_dir}.app")
    handler: Callable[[dict[str, Any], Any], Any] = module.handler
    return handler


def records_csv(rows: list[dict[str, str]]) -> bytes:
    """Rows (column -> text) as a CSV file, the first row's columns as the header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def penguins_bytes() -> bytes:
    """The palmerpenguins CSV: 344 rows, mixed numeric/categorical, "NA" for missing."""
    return (resources.files("palmerpenguins") / "data" / "penguins.csv").read_bytes()


@dataclass
class Stack:
    """The mocked resources a pipeline run touches, plus helpers to drive the handlers."""

    s3: Any
    registry: Registry
    dynamodb: Any
    data_bucket: str
    model_bucket: str
    registry_table: str
    context: FakeLambdaContext = field(default_factory=FakeLambdaContext)
    _runs: int = 0

    def put_spec(self, model: str, spec: dict[str, Any] | bytes) -> None:
        body = spec if isinstance(spec, bytes) else json.dumps(spec).encode()
        self.s3.put_object(Bucket=self.data_bucket, Key=f"datasets/{model}/spec.json", Body=body)

    def upload(self, model: str, body: bytes, name: str = "data.csv") -> dict[str, Any]:
        """Upload a CSV; returns the Preprocess input the state machine would send."""
        key = f"datasets/{model}/{name}"
        put = self.s3.put_object(Bucket=self.data_bucket, Key=key, Body=body)
        self._runs += 1
        execution_name = f"run-{self._runs:03d}"
        return {
            "model": model,
            "dataset": {
                "bucket": self.data_bucket,
                "key": key,
                "version_id": put.get("VersionId"),
                "etag": put["ETag"].strip('"'),
                "size": len(body),
            },
            "execution_arn": (
                f"arn:aws:states:{REGION}:123456789012:execution:mlstack-training:{execution_name}"
            ),
            "execution_name": execution_name,
        }

    def preprocess(self, event: dict[str, Any]) -> dict[str, Any]:
        run: dict[str, Any] = load_handler("preprocess")(event, self.context)
        return run

    def train(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """The Map: one Train invocation per candidate, with the Map's ItemSelector shape."""
        handler = load_handler("train")
        return [handler({"run": run, "candidate": c}, self.context) for c in run["candidates"]]

    def evaluate(self, run: dict[str, Any], trained: list[dict[str, Any]]) -> dict[str, Any]:
        evaluation: dict[str, Any] = load_handler("evaluate")(
            {"run": run, "trained": trained}, self.context
        )
        return evaluation

    def run_pipeline(self, model: str, body: bytes) -> dict[str, Any]:
        """Preprocess -> Map(Train) -> Evaluate, accumulating the execution state."""
        state: dict[str, Any] = self.upload(model, body)
        state["run"] = self.preprocess(state)
        state["trained"] = self.train(state["run"])
        state["evaluation"] = self.evaluate(state["run"], state["trained"])
        return state

    def register(self, state: dict[str, Any], action: str | None = None) -> dict[str, Any]:
        """The Register step as the state machine calls it: ``promote`` or ``reject`` after the
        gate's decision unless ``action`` says otherwise."""
        evaluation = state["evaluation"]
        chosen = action or ("promote" if evaluation["decision"] == "promote" else "reject")
        registration: dict[str, Any] = load_handler("register")(
            register_event(chosen, state["run"], evaluation), self.context
        )
        return registration

    def serve(
        self, model: str, body: dict[str, Any] | str, version: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST /models/<model>/predict through the prediction function's handler, as an API
        Gateway proxy event: (status, decoded body)."""
        event = json.loads((ROOT / "tests" / "events" / "apigw_predict.json").read_text())
        event.update(
            pathParameters={"model": model},
            path=f"/models/{model}/predict",
            body=body if isinstance(body, str) else json.dumps(body),
            queryStringParameters={"version": str(version)} if version is not None else None,
        )
        response = load_handler("predict")(event, self.context)
        return response["statusCode"], json.loads(response["body"])

    def promote(self, state: dict[str, Any]) -> int:
        """Stand-in for Register: a version document with schema + artifact, alias moved."""
        run, best = state["run"], state["evaluation"]["best"]
        model = run["model"]
        version = self.registry.allocate_version(model)
        key = f"models/{model}/{version}/model.onnx"
        body = self.s3.get_object(Bucket=self.model_bucket, Key=best["onnx_key"])["Body"].read()
        put = self.s3.put_object(Bucket=self.model_bucket, Key=key, Body=body)
        document = {
            "family": best["family"],
            "metrics": best["metrics"],
            "schema": run["schema"],
            "artifact": {
                "bucket": self.model_bucket,
                "key": key,
                "version_id": put.get("VersionId"),
                "bytes": len(body),
            },
        }
        self.registry.put_version(model, version, "Approved", cast(VersionDocument, document))
        self.registry.move_alias(
            model, version, expected=self.registry.get_alias(model), actor="test", reason="test"
        )
        return version

    def read_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.model_bucket, Key=key)["Body"].read())


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Versioned data and model buckets and the registry table, in moto.

    Names are unique per test: when the integration suite's session-wide local cloud is running,
    moto's mocks nest and do not reset between tests, so fixed names would collide."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "data_bucket": f"{DATA_BUCKET}-{suffix}",
        "model_bucket": f"{MODEL_BUCKET}-{suffix}",
        "registry_table": f"{REGISTRY_TABLE}-{suffix}",
        "idempotency_table": f"mlstack-test-idempotency-{suffix}",
    }
    monkeypatch.setenv("DATA_BUCKET", names["data_bucket"])
    monkeypatch.setenv("MODEL_BUCKET", names["model_bucket"])
    monkeypatch.setenv("REGISTRY_TABLE", names["registry_table"])
    monkeypatch.setenv("IDEMPOTENCY_TABLE", names["idempotency_table"])
    _forget_settings()
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (names["data_bucket"], names["model_bucket"]):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=names["registry_table"],
            **TABLE_DEFINITION,
        )
        dynamodb.create_table(TableName=names["idempotency_table"], **IDEMPOTENCY_TABLE)
        registry = Registry(names["registry_table"], dynamodb)
        yield Stack(
            s3=s3,
            registry=registry,
            dynamodb=dynamodb,
            data_bucket=names["data_bucket"],
            model_bucket=names["model_bucket"],
            registry_table=names["registry_table"],
        )
    _forget_settings()


def _forget_settings() -> None:
    """Settings and the prediction function's per-container state are cached; each test gets
    its own resources."""
    forget()
    predictor = sys.modules.get("mlstack_predict.predictor")
    if predictor is not None:
        predictor.reset_predictor()


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    """Powertools Metrics state is process-wide; logic called outside a handler must not leak
    metrics or dimensions into the next test's EMF output."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def improving_uploads(count: int, rows: int = 2000) -> list[tuple[bytes, dict[str, Any]]]:
    """``count`` uploads of one table, each (csv, spec) clearly better than the one before beyond
    the gate's noise: the label is the sign of four equally weighted columns plus a little noise,
    and upload ``k`` lets the model read ``k`` of them (the others are in ``columns.drop``).
    For tests that need production to move by the gate's own decision."""
    rng = np.random.default_rng(2026)
    signal = rng.normal(size=(rows, 4))
    label = (signal.sum(axis=1) + rng.normal(scale=0.3, size=rows) > 0).astype(int)
    names = ["s1", "s2", "s3", "s4"]
    table = [
        {**{n: f"{v:.5f}" for n, v in zip(names, values, strict=True)}, "label": str(y)}
        for values, y in zip(signal, label, strict=True)
    ]
    if not 1 <= count <= len(names):
        raise ValueError(f"between 1 and {len(names)} uploads")
    body = records_csv(table)
    return [
        (body, {"target": "label", "columns": {"drop": names[read:]}})
        for read in range(len(names) - count + 1, len(names) + 1)
    ]


def noisy_penguins(share: float, seed: int = 0) -> bytes:
    """The penguins with ``share`` of their species replaced by a random one: a model trained on
    them is surer of less, so each lower share trains a version the gate finds better beyond
    noise than the one before, with the same columns (production stays comparable)."""
    rows = list(csv.DictReader(io.StringIO(penguins_bytes().decode())))
    rng = np.random.default_rng(seed)
    species = sorted({row["species"] for row in rows})
    for row in rows:
        if rng.random() < share:
            row["species"] = species[int(rng.integers(len(species)))]
    return records_csv(rows)
