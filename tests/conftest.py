"""Shared test setup.

The environment is set before anything imports handler code: mlstack_core.observability creates
Powertools' Logger, Metrics and Tracer at import time, and boto3 must never see real credentials.
"""

from __future__ import annotations

import os

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

import sys  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import boto3  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from moto import mock_aws  # noqa: E402

from mlstack_core.approval_answers import TABLE_DEFINITION as ANSWERS_TABLE  # noqa: E402
from mlstack_core.idempotency import TABLE_DEFINITION as IDEMPOTENCY_TABLE  # noqa: E402
from mlstack_core.observability.pipeline import metrics  # noqa: E402
from mlstack_core.registry import TABLE_DEFINITION, Registry  # noqa: E402
from mlstack_core.settings import forget  # noqa: E402
from mlstack_runlock.lock_table import TABLE_DEFINITION as RUN_LOCK_TABLE  # noqa: E402
from tests.helpers.stack import (  # noqa: E402
    DATA_BUCKET,
    MODEL_BUCKET,
    PLACEHOLDER_ARNS,
    REGION,
    REGISTRY_TABLE,
    Stack,
)

# Performance is measured in benchmarks/, never by a test's clock: Hypothesis's per-example
# deadline failed properties on a loaded 2-core machine, so no example has one.
hypothesis_settings.register_profile("mlstack", deadline=None)
hypothesis_settings.load_profile("mlstack")

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The folder sets the tier: tests/unit are ``unit``, tests/integration ``integration`` and
    ``slow`` (each starts the local cloud and runs the state machine). Unit tests that fit models
    or run the pipeline's handlers mark themselves ``slow``."""
    for item in items:
        folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
        if folder == "unit":
            item.add_marker(pytest.mark.unit)
        elif folder == "integration":
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


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
        "answers_table": f"mlstack-test-approval-answers-{suffix}",
        "run_lock_table": f"mlstack-test-runlock-{suffix}",
    }
    monkeypatch.setenv("DATA_BUCKET", names["data_bucket"])
    monkeypatch.setenv("MODEL_BUCKET", names["model_bucket"])
    monkeypatch.setenv("REGISTRY_TABLE", names["registry_table"])
    monkeypatch.setenv("IDEMPOTENCY_TABLE", names["idempotency_table"])
    monkeypatch.setenv("APPROVAL_ANSWERS_TABLE", names["answers_table"])
    monkeypatch.setenv("RUN_LOCK_TABLE", names["run_lock_table"])
    # The ARNs template.yaml gives the functions, which check them at their cold start; a test
    # that publishes or starts executions sets the real ones.
    for variable, arn in PLACEHOLDER_ARNS.items():
        monkeypatch.setenv(variable, arn)
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
        dynamodb.create_table(TableName=names["answers_table"], **ANSWERS_TABLE)
        dynamodb.create_table(TableName=names["run_lock_table"], **RUN_LOCK_TABLE)
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
