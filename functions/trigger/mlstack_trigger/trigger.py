"""Turn one uploaded object into one Step Functions execution: a dataset into a training run,
an import's manifest (``imports/<model>/<upload>/manifest.json``, ``mlstack import``) into a
training run that evaluates the imported model, a batch file (``batch/<model>/<job>.csv``) into
a scoring job.

The execution name is derived from the object's identity (bucket, key, version id or sequencer), and
Step Functions refuses a second execution with the same name, so a redelivered event cannot start
a second run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import boto3

from mlstack_core.observability.pipeline import MetricUnit, logger, metrics
from mlstack_core.settings import guard_settings, stack_settings
from mlstack_core.storage_keys import (
    BATCH_KEY,
    BATCH_PREFIX,
    DATASET_KEY,
    IMPORT_MANIFEST_KEY,
    IMPORTS_PREFIX,
    model_name_problem,
)


def dataset_model(key: str) -> str | None:
    """The model name for a dataset key, or None when the key does not start a run."""
    match = DATASET_KEY.match(key)
    if match is None or model_name_problem(match.group("model")):
        return None
    return match.group("model")


def execution_name(
    model: str, bucket: str, key: str, version_id: str | None, sequencer: str | None
) -> str:
    identity = json.dumps([bucket, key, version_id, sequencer])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return f"{model[:50]}-{digest}"


def refuse_oversized(model: str, key: str, size: int, limit: int) -> dict[str, Any]:
    """No run for a file above MaxUploadMiB: the refusal is alerted like a failed run."""
    reason = f"{key} has {size:,} bytes; this stack accepts at most {limit:,} (MaxUploadMiB)"
    boto3.client("sns").publish(
        TopicArn=stack_settings().alerts_topic_arn,
        Subject="mlstack: upload refused",
        Message=json.dumps(
            {"model": model, "key": key, "error": "DatasetTooLarge", "cause": reason}
        ),
        MessageAttributes={
            "event": {"DataType": "String", "StringValue": "Failed"},
            "model": {"DataType": "String", "StringValue": model},
            "error": {"DataType": "String", "StringValue": "DatasetTooLarge"},
        },
    )
    metrics.add_metric(name="RefusedUploads", unit=MetricUnit.Count, value=1)
    logger.warning("Upload refused", extra={"model": model, "key": key, "reason": reason})
    return {"started": False, "reason": reason, "error": "DatasetTooLarge", "key": key}


@dataclass(frozen=True)
class Upload:
    """One object version, as the S3 event names it."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sequencer: str | None
    requester: str | None = None

    def execution_name(self, model: str) -> str:
        return execution_name(model, self.bucket, self.key, self.version_id, self.sequencer)


def start_run(upload: Upload) -> dict[str, Any]:
    """A batch file starts a scoring job; anything else is a training upload (or ignored)."""
    if upload.key.startswith(IMPORTS_PREFIX):
        return start_import_run(upload)
    batch = BATCH_KEY.match(upload.key)
    if batch is None and upload.key.startswith(BATCH_PREFIX):
        # A job's own output (batch/<model>/<job>/...): the rule sees it, nothing starts.
        return {"started": False, "reason": "output of a batch job", "key": upload.key}
    if batch is None:
        return start_training_run(upload)
    return start_scoring_job(upload, batch.group("model"), batch.group("job"))


