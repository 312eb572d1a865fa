"""The EMF each function prints, against the metrics catalogue (mlstack/checks/catalogue.py,
docs/metrics.md).

One scenario drives every function's real handler in moto, in pipeline order: Trigger (a dataset,
an ignored key, a redelivery), RunLock (take, queue, release), Preprocess, Train, Evaluate,
Register (promote, reject, request approval, a stale promotion), Predict (a good and an unknown
model), and the Monitor (drifted summaries, so it alerts and retrains). Each handler's stdout is
captured on its own and every EMF record is checked: the metric is catalogued for that function,
with its unit and one of its dimension sets. The other way round, every catalogued metric is
either emitted here or, for error paths this scenario does not take, named in the function's
source, and every metric named in a function's source is catalogued.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import csv
import functools
import importlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from mlstack.checks.catalogue import FUNCTIONS, by_service
from mlstack_core.approval_answers import TABLE_DEFINITION as ANSWERS_TABLE
from mlstack_core.drift import DriftRecorder
from mlstack_core.idempotency import TABLE_DEFINITION as IDEMPOTENCY_TABLE
from mlstack_core.registry import TABLE_DEFINITION, Registry
from mlstack_core.settings import forget
from mlstack_core.tabular import feature_feeds, read_split
from mlstack_runlock.lock_table import TABLE_DEFINITION as RUN_LOCK_TABLE
from tests.helpers.emf import Emitted, emf
from tests.helpers.imports import penguins_import_event
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import Stack, load_handler, register_event
from tests.helpers.tables import penguins_bytes, records_csv

EVENTS = Path(__file__).resolve().parents[1] / "events"

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MODEL = "penguins"
REGION = "us-east-1"
EVENT = json.loads((ROOT / "tests/events/eventbridge_s3_object_created.json").read_text())
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
# Catalogued metrics only an error path emits, which the scenario does not take; each must still
# be named in its function's source (test_catalogue_matches_each_functions_source).
ERROR_PATHS = {
    "predict": {
        "ModelLoadFailures",
        "CanaryRequests",
        "CanaryFallbacks",
        "ShadowRequests",
        "ShadowErrors",
        "CaptureDropped",  # a full capture buffer: tests/unit/test_capture.py
        "ShadowAgreement",
        "ShadowMaxAbsDiff",
        "ShadowLatency",
        "ColdStart",  # once per process: another test may have taken it
    },
    "monitor": {"MonitorErrors"},
    "register": {"CardFailures"},
    # moto answers a repeated StartExecution of a running execution with that execution, as
    # Step Functions does for the same name and input.
    "trigger": {"DuplicateTriggers"},
}
SERVICE_OF_DIR = {
    "trigger": "trigger",
    "preprocess": "preprocess",
    "train": "train",
    "admit": "admit",
    "evaluate": "evaluate",
    "register": "register",
    "runlock": "runlock",
    "predict": "predict",
    "monitor": "monitor",
    "approval": "approval",
    "score": "score",
}


class Capture:
    def __init__(self) -> None:
        self.by_service: dict[str, list[Emitted]] = {s: [] for s in SERVICE_OF_DIR.values()}

    def call(self, service: str, function: Callable[[], Any]) -> Any:
        out = io.StringIO()
        result: Any = None
        with contextlib.redirect_stdout(out):
            try:
                result = function()
            except Exception as error:  # error paths are part of the scenario
                result = error
        self.by_service[service].extend(emf(out.getvalue()))
        return result


def _trigger_event(key: str, version_id: str | None, bucket: str) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(key=key, **{"version-id": version_id})
    return event


@pytest.fixture(scope="module")
def captured() -> Capture:
    capture = Capture()
    saved = dict(os.environ)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("emf-data", "emf-models"):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName="emf-registry",
            **TABLE_DEFINITION,
        )
        dynamodb.create_table(TableName="emf-idempotency", **IDEMPOTENCY_TABLE)
        dynamodb.create_table(TableName="emf-approval-answers", **ANSWERS_TABLE)
        dynamodb.create_table(TableName="emf-runlock", **RUN_LOCK_TABLE)
        dynamodb.create_table(
            TableName="emf-approvals",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="emf-training", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/x"
        )["stateMachineArn"]
        scoring = sfn.create_state_machine(
            name="emf-scoring", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/x"
        )["stateMachineArn"]
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="emf-alerts")["TopicArn"]
        os.environ.update(
            DATA_BUCKET="emf-data",
            MODEL_BUCKET="emf-models",
            REGISTRY_TABLE="emf-registry",
            IDEMPOTENCY_TABLE="emf-idempotency",
            APPROVALS_TABLE="emf-approvals",
            APPROVAL_ANSWERS_TABLE="emf-approval-answers",
            RUN_LOCK_TABLE="emf-runlock",
            APPROVER_MUST_DIFFER="false",
            STATE_MACHINE_ARN=machine,
            SCORING_STATE_MACHINE_ARN=scoring,
            ALERTS_TOPIC_ARN=topic,
        )
        forget()
        try:
            _scenario(
                capture,
                Stack(
                    s3,
                    Registry("emf-registry", dynamodb),
                    dynamodb,
                    "emf-data",
                    "emf-models",
                    "emf-registry",
                ),
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
            forget()
            import sys

            predictor = sys.modules.get("mlstack_predict.predictor")
            if predictor is not None:
                predictor.reset_predictor()
    return capture


def _scoring(capture: Capture, context: Any, stack: Stack) -> None:
    """A batch job of three rows, one refused, through the scoring function's three steps."""
    score = load_handler("score")
    rows = list(csv.DictReader(io.StringIO(penguins_bytes().decode())))[:3]
    rows[1]["bill_length_mm"] = "long"
    table = records_csv(rows)
    stack.s3.put_object(Bucket="emf-data", Key="batch/penguins/nightly.csv", Body=table)
    dataset = {"bucket": "emf-data", "key": "batch/penguins/nightly.csv", "version_id": None}
    request = {"model": MODEL, "job": "nightly", "dataset": dataset, "max_refused_share": 0.5}
    job = capture.call("score", lambda: score({"action": "resolve", "request": request}, context))
    items = [{"row": i, "values": r} for i, r in enumerate(rows)]
    batch = {"action": "score", "BatchInput": {"job": job}, "Items": items}
    output = capture.call("score", lambda: score(batch, context))
    results = {"Key": "batch-runs/r/SUCCEEDED_0.json"}
    child = [{"Status": "SUCCEEDED", "Output": json.dumps(output)}]
    stack.s3.put_object(Bucket="emf-data", Body=json.dumps(child), **results)
    listing = {"DestinationBucket": "emf-data", "ResultFiles": {"SUCCEEDED": [results]}}
    writer_details = {"Bucket": "emf-data", "Key": "batch-runs/r/manifest.json"}
    stack.s3.put_object(Body=json.dumps(listing), **writer_details)
    summary = {"action": "summarise", "job": job, "scored": {"result_writer": writer_details}}
    capture.call("score", lambda: score(summary, context))


