"""functions/predict/awshttp.py: SigV4 identical to botocore's, and the serving path end to end
over plain HTTP against a moto server (in-process moto mocks botocore only, so a real server)."""

from __future__ import annotations

import datetime
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.helpers.prediction import (
    MODEL_BUCKET,
    REGISTRY_TABLE,
    ROOT,
    Stack,
    classifier,
    configure,
    mixed_records,
)

pytestmark = pytest.mark.unit
NOW = datetime.datetime(2026, 11, 26, 7, 30, 5, tzinfo=datetime.UTC)


def _botocore_headers(
    service: str, method: str, url: str, headers: dict[str, str], body: bytes, token: str | None
) -> dict[str, str]:
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))
        signer(
            Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
            service,
            "eu-west-1",
        ).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("token", [None, "session-token/with+chars="])
@pytest.mark.parametrize(
    ("service", "method", "url", "headers", "body"),
    [
        (
            "dynamodb",
            "POST",
            "https://dynamodb.eu-west-1.amazonaws.com/",
            {
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.Query",
            },
            b'{"TableName": "t", "ConsistentRead": true}',
        ),
        (
            "s3",
            "GET",
            "https://models.s3.eu-west-1.amazonaws.com/models/a%20b/1/model.onnx",
            {},
            b"",
        ),
        (
            "s3",
            "GET",
            "https://s3.eu-west-1.amazonaws.com/my.bucket/k%2Bey/model.onnx?versionId=3HL4kqtJl%2B",
            {},
            b"",
        ),
    ],
)
def test_signatures_match_botocore(
    service: str, method: str, url: str, headers: dict[str, str], body: bytes, token: str | None
) -> None:
    from mlstack_predict.awshttp import Credentials, sign

    ours = sign(
        method=method,
        url=url,
        headers=headers,
        body=body,
        service=service,
        region="eu-west-1",
        credentials=Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
        now=NOW.timestamp(),
    )
    theirs = _botocore_headers(service, method, url, headers, body, token)

    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["x-amz-date"] == theirs["X-Amz-Date"]


def test_urls_follow_the_endpoint_rules() -> None:
    from mlstack_predict.awshttp import AwsHttp, Credentials

    aws = AwsHttp("eu-west-1", Credentials("a", "b"))
    assert aws.url("s3", "/k", "models") == "https://models.s3.eu-west-1.amazonaws.com/k"
    assert aws.url("s3", "/k", "my.models") == "https://s3.eu-west-1.amazonaws.com/my.models/k"
    assert aws.url("dynamodb", "/") == "https://dynamodb.eu-west-1.amazonaws.com/"
    local = AwsHttp("eu-west-1", Credentials("a", "b"), {"s3": "http://127.0.0.1:1"})
    assert local.url("s3", "/k", "models") == "http://127.0.0.1:1/models/k"


# end to end over HTTP -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def http_stack(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    from mlstack_core.registry import TABLE_DEFINITION, Registry

    configure(monkeypatch, ALIAS_TTL_SECONDS="0", MLSTACK_AWS_CLIENT="http")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    s3 = boto3.client("s3", endpoint_url=moto_server)
    dynamodb = boto3.resource("dynamodb", endpoint_url=moto_server)
    s3.create_bucket(Bucket=MODEL_BUCKET)
    s3.put_bucket_versioning(Bucket=MODEL_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    table = dynamodb.create_table(
        TableName=REGISTRY_TABLE,
        **TABLE_DEFINITION,
    )
    yield Stack(Registry(REGISTRY_TABLE, dynamodb), s3)
    table.delete()
    for version in s3.list_object_versions(Bucket=MODEL_BUCKET).get("Versions", []):
        s3.delete_object(Bucket=MODEL_BUCKET, Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket=MODEL_BUCKET)
    configure(monkeypatch)


def _predict(model: str = "penguins", query: dict[str, str] | None = None) -> tuple[int, Any]:
    from tests.helpers.lambda_context import FakeLambdaContext
    from tests.helpers.prediction import event, load_app

    evt = event("POST", f"/models/{model}/predict", json.dumps({"instances": mixed_records(2)}))
    evt["queryStringParameters"] = query
    response = load_app().handler(evt, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_the_serving_path_works_over_http(http_stack: Stack) -> None:
    from mlstack_predict import awshttp, predictor

    http_stack.publish("penguins", classifier())
    http_stack.publish("penguins", classifier(), promote=False, status="Approved")  # v2
    http_stack.registry.set_challenger("penguins", "shadow", 2, actor="t", reason="t")

    status, body = _predict()

    assert status == 200, body
    assert (body["version"], body["shadow_version"]) == (1, 2)
    served = predictor.get_predictor()
    assert isinstance(served.registry, awshttp.HttpRegistry)
    assert isinstance(served.s3, awshttp.AwsHttp)
    # promotion and rollback over HTTP too
    http_stack.promote("penguins", 2)
    assert _predict()[1]["version"] == 2
    assert _predict(query={"version": "2"})[1]["variant"] == "pinned"
    assert _predict(query={"version": "1"})[0] == 404  # archived and not aliased: not served
    assert _predict("nope")[0] == 404
    # GET routes fall back to the boto3 Registry
    assert served.registry.list_models() == ["penguins"]


def test_a_tampered_artifact_is_refused_over_http(http_stack: Stack) -> None:
    http_stack.publish("penguins", classifier())
    assert _predict()[0] == 200
    http_stack.publish("penguins", classifier(), sha256="0" * 64)  # v2 promoted, tampered

    status, body = _predict()

    assert (status, body["version"]) == (200, 1)


def test_aws_errors_are_raised_as_aws_http_errors(moto_server: str) -> None:
    from mlstack_core.errors import AwsHttpError
    from mlstack_predict.awshttp import AwsHttp, Credentials

    aws = AwsHttp("us-east-1", Credentials("a", "b"), {"s3": moto_server, "dynamodb": moto_server})
    with pytest.raises(AwsHttpError) as s3_error:
        aws.get_object(Bucket="no-such-bucket", Key="k")
    assert s3_error.value.code == "NoSuchBucket"
    with pytest.raises(AwsHttpError) as ddb_error:
        aws.dynamodb("GetItem", {"TableName": "none", "Key": {"pk": {"S": "x"}}})
    assert ddb_error.value.code == "ResourceNotFoundException"
    assert os.environ.get("AWS_ENDPOINT_URL") is None


def test_the_template_chooses_the_http_client_for_the_prediction_function() -> None:
    """The client is configuration, not a guess: template.yaml asks for signed HTTPS on Lambda,
    and everything else (tests, the local cloud) gets boto3, which moto can patch."""
    from samtranslator.yaml_helper import yaml_parse

    from mlstack.localcloud import FUNCTION_OVERRIDES
    from mlstack_core.settings import ServingSettings

    template = yaml_parse((ROOT / "template.yaml").read_text())
    variables = template["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MLSTACK_AWS_CLIENT"] == "http"
    assert FUNCTION_OVERRIDES["MLSTACK_AWS_CLIENT"] == "boto3"
    assert ServingSettings.from_env().aws_client == "boto3"
