"""Model files read as the exact bytes that were trained and evaluated: by S3 VersionId, checked
against the sha256 recorded when they were written."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from mlstack_core.errors import ArtifactHashMissing, ArtifactTampered

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef


def read_verified(
    s3: S3Client, bucket: str, key: str, version_id: str | None, sha256: str | None
) -> bytes:
    """The object version's bytes; ArtifactTampered when they do not hash to ``sha256``, and
    ArtifactHashMissing (before a byte is read) when there is no hash to check: every writer
    records one, so a record without it is not trusted to name the evaluated bytes."""
    if not sha256:
        raise ArtifactHashMissing(
            f"s3://{bucket}/{key} (version {version_id}) has no recorded sha256 to check it "
            "against; it is not read"
        )
    request: GetObjectRequestTypeDef = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    body: bytes = s3.get_object(**request)["Body"].read()
    if hashlib.sha256(body).hexdigest() != sha256.lower():
        raise ArtifactTampered(
            f"s3://{bucket}/{key} (version {version_id}) does not match its recorded sha256"
        )
    return body


def check_unchanged(s3: S3Client, bucket: str, key: str, version_id: str | None) -> None:
    """ArtifactTampered when ``key`` was written again after ``version_id`` was evaluated."""
    if not version_id:
        return
    latest = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    if latest != version_id:
        raise ArtifactTampered(
            f"s3://{bucket}/{key} was written again after it was evaluated (version {latest}, "
            f"evaluated {version_id}); nothing is registered"
        )
