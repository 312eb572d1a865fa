"""MeasureDataset: how big the upload is, and so where its run trains.

A run trains on the functions (fast to start, nothing to pay at rest) unless its table is too big
for them: then Preprocess and each candidate's Train run the same code as ECS tasks on Fargate
(statemachine/training.asl.json, ChooseTrainingPath). Deciding must not read the table: the
object's size comes from its metadata and the rows from the first MiB of it, so measuring a
10-million-row file costs one ranged GET.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import ClientError

from mlstack_core.candidates import (
    ORDINAL_CATEGORY_FAMILIES,
    SPARSE_ONE_HOT_FAMILIES,
    spec_families,
)
from mlstack_core.errors import ComputeOutsideStackLimits, DatasetTooLargeForStack, SpecError
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model
from mlstack_core.payloads import Compute, ExecutionInput, TaskNetwork
from mlstack_core.settings import TrainingComputeSettings
from mlstack_core.spec import load_spec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# How much of the file is read to estimate its rows.
SAMPLE_BYTES: Final = 1 << 20
# Train's peak memory per cell of the table (rows x columns), across the copies a fit makes (the
# split's arrays, the model input, the pipeline's transformed matrix, the estimator's own), and
# what a Train process holds before any data (the libraries). Measured (docs/scale.md, "Lean
# training input") on a 1,000,000 x 10 table, one task at a time: HistGradientBoosting, whose
# categoricals are ordinal codes, 24 bytes a cell, ridge on sparse one-hot columns 36 (before the
# model input kept its numbers unboxed, 56 and 51); one with dense one-hot columns (63 inputs
# instead of 9) about 300, which the families that still one-hot encode densely (forests, k-NN)
# approach on such a table. The lean figure keeps the same margin (about 1.8x) over the neediest.
LEAN_TRAIN_BYTES_PER_CELL: Final = 64
DENSE_TRAIN_BYTES_PER_CELL: Final = 320
LEAN_INPUT_FAMILIES: Final = ORDINAL_CATEGORY_FAMILIES | SPARSE_ONE_HOT_FAMILIES
TRAIN_BASE_MIB: Final = 512
# The share of the Train function's memory an estimate may fill and still train there.
FUNCTION_MEMORY_HEADROOM: Final = 0.8
# A task gets this much more memory than the estimate, for what the estimate does not see.
TASK_MEMORY_MARGIN: Final = 1.25
# The lock's lease beyond a task's own limit (tests/unit/test_run_time_limits.py derives both):
# for a candidate, CollectTrainedCandidate and the retries; for the preprocess task, also the
# alert and the release when it fails.
TASK_COLLECT_SECONDS: Final = 120
PREPROCESS_TASK_LEASE_MARGIN_SECONDS: Final = 540

# Fargate's task sizes: CPU units -> (least, most, step) memory in MiB.
FARGATE_MEMORY: Final[dict[int, tuple[int, int, int]]] = {
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}


@dataclass(frozen=True)
class TableSize:
    """What the first MiB says about the whole file."""

    bytes: int
    columns: int
    estimated_rows: int


def table_size(sample: bytes, total_bytes: int, delimiter: str) -> TableSize:
    """Columns from the header; rows from the mean length of the sample's complete lines (all of
    them when the sample is the whole file)."""
    complete = sample if len(sample) >= total_bytes else sample[: sample.rfind(b"\n") + 1]
    text = complete.decode("utf-8-sig", errors="replace")
    lines = text.splitlines(keepends=True)
    if not lines:
        return TableSize(total_bytes, 0, 0)
    header = next(csv.reader(io.StringIO(lines[0]), delimiter=delimiter), [])
    body = lines[1:]
    if len(sample) >= total_bytes:
        rows = sum(1 for line in body if line.strip())
    elif body:
        mean = sum(len(line.encode()) for line in body) / len(body)
        rows = math.ceil((total_bytes - len(lines[0].encode())) / mean)
    else:  # one header line longer than the sample: nothing to estimate rows from
        rows = 0
    return TableSize(total_bytes, len(header), rows)


def train_bytes_per_cell(families: set[str]) -> int:
    """The most any of ``families`` needs a cell (an unknown family counts as dense)."""
    return (
        LEAN_TRAIN_BYTES_PER_CELL
        if families and families <= LEAN_INPUT_FAMILIES
        else DENSE_TRAIN_BYTES_PER_CELL
    )


def estimated_train_mib(size: TableSize, families: set[str]) -> int:
    """Peak memory of one Train fit on the whole table, for the neediest of ``families``."""
    cells = size.estimated_rows * max(size.columns, 1)
    return TRAIN_BASE_MIB + math.ceil(cells * train_bytes_per_cell(families) / 2**20)


def fargate_size(memory_mib: int, settings: TrainingComputeSettings) -> tuple[int, int]:
    """The smallest Fargate task with at least ``memory_mib`` (CPU units, MiB), given the most
    CPU the stack allows for that memory; DatasetTooLargeForStack when none is allowed."""
    for cpu, (least, most, step) in sorted(FARGATE_MEMORY.items()):
        if cpu > settings.task_max_cpu:
            break
        memory = max(least, step * math.ceil(memory_mib / step))
        if memory <= min(most, settings.task_max_memory_mib):
            best_cpu = max(
                c
                for c, (low, high, _) in FARGATE_MEMORY.items()
                if c <= settings.task_max_cpu and low <= memory <= high
            )
            return best_cpu, memory
    raise DatasetTooLargeForStack(
        f"training this table needs about {memory_mib:,} MiB; the largest training task this "
        f"stack allows has {settings.task_max_memory_mib:,} MiB (TrainingTaskMaxMemoryMiB) and "
        f"{settings.task_max_cpu} CPU units (TrainingTaskMaxCpu)"
    )


def lenient_spec(spec_body: bytes | None) -> Mapping[str, Any]:
    """The spec with its defaults; a spec that does not load asks for nothing here, and
    Preprocess then fails the run by the spec's own error, in the state that names it."""
    try:
        return load_spec(spec_body)
    except SpecError:
        return {}