def _approvals(capture: Capture, context: Any, version: int, dataset: Any) -> None:
    """Hold a token, answer it as a signed caller, refuse an unsigned one, record an upload."""
    from tests.helpers import prediction

    approval = load_handler("approval")
    hold = {"action": "hold", "model": MODEL, "version": version}
    hold.update(task_token="token", execution_arn="arn:aws:states:::execution:x:y")
    capture.call("approval", lambda: approval(hold, context))
    path = f"/models/{MODEL}/versions/{version}/approve"
    signed = prediction.event("POST", path, json.dumps({"reason": "ok"}))
    signed["requestContext"]["identity"]["userArn"] = "arn:aws:iam::123456789012:user/rev"
    for request in (signed, prediction.event("POST", path, "{}")):
        request["resource"] = "/models/{model}/versions/{version}/approve"
        capture.call("approval", functools.partial(approval, request, context))
    upload = json.loads((ROOT / "tests/events/cloudtrail_s3_put_object.json").read_text())
    upload["detail"]["requestParameters"].update(bucketName="emf-data", key=dataset["key"])
    capture.call("approval", lambda: approval(upload, context))


def _scenario(capture: Capture, stack: Stack) -> None:
    context = FakeLambdaContext()
    stack.put_spec(MODEL, {"target": "species", "drift": {"min_rows": 50}})
    state = stack.upload(MODEL, penguins_bytes())
    dataset = state["dataset"]

    trigger = load_handler("trigger")
    capture.call(
        "trigger", lambda: trigger(_trigger_event("notes/readme.txt", None, "emf-data"), context)
    )
    good = _trigger_event(dataset["key"], dataset["version_id"], "emf-data")
    capture.call("trigger", lambda: trigger(good, context))
    capture.call("trigger", lambda: trigger(good, context))
    oversized = _trigger_event(dataset["key"], "v-huge", "emf-data")
    oversized["detail"]["object"]["size"] = 10 * 2**30
    capture.call("trigger", lambda: trigger(oversized, context))
    batch_file = _trigger_event("batch/penguins/nightly.csv", "v-batch", "emf-data")
    capture.call("trigger", lambda: trigger(batch_file, context))
    manifest = _trigger_event("imports/penguins/upload-1/manifest.json", "v-import", "emf-data")
    capture.call("trigger", lambda: trigger(manifest, context))
    with tempfile.TemporaryDirectory() as directory:
        imported = penguins_import_event(stack, Path(directory))
    admit = load_handler("admit")
    capture.call("admit", lambda: admit(imported, context))

    runlock = load_handler("runlock")
    for action, holder in (("acquire", "a"), ("acquire", "b"), ("release", "a")):
        lock_event = {"action": action, "model": MODEL, "execution_arn": holder}
        capture.call("runlock", functools.partial(runlock, lock_event, context))
    # A run stopped while it held the lock: the RunEnded rule's event frees it.
    ended = json.loads((EVENTS / "eventbridge_sfn_execution_aborted.json").read_text())
    ended["detail"]["input"] = json.dumps({"model": MODEL})
    lock_event = {
        "action": "acquire",
        "model": MODEL,
        "execution_arn": ended["detail"]["executionArn"],
    }
    capture.call("runlock", functools.partial(runlock, lock_event, context))
    capture.call("runlock", functools.partial(runlock, ended, context))

    measure = functools.partial(load_handler("preprocess"), {**state, "action": "measure"}, context)
    state["compute"] = capture.call("preprocess", measure)
    state["run"] = capture.call("preprocess", lambda: stack.preprocess(state))
    state["trained"] = capture.call("train", lambda: stack.train(state["run"]))
    state["evaluation"] = capture.call(
        "evaluate", lambda: stack.evaluate(state["run"], state["trained"])
    )

    register_handler = load_handler("register")
    started = datetime.now(UTC).isoformat()

    calls = iter(range(100))

    def registering(action: str, evaluation: dict[str, Any]) -> Any:
        # Each call as a different state of the run: a repeated state returns its first result.
        event = register_event(
            action, state["run"], evaluation, execution_started=started, step=f"S{next(calls)}"
        )
        return capture.call("register", lambda: register_handler(event, context))

    assert registering("promote", state["evaluation"])["promoted"] is True
    registering("reject", {**state["evaluation"], "decision": "reject"})
    pending = registering("request_approval", state["evaluation"])
    _approvals(capture, context, pending["version"], state["dataset"])
    stale = copy.deepcopy(state["evaluation"])
    stale["champion"] = None
    registering("promote", stale)  # production moved since: PromotionConflicts
    _scoring(capture, context, stack)

    from tests.helpers import prediction

    predictor = importlib.import_module("mlstack_predict.predictor")
    predictor.reset_predictor()
    app = prediction.load_app()
    from mlstack_predict.openapi import EXAMPLE_RECORD

    rows = [EXAMPLE_RECORD]
    body = json.dumps({"instances": rows})
    for model in (MODEL, "no-such-model"):
        request = prediction.event("POST", f"/models/{model}/predict", body)
        response = capture.call(
            "predict", functools.partial(app.handler, request, FakeLambdaContext())
        )
        assert response["statusCode"] == (200 if model == MODEL else 404), response
        request = prediction.event("POST", f"/models/{model}/explain", body)
        response = capture.call(
            "predict", functools.partial(app.handler, request, FakeLambdaContext())
        )
        assert response["statusCode"] == (200 if model == MODEL else 404), response

    # Drifted traffic, recorded the way the prediction function does, then the Monitor.
    document = stack.registry.get_version(MODEL, 1)
    holdout = read_split(
        stack.s3.get_object(Bucket="emf-models", Key=state["run"]["splits"]["holdout_key"])[
            "Body"
        ].read()
    )
    feeds = feature_feeds(holdout, document["schema"])
    numeric, categorical = feeds["numeric"], feeds["categorical"]
    recorder = DriftRecorder(flush_seconds=0)
    shifted = {"numeric": numeric * np.float32(1.6), "categorical": categorical}
    labels = np.asarray(["Gentoo"] * numeric.shape[0], dtype=object)
    for key, summary in recorder.record(MODEL, 1, document, shifted, {"label": labels}):
        stack.s3.put_object(Bucket="emf-models", Key=key, Body=summary)
    _captured_with_wrong_labels(stack, document, numeric, categorical)
    monitor = load_handler("monitor")
    result = capture.call("monitor", lambda: monitor({"id": "tick"}, context))
    assert result["models"][0]["status"] == "drift", result
    assert result["models"][0]["quality"]["status"] == "fallen", result


