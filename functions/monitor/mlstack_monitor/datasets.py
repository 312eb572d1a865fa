"""The newest dataset a user uploaded for a model: what both retraining paths (drift, fallen
quality) start from. Never a dataset the Monitor derived: those hold captured requests, expire with
them, and retraining on one would add its labelled rows a second time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlstack_core.observability.pipeline import tracer
from mlstack_core.storage_keys import EARLIER_FEEDBACK_DATASET_NAME, dataset_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectVersionTypeDef

DATASET_SUFFIX = ".csv"


@tracer.capture_method
def latest_dataset(s3: S3Client, bucket: str, model: str) -> dict[str, Any] | None:
    """The newest current ``datasets/<model>/*.csv`` object version, in the Trigger's shape
    (derived datasets live under ``datasets/_derived/``; one written next to the uploads by an
    earlier release is skipped by its name)."""
    newest: ObjectVersionTypeDef | None = None
    prefix = dataset_prefix(model)
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Versions", []):
            key = item["Key"]
            name = key[len(prefix) :]
            if (
                not item.get("IsLatest")
                or not key.endswith(DATASET_SUFFIX)
                or "/" in name
                or EARLIER_FEEDBACK_DATASET_NAME.match(name)
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