def check_requested_compute(
    requested: Mapping[str, Any], settings: TrainingComputeSettings
) -> None:
    problems = []
    cpu, memory = requested.get("cpu"), requested.get("memory_mib")
    if cpu is not None and int(cpu) > settings.task_max_cpu:
        problems.append(
            f"compute.cpu {cpu} is above the stack's {settings.task_max_cpu} (TrainingTaskMaxCpu)"
        )
    if memory is not None and int(memory) > settings.task_max_memory_mib:
        problems.append(
            f"compute.memory_mib {memory} is above the stack's "
            f"{settings.task_max_memory_mib} (TrainingTaskMaxMemoryMiB)"
        )
    if problems:
        raise ComputeOutsideStackLimits("spec.json: " + "; ".join(problems))


def choose_path(
    size: TableSize, estimate_mib: int, path: str, settings: TrainingComputeSettings
) -> tuple[Literal["lambda", "fargate"], str]:
    """Where the run trains, and the reason, in words for the run's log and progress view."""
    if path == "lambda":
        return "lambda", "spec.json compute.path is lambda"
    if path == "fargate":
        return "fargate", "spec.json compute.path is fargate"
    threshold = settings.large_dataset_threshold_mib * 2**20
    if size.bytes > threshold:
        return "fargate", (
            f"the CSV has {size.bytes:,} bytes, above LargeDatasetThresholdMiB "
            f"({settings.large_dataset_threshold_mib} MiB)"
        )
    room = int(settings.train_function_memory_mib * FUNCTION_MEMORY_HEADROOM)
    if estimate_mib > room:
        return "fargate", (
            f"training needs about {estimate_mib:,} MiB, more than the Train function's "
            f"{settings.train_function_memory_mib:,} MiB leave room for"
        )
    return "lambda", f"the CSV has {size.bytes:,} bytes and fits the functions"


