"""boto3 clients made once per container and reused, as Lambda's guidance has it: making one
costs about 10 ms, as much as scoring a 1,000-row batch. ``settings.forget`` drops them with
the settings, since both come from the environment (region, endpoint, credentials)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3

if TYPE_CHECKING:  # the stubs are a development dependency: types only
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient


@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["sns"]) -> SNSClient: ...
@overload
def client(service: Literal["stepfunctions"]) -> SFNClient: ...
def client(service: str) -> Any:
    """The container's client for ``service``; boto3 clients are thread-safe."""
    return _made(service)


@lru_cache(maxsize=8)
def _made(service: str) -> Any:
    return boto3.client(service)  # type: ignore[call-overload]


def forget() -> None:
    """Make every client again on next use."""
    _made.cache_clear()
