"""``mlstack score``: upload a file for batch scoring, follow the job, print its account."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlstack.cli.errors import CommandError, require_model
from mlstack.cli.stack import StackClient
from mlstack_core.contract.batch import max_refused_share as checked_refused_share
from mlstack_core.storage_keys import (
    BATCH_KEY,
    batch_file_key,
    job_manifest_key,
    job_parts_prefix,
    job_prefix,
    model_name_problem,
)

Printer = Callable[[str], None]


def upload_batch(
    client: StackClient,
    model: str,
    path: Path,
    *,
    job: str | None = None,
    version: int | None = None,
    keep: list[str] | None = None,
    max_refused_share: float | None = None,
) -> dict[str, Any]:
    """Put ``path`` at batch/<model>/<job>.csv with the job's options as object metadata: the
    upload starts the job, as a plain S3 upload would."""
    job = job or path.stem
    key = batch_file_key(model, job)
    problem = model_name_problem(model)
    if problem is None and (model_name_problem(job) or not BATCH_KEY.match(key)):
        problem = f"{job!r} is not a job name: use letters, digits, '-' and '_' (up to 64)"
    if problem:
        raise CommandError(problem)
    metadata = {}
    if version is not None:
        metadata["mlstack-version"] = str(version)
    if keep:
        metadata["mlstack-keep"] = ",".join(keep)
    if max_refused_share is not None:
        # Refused here, before the upload, as the job would refuse it (RefusedShareOutOfRange).
        checked_refused_share(max_refused_share)
        metadata["mlstack-max-refused-share"] = str(max_refused_share)
    require_model(client.registry, model)
    bucket = client.outputs["DataBucketName"]
    response = client.session.client("s3").put_object(
        Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="text/csv", Metadata=metadata
    )
    return {"bucket": bucket, "key": key, "version_id": response.get("VersionId"), "job": job}


def data_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


def batch_rows(client: StackClient) -> int:
    """The deployed scoring machine's ItemBatcher size (rows per part)."""
    sfn = client.session.client("stepfunctions")
    machine = sfn.describe_state_machine(stateMachineArn=client.outputs["ScoringStateMachineArn"])
    for state in json.loads(machine["definition"])["States"].values():
        batcher = state.get("ItemBatcher")
        if batcher:
            return int(batcher.get("MaxItemsPerBatch", 1))
    return 1


def follow_job(
    client: StackClient,
    execution_arn: str,
    prefix: str,
    total_rows: int,
    say: Printer = print,
    poll_seconds: float = 1.0,
) -> dict[str, Any]:
    """Print rows done of the total as parts appear; the execution's description at its end."""
    sfn, s3 = client.session.client("stepfunctions"), client.session.client("s3")
    bucket = client.outputs["DataBucketName"]
    per_part = batch_rows(client)
    shown = -1
    while True:
        description = dict(sfn.describe_execution(executionArn=execution_arn))
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=job_parts_prefix(prefix))
        done = min(total_rows, listing.get("KeyCount", 0) * per_part)
        if done != shown:
            say(f"  scored {done:,} of {total_rows:,} rows")
            shown = done
        if description["status"] != "RUNNING":
            return description
        time.sleep(poll_seconds)


def manifest_summary(manifest: dict[str, Any], bucket: str) -> str:
    refused = manifest["rows_refused"]
    job = job_prefix(manifest["model"], manifest["job"])
    lines = [
        f"job {manifest['job']}: version {manifest['version']} of {manifest['model']} scored "
        f"{manifest['rows_scored']:,} of {manifest['rows_in']:,} rows in {manifest['seconds']:.1f}s"
        + (f"; {refused:,} refused (s3://{bucket}/{manifest['errors']})" if refused else ""),
        f"  {len(manifest['parts'])} part(s), in the file's order, under "
        f"s3://{bucket}/{job_parts_prefix(job)}",
        f"  manifest: s3://{bucket}/{job_manifest_key(job)}",
    ]
    return "\n".join(lines)
