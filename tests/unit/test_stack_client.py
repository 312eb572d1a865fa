"""StackClient signs requests to API Gateway (the template's ApiAuth defaults to AWS_IAM)."""

from __future__ import annotations

import boto3
import pytest

from mlstack.cli.stack import StackClient

pytestmark = pytest.mark.unit


def _client() -> StackClient:
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    )
    return StackClient("mlstack", session=session)


def test_requests_to_api_gateway_are_sigv4_signed_for_the_api_region() -> None:
    url = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/v1/models/penguins/predict"
    headers = _client().signed_headers(
        "POST", url, b'{"instances": []}', {"Content-Type": "application/json"}
    )
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "X-Amz-Date" in headers
    assert headers["Content-Type"] == "application/json"


def test_requests_to_the_local_api_are_signed_so_it_knows_the_caller() -> None:
    """The local API's IAM-authorised routes (approve, reject) read the caller from the
    signature's access key, as API Gateway does."""
    headers = {"Content-Type": "application/json"}
    url = "http://127.0.0.1:3000/models/m/versions/1/approve"
    signed = _client().signed_headers("POST", url, b"{}", headers)
    assert "/us-east-1/execute-api/aws4_request" in signed["Authorization"]
    assert signed["Content-Type"] == "application/json"
