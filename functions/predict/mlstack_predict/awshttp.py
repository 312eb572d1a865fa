"""The two AWS reads of the serving path (DynamoDB Query/GetItem, S3 GetObject) over plain HTTPS.

Why not boto3: on the predict path it was the largest part of a cold start. Measured with the
built package on python3.12 here: ``import boto3`` 0.20-0.23 s plus 0.15-0.20 s to create the S3
client (service model JSON) and 0.04 s for the DynamoDB resource, against ~0.4 s for everything
else together. This module signs requests with Signature Version 4 itself (tests compare every
signature with botocore's signer) and needs only the standard library.

It is used where ``MLSTACK_AWS_CLIENT=http`` (template.yaml sets it for the prediction function;
tests and the local cloud use boto3, which moto patches). Credentials come from the environment,
which is where Lambda puts the function role's. Anything else (list models, describe) uses the
boto3 Registry, imported when first needed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

from mlstack_core.documents import AliasEntry, VersionDocument
from mlstack_core.errors import AwsHttpError, ModelNotFound
from mlstack_core.registry_keys import (
    ALIAS_PREFIX,
    PRODUCTION,
    model_pk,
    version_sk,
)
from mlstack_core.settings import AwsEnvironment

if TYPE_CHECKING:
    from mlstack_core.registry import Registry

_DYNAMODB_TARGET = "DynamoDB_20120810"
_TIMEOUT_S = 5.0
_RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
_RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    @classmethod
    def from_environment(cls, environment: AwsEnvironment | None = None) -> Credentials | None:
        given = environment or AwsEnvironment.from_env()
        if not given.access_key_id or not given.secret_access_key:
            return None
        return cls(given.access_key_id, given.secret_access_key, given.session_token or None)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    service: str,
    region: str,
    credentials: Credentials,
    now: float | None = None,
) -> dict[str, str]:
    """Headers for a SigV4-signed request (``headers`` plus host, date, token, Authorization).

    ``url``'s path must already be URI-encoded as sent; S3 signs it as is, other services
    encode it once more (the SigV4 rule for non-S3 services).
    """
    parts = urlsplit(url)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    day = stamp[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    signed: dict[str, str] = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = stamp
    if service == "s3":
        signed["x-amz-content-sha256"] = payload_hash
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    path = parts.path or "/"
    canonical_path = path if service == "s3" else quote(path, safe="/~")
    pairs = []
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        pairs.append((key, value))
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            canonical_path,
            canonical_query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing_key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), day), region), service),
        "aws4_request",
    )
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    result = {**headers, **{k: v for k, v in signed.items() if k.startswith("x-amz-")}}
    result["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return result


@dataclass
class AwsHttp:
    """Signed requests to one region, reusing one connection per host."""

    region: str
    credentials: Credentials
    endpoints: dict[str, str] = field(default_factory=dict)  # service → endpoint URL override
    _connections: dict[str, http.client.HTTPConnection] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> AwsHttp | None:
        environment = AwsEnvironment.from_env()
        credentials = Credentials.from_environment(environment)
        region = environment.region
        if credentials is None or not region:
            return None
        endpoints = {}
        for service, own in environment.service_endpoint_urls.items():
            url = own or environment.endpoint_url
            if url:
                endpoints[service] = url.rstrip("/")
        return cls(region, credentials, endpoints)

    def for_another_thread(self) -> AwsHttp:
        """The same region, credentials and endpoints with connections of its own: an
        ``http.client`` connection must not be shared between threads."""
        return AwsHttp(self.region, self.credentials, dict(self.endpoints))

    def url(self, service: str, path: str, bucket: str | None = None) -> str:
        override = self.endpoints.get(service)
        if override:  # local endpoints (moto) take path-style S3 requests
            return f"{override}/{bucket}{path}" if bucket else f"{override}{path}"
        if service == "s3" and bucket:
            if "." in bucket:  # dotted names break the TLS wildcard: path style
                return f"https://s3.{self.region}.amazonaws.com/{bucket}{path}"
            return f"https://{bucket}.s3.{self.region}.amazonaws.com{path}"
        return f"https://{service}.{self.region}.amazonaws.com{path}"

    def call(
        self, service: str, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        last: Exception | None = None
        for attempt in range(3):
            if attempt:
                time.sleep(0.05 * 2**attempt)
            signed = sign(
                method=method,
                url=url,
                headers=headers,
                body=body,
                service=service,
                region=self.region,
                credentials=self.credentials,
            )
            parts = urlsplit(url)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            try:
                connection = self._connection(parts.scheme, parts.netloc)
                connection.request(method, target or "/", body=body or None, headers=signed)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                self._connections.pop(parts.netloc, None)
                last = AwsHttpError(f"{service} request failed: {error!r}")
                continue
            if response.status < 300:
                return response.status, payload
            failure = _error(service, response.status, payload)
            if response.status in _RETRYABLE_STATUS or failure.code in _RETRYABLE_CODES:
                last = failure
                continue
            raise failure
        assert last is not None
        raise last

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        connection = self._connections.get(netloc)
        if connection is None:
            connection_class = (
                http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            )
            connection = connection_class(netloc, timeout=_TIMEOUT_S)
            self._connections[netloc] = connection
        return connection

    # the two services ---------------------------------------------------------------------------
    def dynamodb(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"{_DYNAMODB_TARGET}.{operation}",
        }
        _, payload = self.call(
            "dynamodb", "POST", self.url("dynamodb", "/"), headers, json.dumps(request).encode()
        )
        answer: dict[str, Any] = json.loads(payload)
        return answer

    def get_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:  # noqa: N803 - boto3's names
        path = "/" + quote(Key, safe="/~")
        url = self.url("s3", path, Bucket)
        if VersionId:
            url += f"?versionId={quote(VersionId, safe='~')}"
        _, payload = self.call("s3", "GET", url, {})
        return {"Body": io.BytesIO(payload)}

    def put_object(  # boto3's argument names, so either client fits the Predictor
        self,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        Body: bytes,  # noqa: N803
        ContentType: str = "application/octet-stream",  # noqa: N803
    ) -> dict[str, Any]:
        url = self.url("s3", "/" + quote(Key, safe="/~"), Bucket)
        self.call("s3", "PUT", url, {"Content-Type": ContentType}, Body)
        return {}


def _error(service: str, status: int, payload: bytes) -> AwsHttpError:
    code, message = "", payload[:300].decode("utf-8", "replace")
    if service == "dynamodb":
        try:
            document = json.loads(payload)
            code = str(document.get("__type", "")).rpartition("#")[2]
            message = str(document.get("message") or document.get("Message") or message)
        except ValueError:
            pass
    else:
        text = payload.decode("utf-8", "replace")
        if "<Code>" in text:
            code = text.split("<Code>", 1)[1].split("</Code>", 1)[0]
        if "<Message>" in text:
            message = text.split("<Message>", 1)[1].split("</Message>", 1)[0]
    return AwsHttpError(f"{service} {status} {code}: {message}", code, status)


@dataclass
class HttpRegistry:
    """The registry reads of the serving path (``mlstack_core.registry.RegistryReader``, the
    table's layout in ``mlstack_core.registry_keys``): the two on every cold start over AwsHttp,
    listing (GET /models) through a boto3 Registry made on first use."""

    table: str
    aws: AwsHttp
    _boto3: Registry | None = None

    def aliases(self, model: str) -> dict[str, AliasEntry]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": model_pk(model)},
                ":prefix": {"S": ALIAS_PREFIX},
            },
            "ConsistentRead": True,
        }
        aliases: dict[str, AliasEntry] = {}
        while True:
            answer = self.aws.dynamodb("Query", request)
            for item in answer.get("Items", []):
                entry: AliasEntry = {"version": int(_scalar(item["version"]))}
                if "share" in item and "NULL" not in item["share"]:
                    entry["share"] = float(_scalar(item["share"]))
                aliases[str(_scalar(item["sk"])).removeprefix(ALIAS_PREFIX)] = entry
            if "LastEvaluatedKey" not in answer:
                return aliases
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def get_version(self, model: str, version: int) -> VersionDocument:
        answer = self.aws.dynamodb(
            "GetItem",
            {
                "TableName": self.table,
                "Key": {"pk": {"S": model_pk(model)}, "sk": {"S": version_sk(version)}},
                "ConsistentRead": True,
            },
        )
        item = answer.get("Item")
        if item is None:
            raise ModelNotFound(f"model {model!r} has no version {version}")
        return cast(VersionDocument, json.loads(str(_scalar(item["doc"]))))

    def get_alias(self, model: str, alias: str = PRODUCTION) -> int | None:
        entry = self.aliases(model).get(alias)
        return None if entry is None else int(entry["version"])

    def list_versions(self, model: str) -> list[VersionDocument]:
        return self._registry().list_versions(model)

    def list_models(self) -> list[str]:
        return self._registry().list_models()

    def _registry(self) -> Registry:
        """The boto3 Registry, imported and made on first use: off the cold start."""
        if self._boto3 is None:
            from mlstack_core.registry import Registry

            self._boto3 = Registry(self.table)
        return self._boto3


def _scalar(value: dict[str, Any]) -> Any:
    """A DynamoDB JSON attribute value (S or N) as its text."""
    for kind in ("S", "N"):
        if kind in value:
            return value[kind]
    raise ValueError(f"unexpected attribute value {value!r}")