def start_training_run(upload: Upload) -> dict[str, Any]:
    key = upload.key
    model = dataset_model(key)
    if model is None:
        match = DATASET_KEY.match(key)
        problem = model_name_problem(match.group("model")) if match else None
        metrics.add_metric(name="IgnoredObjects", unit=MetricUnit.Count, value=1)
        if problem:  # meant as a dataset: say why no run starts
            logger.warning("Dataset upload starts no run", extra={"key": key, "reason": problem})
            return {"started": False, "reason": problem, "key": key}
        logger.info("Ignoring object that is not datasets/<model>/<file>.csv", extra={"key": key})
        return {"started": False, "reason": "not a dataset key", "key": key}

    limit = guard_settings().max_upload_bytes
    if upload.size is not None and upload.size > limit:
        return refuse_oversized(model, key, upload.size, limit)

    name = upload.execution_name(model)
    dataset = {
        "bucket": upload.bucket,
        "key": key,
        "version_id": upload.version_id,
        "etag": upload.etag,
        "size": upload.size,
    }
    started = _start_once(
        stack_settings().state_machine_arn, name, {"model": model, "dataset": dataset}
    )
    if started is None:
        return {"started": False, "reason": "duplicate delivery", "execution_name": name}
    metrics.add_metric(name="TrainingRunsStarted", unit=MetricUnit.Count, value=1)
    logger.info("Training run started", extra={"model": model, "execution": started})
    return {"started": True, "model": model, "execution_arn": started}


def start_import_run(upload: Upload) -> dict[str, Any]:
    """An import's manifest starts a training run whose source is the import; its other files
    (written before it) start nothing."""
    match = IMPORT_MANIFEST_KEY.match(upload.key)
    problem = model_name_problem(match.group("model")) if match else None
    if match is None or problem:
        metrics.add_metric(name="IgnoredObjects", unit=MetricUnit.Count, value=1)
        reason = problem or "a file of an import (its manifest starts the run)"
        return {"started": False, "reason": reason, "key": upload.key}
    model = match.group("model")
    name = upload.execution_name(model)
    dataset: dict[str, Any] = {
        "bucket": upload.bucket,
        "key": upload.key,
        "version_id": upload.version_id,
        "etag": upload.etag,
        "size": upload.size,
    }
    if upload.requester:
        dataset["requester"] = upload.requester
    started = _start_once(
        stack_settings().state_machine_arn,
        name,
        {"model": model, "dataset": dataset, "source": "import"},
    )
    if started is None:
        return {"started": False, "reason": "duplicate delivery", "execution_name": name}
    metrics.add_metric(name="ImportRunsStarted", unit=MetricUnit.Count, value=1)
    logger.info("Import run started", extra={"model": model, "execution": started})
    return {"started": True, "model": model, "execution_arn": started}


def start_scoring_job(upload: Upload, model: str, job: str) -> dict[str, Any]:
    problem = model_name_problem(model) or _job_name_problem(job)
    if problem:
        metrics.add_metric(name="IgnoredObjects", unit=MetricUnit.Count, value=1)
        logger.warning("Batch file starts no job", extra={"key": upload.key, "reason": problem})
        return {"started": False, "reason": problem, "key": upload.key}
    name = f"{model[:30]}-{job[:30]}-" + upload.execution_name(model)[-16:]
    dataset = {"bucket": upload.bucket, "key": upload.key, "version_id": upload.version_id}
    started = _start_once(
        stack_settings().scoring_state_machine_arn,
        name,
        {"model": model, "job": job, "dataset": dataset},
    )
    if started is None:
        return {"started": False, "reason": "duplicate delivery", "execution_name": name}
    metrics.add_metric(name="BatchJobsStarted", unit=MetricUnit.Count, value=1)
    logger.info("Batch job started", extra={"model": model, "job": job, "execution": started})
    return {"started": True, "model": model, "job": job, "execution_arn": started}


def _start_once(machine_arn: str, name: str, run_input: dict[str, Any]) -> str | None:
    """The new execution's ARN, or None when this object version already started one (a
    redelivered event: Step Functions refuses a second execution of the same name)."""
    client = boto3.client("stepfunctions")
    try:
        response = client.start_execution(
            stateMachineArn=machine_arn, name=name, input=json.dumps(run_input)
        )
    except client.exceptions.ExecutionAlreadyExists:
        logger.info("Duplicate delivery: run already started", extra={"execution_name": name})
        metrics.add_metric(name="DuplicateTriggers", unit=MetricUnit.Count, value=1)
        return None
    arn: str = response["executionArn"]
    return arn


def _job_name_problem(job: str) -> str | None:
    problem = model_name_problem(job)
    return problem.replace("model name", "job name") if problem else None
