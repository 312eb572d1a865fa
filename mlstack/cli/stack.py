"""The user's handle on a deployed stack, on AWS or on the local cloud (``AWS_ENDPOINT_URL``).

Every resource is found through the stack's Outputs, the same way on both.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from mlstack_core.registry import Registry
from mlstack_core.storage_keys import dataset_key, spec_key

REQUIRED_OUTPUTS = (
    "DataBucketName",
    "ModelBucketName",
    "TrainingStateMachineArn",
    "ApiUrl",
    "RegistryTableName",
    "AlertsTopicArn",
)


@dataclass
class HttpResponse:
    status: int
    body: Any


class StackClient:
    def __init__(self, stack_name: str = "mlstack", session: boto3.Session | None = None) -> None:
        self.stack_name = stack_name
        self.session = session or boto3.Session()
        self._outputs: dict[str, str] | None = None

    @property
    def outputs(self) -> dict[str, str]:
        if self._outputs is None:
            cloudformation = self.session.client("cloudformation")
            stack = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            missing = [name for name in REQUIRED_OUTPUTS if name not in self._outputs]
            if missing:
                raise RuntimeError(f"stack {self.stack_name} lacks outputs {missing}")
        return self._outputs

    @property
    def registry(self) -> Registry:
        return Registry(self.outputs["RegistryTableName"], self.session.resource("dynamodb"))

    # training -----------------------------------------------------------------------------------
    def upload_dataset(
        self,
        model: str,
        csv: Path | bytes,
        spec: dict[str, Any] | None = None,
        file_name: str | None = None,
    ) -> dict[str, Any]:
        """Put the spec (if given), then the CSV: the CSV upload is what starts a run."""
        s3 = self.session.client("s3")
        bucket = self.outputs["DataBucketName"]
        if spec is not None:
            s3.put_object(
                Bucket=bucket,
                Key=spec_key(model),
                Body=json.dumps(spec).encode(),
                ContentType="application/json",
            )
        body = csv.read_bytes() if isinstance(csv, Path) else csv
        name = file_name or (csv.name if isinstance(csv, Path) else f"{int(time.time())}.csv")
        key = dataset_key(model, name)
        response = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
        return {"bucket": bucket, "key": key, "version_id": response.get("VersionId")}

    def function_name(self, logical_id: str) -> str:
        """A function of the stack, by its logical id in the template."""
        cloudformation = self.session.client("cloudformation")
        for page in cloudformation.get_paginator("list_stack_resources").paginate(
            StackName=self.stack_name
        ):
            for resource in page["StackResourceSummaries"]:
                if resource.get("LogicalResourceId") == logical_id:
                    name: str = resource["PhysicalResourceId"]
                    return name
        raise RuntimeError(f"stack {self.stack_name} has no {logical_id}")

    def stored_bytes(self, bucket_output: str, key: str) -> bytes | None:
        """An object of one of the stack's buckets (named by its output), or None."""
        s3 = self.session.client("s3")
        try:
            body: bytes = s3.get_object(Bucket=self.outputs[bucket_output], Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return body

    def stored_spec(self, model: str) -> dict[str, Any] | None:
        """The spec an upload for ``model`` would use now, or None when there is none."""
        body = self.stored_bytes("DataBucketName", spec_key(model))
        if body is None:
            return None
        try:
            stored: dict[str, Any] = json.loads(body)
        except ValueError:
            return {"unreadable": body[:200].decode(errors="replace")}
        return stored

    def pending_version(self, model: str, execution_arn: str) -> int | None:
        """The version of ``model`` that ``execution_arn`` registered for approval, once it has."""
        for document in self.registry.list_versions(model):
            if (
                document.get("status") == "PendingApproval"
                and document.get("execution_arn") == execution_arn
            ):
                return int(document["version"])
        return None

    def find_execution(
        self, upload: dict[str, Any], timeout: float = 60, machine: str = "TrainingStateMachineArn"
    ) -> str:
        """The execution started for an uploaded object version (by ``machine``, an output)."""
        sfn = self.session.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            paginator = sfn.get_paginator("list_executions")
            for page in paginator.paginate(stateMachineArn=self.outputs[machine]):
                for execution in page["executions"]:
                    description = sfn.describe_execution(executionArn=execution["executionArn"])
                    dataset = json.loads(description.get("input") or "{}").get("dataset", {})
                    if dataset.get("key") == upload["key"] and (
                        upload.get("version_id") in (None, dataset.get("version_id"))
                    ):
                        arn: str = execution["executionArn"]
                        return arn
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no execution started for s3://{upload['bucket']}/{upload['key']}"
                )
            time.sleep(0.2)

    # serving ------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None) -> HttpResponse:
        url = self.outputs["ApiUrl"].rstrip("/") + path
        data = None if body is None else json.dumps(body).encode()
        headers = self.signed_headers(method, url, data, {"Content-Type": "application/json"})
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return HttpResponse(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload.decode(errors="replace")
            return HttpResponse(error.code, parsed)

    def signed_headers(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        """SigV4-signed headers for the stack's API, so it can use ``ApiAuth=AWS_IAM`` (the
        template's default) and the approval routes know who asks; an API without auth ignores
        the signature. The local API reads the caller from the signature's access key."""
        host = urllib.parse.urlsplit(url).hostname or ""
        credentials = self.session.get_credentials()
        if credentials is None:
            return headers
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        if host.endswith(".amazonaws.com"):
            region = host.split(".")[2]  # <api-id>.execute-api.<region>.amazonaws.com
        else:
            region = self.session.region_name or "us-east-1"
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
        return dict(request.headers.items())

    def predict(self, model: str, instances: list[dict[str, Any]]) -> HttpResponse:
        return self.request("POST", f"/models/{model}/predict", {"instances": instances})

    def explain(
        self, model: str, instances: list[dict[str, Any]], version: int | None = None
    ) -> HttpResponse:
        query = f"?version={version}" if version is not None else ""
        return self.request("POST", f"/models/{model}/explain{query}", {"instances": instances})
