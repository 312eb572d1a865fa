"""Turn one uploaded dataset object into one Step Functions execution.

The execution name is derived from the object's identity (bucket, key, version id or sequencer), and
Step Functions refuses a second execution with the same name, so a redelivered event cannot start
a second run.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import boto3

from mlstack_core.observability.pipeline import MetricUnit, logger, metrics
from mlstack_core.settings import stack_settings

DATASET_KEY = re.compile(r"^datasets/(?P<model>[A-Za-z0-9][A-Za-z0-9_-]{0,63})/[^/]+\.csv$")


def dataset_model(key: str) -> str | None:
    """The model name for a dataset key, or None when the key does not start a run."""
    match = DATASET_KEY.match(key)
    return match.group("model") if match else None


def execution_name(
    model: str, bucket: str, key: str, version_id: str | None, sequencer: str | None
) -> str:
    identity = json.dumps([bucket, key, version_id, sequencer])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return f"{model[:50]}-{digest}"


def start_training_run(
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    etag: str | None,
    size: int | None,
    sequencer: str | None,
) -> dict[str, Any]:
    model = dataset_model(key)
    if model is None:
        logger.info("Ignoring object that is not datasets/<model>/<file>.csv", extra={"key": key})
        metrics.add_metric(name="IgnoredObjects", unit=MetricUnit.Count, value=1)
        return {"started": False, "reason": "not a dataset key", "key": key}

    name = execution_name(model, bucket, key, version_id, sequencer)
    run_input = {
        "model": model,
        "dataset": {
            "bucket": bucket,
            "key": key,
            "version_id": version_id,
            "etag": etag,
            "size": size,
        },
    }
    client = boto3.client("stepfunctions")
    try:
        response = client.start_execution(
            stateMachineArn=stack_settings().state_machine_arn,
            name=name,
            input=json.dumps(run_input),
        )
    except client.exceptions.ExecutionAlreadyExists:
        logger.info("Duplicate delivery: run already started", extra={"execution_name": name})
        metrics.add_metric(name="DuplicateTriggers", unit=MetricUnit.Count, value=1)
        return {"started": False, "reason": "duplicate delivery", "execution_name": name}

    metrics.add_metric(name="TrainingRunsStarted", unit=MetricUnit.Count, value=1)
    logger.info(
        "Training run started", extra={"model": model, "execution": response["executionArn"]}
    )
    return {"started": True, "model": model, "execution_arn": response["executionArn"]}
