"""The newest dataset of a model: what both retraining paths (drift, fallen quality) start from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlstack_core.observability.pipeline import tracer
from mlstack_core.storage_keys import dataset_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectVersionTypeDef

DATASET_SUFFIX = ".csv"


@tracer.capture_method
def latest_dataset(s3: S3Client, bucket: str, model: str) -> dict[str, Any] | None:
    """The newest current ``datasets/<model>/*.csv`` object version, in the Trigger's shape."""
    newest: ObjectVersionTypeDef | None = None
    prefix = dataset_prefix(model)
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Versions", []):
            key = item["Key"]
            if (
                not item.get("IsLatest")
                or not key.endswith(DATASET_SUFFIX)
                or "/" in key[len(prefix) :]
            ):
                continue
            if newest is None or item["LastModified"] > newest["LastModified"]:
                newest = item
    if newest is None:
        return None
    return {
        "bucket": bucket,
        "key": newest["Key"],
        "version_id": newest.get("VersionId"),
        "etag": str(newest.get("ETag", "")).strip('"'),
        "size": newest.get("Size"),
    }