def compute_for(
    size: TableSize,
    requested: Mapping[str, Any],
    settings: TrainingComputeSettings,
    preprocess_event: ExecutionInput,
    families: set[str],
) -> Compute:
    check_requested_compute(requested, settings)
    estimate = estimated_train_mib(size, families)
    path, reason = choose_path(size, estimate, str(requested.get("path") or "auto"), settings)
    wanted_memory = int(requested.get("memory_mib") or estimate * TASK_MEMORY_MARGIN)
    cpu, memory = (
        fargate_size(wanted_memory, settings) if path == "fargate" else (1024, 2048)
    )  # a Lambda run never starts a task: the smallest size stands in
    if requested.get("cpu") is not None and path == "fargate":
        cpu = int(requested["cpu"])
        least, most, _ = FARGATE_MEMORY[cpu]
        memory = min(max(memory, least), most, settings.task_max_memory_mib)
    network: TaskNetwork = {
        "Subnets": list(settings.subnet_ids),
        "SecurityGroups": list(settings.security_group_ids),
        "AssignPublicIp": "DISABLED" if settings.assign_public_ip == "DISABLED" else "ENABLED",
    }
    task_seconds = settings.task_timeout_seconds + TASK_COLLECT_SECONDS
    return {
        "path": path,
        "reason": reason,
        "dataset_bytes": size.bytes,
        "estimated_rows": size.estimated_rows,
        "columns": size.columns,
        "estimated_train_mib": estimate,
        "cpu": str(cpu),
        "memory": str(memory),
        "task_timeout_seconds": settings.task_timeout_seconds,
        "preprocess_lease_seconds": (
            settings.task_timeout_seconds + PREPROCESS_TASK_LEASE_MARGIN_SECONDS
        ),
        # Each candidate's limit on the task path; the functions' own (RunTimeLimits) otherwise.
        "candidate_seconds": task_seconds if path == "fargate" else None,
        # The preprocess task's command: its input (a task has no event).
        "preprocess_command": ["preprocess", "--event", json.dumps(preprocess_event)],
        "network": network,
    }


def read_sample(
    s3: S3Client, bucket: str, key: str, version_id: str | None, size: int | None
) -> tuple[bytes, int]:
    """The file's first SAMPLE_BYTES and its whole size, with one ranged GET (none for an empty
    file, which has no range to read: Preprocess then fails it as EmptyDataset)."""
    if size == 0:
        return b"", 0
    first = f"bytes=0-{SAMPLE_BYTES - 1}"
    try:
        answer = (
            s3.get_object(Bucket=bucket, Key=key, Range=first, VersionId=version_id)
            if version_id
            else s3.get_object(Bucket=bucket, Key=key, Range=first)
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty file
            return b"", 0
        raise
    sample = answer["Body"].read()
    content_range = answer.get("ContentRange") or ""
    total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(sample)
    return sample, total


def measure(
    event: ExecutionInput,
    *,
    s3: S3Client,
    spec_body: bytes | None,
    settings: TrainingComputeSettings,
) -> Compute:
    """``event``'s dataset checked as this stack's own (``check_own_input``) first."""
    model, dataset = event["model"], event["dataset"]
    spec = lenient_spec(spec_body)
    sample, total = read_sample(
        s3, dataset["bucket"], dataset["key"], dataset.get("version_id"), dataset.get("size")
    )
    size = table_size(sample, total, str(spec.get("delimiter") or ","))
    preprocess_event: ExecutionInput = {
        "model": model,
        "dataset": dataset,
        "execution_arn": event.get("execution_arn", ""),
        "execution_name": event.get("execution_name", ""),
    }
    compute = compute_for(
        size, dict(spec.get("compute") or {}), settings, preprocess_event, spec_families(spec)
    )
    per_model(model)
    metrics.add_metric(
        name="RunsOnFargate", unit=MetricUnit.Count, value=int(compute["path"] == "fargate")
    )
    logger.info(
        "Training path chosen",
        extra={"model": model, **{k: v for k, v in compute.items() if k != "network"}},
    )
    return compute
