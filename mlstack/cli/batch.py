"""``mlstack score``: upload a file for batch scoring, follow the job, print its account."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlstack.cli.errors import CommandError, require_model
from mlstack.cli.stack import StackClient
from mlstack_core.contract.batch import PART_ROWS_METADATA
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
    delimiter: str | None = None,
    explain: bool = False,
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
    if delimiter:
        metadata["mlstack-delimiter"] = metadata_delimiter(delimiter)
    if explain:
        metadata["mlstack-explain"] = "true"
    bucket = client.outputs["DataBucketName"]
    response = client.session.client("s3").put_object(
        Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="text/csv", Metadata=metadata
    )
    return {"bucket": bucket, "key": key, "version_id": response.get("VersionId"), "job": job}


def metadata_delimiter(delimiter: str) -> str:
    """``--delimiter`` as object metadata holds it (printable ASCII; a tab as ``\\t``)."""
    if delimiter in ("\t", "\\t", "tab"):
        return "\\t"
    if len(delimiter) != 1 or not delimiter.isprintable() or not delimiter.isascii():
        raise CommandError(f"--delimiter is one character, or \\t for a tab; got {delimiter!r}")
    if delimiter in ('"', " "):
        raise CommandError(f"--delimiter {delimiter!r} cannot separate CSV cells")
    return delimiter


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
    counted: dict[str, int] = {}  # part key -> its rows, each part looked at once
    shown = -1
    while True:
        description = dict(sfn.describe_execution(executionArn=execution_arn))
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=job_parts_prefix(prefix)
        ):
            for listed in page.get("Contents", []):
                if listed["Key"] not in counted:
                    counted[listed["Key"]] = part_rows(client, bucket, listed["Key"])
        done = min(total_rows, sum(counted.values()))
        if done != shown:
            say(f"  scored {done:,} of {total_rows:,} rows")
            shown = done
        if description["status"] != "RUNNING":
            return description
        time.sleep(poll_seconds)


def part_rows(client: StackClient, bucket: str, key: str) -> int:
    """The input rows a part accounts for (scored and refused), as the scoring function wrote
    them in its metadata: a batch's size depends on the ItemBatcher, which a local definition
    lacks, and the last batch of a job is smaller."""
    head = client.session.client("s3").head_object(Bucket=bucket, Key=key)
    rows = head.get("Metadata", {}).get(PART_ROWS_METADATA)
    return int(rows) if rows is not None else batch_rows(client)


def read_manifest(
    client: StackClient, bucket: str, prefix: str, version_id: str | None
) -> dict[str, Any] | None:
    """The job's manifest.json, or None when the job ended before writing it (one left by an
    earlier job of the same name, of another version of the file, is not this job's)."""
    s3 = client.session.client("s3")
    try:
        body = s3.get_object(Bucket=bucket, Key=job_manifest_key(prefix))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    manifest: dict[str, Any] = json.loads(body)
    return manifest if manifest["input"].get("version_id") == version_id else None


def errors_path(output: Path) -> Path:
    """Where a job's errors.csv goes beside its output: scored.csv -> scored.errors.csv."""
    return output.with_name(f"{output.stem}.errors.csv")


def download_output(
    client: StackClient, manifest: dict[str, Any], bucket: str, output: Path
) -> list[Path]:
    """The job's scored rows as one CSV at ``output``, in the input's order (the parts in the
    manifest's order, one header), and its errors.csv beside it when it refused rows."""
    s3 = client.session.client("s3")
    header: str | None = None
    with output.open("w", encoding="utf-8", newline="") as out:
        for key in manifest["parts"]:
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
            if header is None:
                # The header as the scoring function wrote it (csv, "\r\n"): a kept column's
                # name may hold a line break, so it is not simply the first line.
                names = next(csv.reader(io.StringIO(text, newline="")), [])
                written = io.StringIO()
                csv.writer(written, lineterminator="\r\n").writerow(names)
                header = written.getvalue()
                out.write(header)
            if not text.startswith(header):
                raise CommandError(f"part {key} does not have the job's header")
            out.write(text[len(header) :])
        if header is None:  # no part at all: an empty file, not a missing one
            out.write("")
    written_paths = [output]
    if manifest["rows_refused"]:
        errors = errors_path(output)
        body = s3.get_object(Bucket=bucket, Key=manifest["errors"])["Body"].read()
        errors.write_bytes(body)
        written_paths.append(errors)
    return written_paths


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