def _captured_with_wrong_labels(
    stack: Stack, document: Mapping[str, Any], numeric: np.ndarray, categorical: np.ndarray
) -> None:
    """The version as if trained with quality.capture, its holdout rows captured as served, and
    labels that contradict every answer: the Monitor's quality check alerts."""
    from mlstack_core.capture import CaptureRecorder
    from mlstack_core.contract import Batch, FeatureLayout
    from mlstack_core.registry_keys import model_pk, version_sk

    captured = {**document, "spec": {**document["spec"], "quality": {"capture": True}}}
    stack.dynamodb.Table("emf-registry").update_item(
        Key={"pk": model_pk(MODEL), "sk": version_sk(1)},
        UpdateExpression="SET doc = :doc",
        ExpressionAttributeValues={":doc": json.dumps(captured, default=str)},
    )
    layout = FeatureLayout.from_document(captured)
    records = [
        {
            **{
                c: None if np.isnan(v) else float(v) for c, v in zip(layout.numeric, n, strict=True)
            },
            **{c: v or None for c, v in zip(layout.categorical, k, strict=True)},
        }
        for n, k in zip(numeric, categorical, strict=True)
    ]
    answer = {"request_id": "r-1", "version": 1, "predictions": ["Gentoo"] * len(records)}
    recorder = CaptureRecorder(sample_rate=1.0, flush_seconds=0)
    for key, body in recorder.record(MODEL, layout, captured, Batch.of_instances(records), answer):
        stack.s3.put_object(Bucket="emf-models", Key=key, Body=body)
    labels = "request_id,row,species\n" + "".join(f"r-1,{i},Adelie\n" for i in range(len(records)))
    stack.s3.put_object(Bucket="emf-data", Key=f"feedback/{MODEL}/wrong.csv", Body=labels.encode())


