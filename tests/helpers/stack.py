"""A stand-in for the deployed stack in moto: the resources a pipeline run touches, and the handlers
driven in the state machine's order with the payloads it would send."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from mlstack_core.documents import VersionDocument
from mlstack_core.registry import Registry
from tests.helpers import ROOT
from tests.helpers.lambda_context import FakeLambdaContext

DATA_BUCKET = "mlstack-test-data"
MODEL_BUCKET = "mlstack-test-models"
REGISTRY_TABLE = "mlstack-test-registry"
REGION = "us-east-1"
# The ARNs template.yaml gives the functions, which check them at their cold start.
PLACEHOLDER_ARNS = {
    "ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:not-created",
    "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:not-created",
    "SCORING_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:not-created",
}


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


def monitoring_written(timeout: float = 10.0) -> None:
    """Wait until the prediction function's background writer has put every drift summary and
    capture it was handed (they leave off the answer's path, mlstack_predict.monitoring_writer)."""
    from mlstack_predict.predictor import get_predictor

    assert get_predictor().monitoring.wait(timeout), "monitoring writes still pending"


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
        """The Map: one Train invocation per candidate, with the Map's ItemSelector shape. Each
        result is given whole, without the key of its stored copy (which the state machine's
        ResultSelector keeps instead), so a test can change an entry before Evaluate reads it."""
        handler = load_handler("train")
        return [
            {
                name: value
                for name, value in handler({"run": run, "candidate": c}, self.context).items()
                if name not in ("result_key", "result_version_id", "result_sha256")
            }
            for c in run["candidates"]
        ]

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

    def run_register_step(self, state: dict[str, Any], action: str | None = None) -> dict[str, Any]:
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
        monitoring_written()  # the summaries and captures it made due, for the Monitor to read
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
                "sha256": hashlib.sha256(body).hexdigest(),
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
