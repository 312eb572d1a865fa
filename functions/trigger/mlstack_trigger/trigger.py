"""Turn one uploaded dataset object into one Step Functions execution.

The execution name is derived from the object's identity (bucket, key, version id or sequencer), and
Step Functions refuses a second execution with the same name, so a redelivered event cannot start
a second run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3

from mlstack_core.layout import DATASET_KEY, model_name_problem
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics
from mlstack_core.settings import stack_settings


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
        match = DATASET_KEY.match(key)
        problem = model_name_problem(match.group("model")) if match else None
        metrics.add_metric(name="IgnoredObjects", unit=MetricUnit.Count, value=1)
        if problem:  # meant as a dataset: say why no run starts
            logger.warning("Dataset upload starts no run", extra={"key": key, "reason": problem})
            return {"started": False, "reason": problem, "key": key}
        logger.info("Ignoring object that is not datasets/<model>/<file>.csv", extra={"key": key})
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
