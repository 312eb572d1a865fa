"""Fixtures of the prediction function's tests: the model bucket and registry it reads, and its
logger's output."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from mlstack_core.registry import TABLE_DEFINITION, Registry
from mlstack_core.registry_keys import model_pk, version_sk
from tests.helpers.prediction import (
    MODEL_BUCKET,
    REGISTRY_TABLE,
    Stack,
    classifier,
    configure,
    load_app,
)


@pytest.fixture(name="serving")
def serving_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    configure(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=MODEL_BUCKET)
        s3.put_bucket_versioning(Bucket=MODEL_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=REGISTRY_TABLE,
            **TABLE_DEFINITION,
        )
        yield Stack(Registry(REGISTRY_TABLE, dynamodb), s3)
        configure(monkeypatch)  # the next test must not reuse clients bound to this mock


@pytest.fixture(name="log_output")
def log_output_fixture(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the prediction function's Powertools logger writes during the test (its handler holds
    the stdout it was created with, so capsys cannot see it)."""
    load_app()  # mlstack_core.observability.requests, as the handler imports it
    from mlstack_core.observability.requests import logger

    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    return stream


@pytest.fixture
def captured_model(serving: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """penguins v1 with capture on, every request recorded and due at once."""
    configure(monkeypatch, CAPTURE_SAMPLE_RATE="1", DRIFT_FLUSH_SECONDS="0")
    version = serving.publish("penguins", classifier())
    document = serving.registry.get_version("penguins", version)
    serving.registry._table.update_item(
        Key={"pk": model_pk("penguins"), "sk": version_sk(version)},
        UpdateExpression="SET doc = :doc",
        ExpressionAttributeValues={
            ":doc": json.dumps({**document, "spec": {"quality": {"capture": True}}})
        },
    )
    return serving