@pytest.mark.slow
@pytest.mark.parametrize("service", sorted(SERVICE_OF_DIR.values()))
def test_every_emitted_metric_is_catalogued_with_its_unit_and_dimensions(
    captured: Capture, service: str
) -> None:
    catalogue = by_service()[service]
    emitted = captured.by_service[service]
    assert emitted, f"{service} printed no EMF: the capture is broken"
    for name, unit, dimensions in emitted:
        assert name in catalogue, f"{service} emits {name}, which docs/metrics.md does not list"
        metric = catalogue[name]
        assert unit == metric.unit, f"{service} {name}: unit {unit}, catalogue {metric.unit}"
        assert dimensions in {frozenset(d) for d in metric.dimensions}, (
            f"{service} {name}: dimensions {sorted(dimensions)}, catalogue {metric.dimensions}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("service", sorted(SERVICE_OF_DIR.values()))
def test_every_catalogued_metric_is_emitted(captured: Capture, service: str) -> None:
    """Each dimension set too: a metric catalogued per model must really carry the model."""
    expected = {
        (m.name, frozenset(d))
        for m in by_service()[service].values()
        if m.name not in ERROR_PATHS.get(service, set())
        for d in m.dimensions
    }
    emitted = {(name, dimensions) for name, _, dimensions in captured.by_service[service]}
    assert expected <= emitted, f"{service} never emitted {sorted(expected - emitted)}"


CORE = ROOT / "layers" / "core" / "mlstack_core"


def _names_in_source(directory: Path) -> set[str]:
    names = set()
    for source in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "add_metric":
                continue
            argument = next((k.value for k in node.keywords if k.arg == "name"), None)
            if argument is None and node.args:
                argument = node.args[0]
            assert isinstance(argument, ast.Constant), f"{source}: metric name not a literal"
            names.add(str(argument.value))
    return names


@pytest.mark.parametrize("directory", sorted(SERVICE_OF_DIR))
def test_catalogue_matches_each_functions_source(directory: str) -> None:
    service = SERVICE_OF_DIR[directory]
    assert service in FUNCTIONS.values()
    in_source = _names_in_source(ROOT / "functions" / directory)
    if service == "predict":  # the request path's EMF writer lives with the other observability
        in_source |= _names_in_source(CORE / "observability")
    assert in_source == set(by_service()[service]), (
        f"functions/{directory}: source names {sorted(in_source)}, "
        f"catalogue {sorted(by_service()[service])}"
    )
