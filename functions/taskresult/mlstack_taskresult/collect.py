"""Read what a training task left, or say by name why it failed.

A task's only output is its exit code, so the task stores its result and its named error in S3
(``mlstack_task``); the state after it gets the task's stopped description, or Step Functions'
error when the task failed (``States.TaskFailed`` with the description as the cause, or
``States.Timeout`` at TrainingTaskTimeoutSeconds). This turns either into what the Lambda path's
state would have returned or raised, so the rest of the run cannot tell the paths apart: the run
fails by the same name (SpecError, TooFewRows, ...) and a candidate fails as one failed candidate.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from mlstack_core import errors
from mlstack_core.clients import client
from mlstack_core.errors import (
    MlstackError,
    TrainingTaskFailed,
    TrainingTaskOutOfMemory,
    TrainingTaskStopped,
    TrainingTaskTimedOut,
)
from mlstack_core.observability.pipeline import logger, tracer
from mlstack_core.settings import stack_settings
from mlstack_core.storage_keys import (
    candidate_result_key,
    candidate_task_error_key,
    prepared_run_key,
    preprocess_task_error_key,
)

if TYPE_CHECKING:  # the payloads import numpy, which this function's layer does not have
    from mlstack_core.payloads import CollectedCandidate, Run, TaskOutcome, TaskResultInput

# Exit code of a process the kernel killed (SIGKILL): on Fargate, the memory limit's.
KILLED_EXIT_CODE = 137
# stopCodes of tasks stopped from outside (a person, ECS, a Spot reclaim), not by their container.
STOPPED_FROM_OUTSIDE = frozenset({"UserInitiated", "ServiceSchedulerInitiated", "SpotInterruption"})


@tracer.capture_method
def collect_prepared_run(event: TaskResultInput) -> Run:
    model, run_id = event["model"], event["run_id"]
    _raise_if_failed(event["task"], preprocess_task_error_key(model, run_id), "the preprocess task")
    body, _, _ = _read(prepared_run_key(model, run_id))
    run: Run = json.loads(body)
    return run


@tracer.capture_method
def collect_trained_candidate(event: TaskResultInput) -> CollectedCandidate:
    model, run_id, candidate = event["model"], event["run_id"], event["candidate"]
    candidate_id = candidate["candidate_id"]
    _raise_if_failed(
        event["task"],
        candidate_task_error_key(model, run_id, candidate_id),
        f"the train task of {candidate_id}",
    )
    key = candidate_result_key(model, run_id, candidate_id)
    body, version_id, sha256 = _read(key)
    result = json.loads(body)
    return {
        "candidate_id": result["candidate_id"],
        "family": result["family"],
        "status": result["status"],
        "fit_seconds": result.get("fit_seconds"),
        "result_key": key,
        "result_version_id": version_id,
        "result_sha256": sha256,
    }


def _read(key: str) -> tuple[bytes, str | None, str]:
    answer = client("s3").get_object(Bucket=stack_settings().model_bucket, Key=key)
    body = answer["Body"].read()
    return body, answer.get("VersionId"), hashlib.sha256(body).hexdigest()


def _raise_if_failed(task: TaskOutcome, error_key: str, what: str) -> None:
    """The task's own named error when it stored one; else a name for how it stopped. A task
    that exited 0 but stored an error (it should not) fails too: its result cannot be trusted."""
    stored = _stored_error(error_key)
    if stored is not None:
        raise _named(stored)
    if "Error" not in task:
        return
    error, cause = task.get("Error", ""), task.get("Cause") or ""
    if error == "States.Timeout":
        raise TrainingTaskTimedOut(
            f"{what} ran longer than TrainingTaskTimeoutSeconds and was stopped"
        )
    description = _description(cause)
    containers = description.get("Containers") or [{}]
    exit_code = containers[0].get("ExitCode")
    reason = containers[0].get("Reason") or ""
    stopped = description.get("StoppedReason") or ""
    if exit_code == KILLED_EXIT_CODE or "OutOfMemory" in reason:
        memory = description.get("Memory") or "its"
        raise TrainingTaskOutOfMemory(
            f"{what} ran out of {memory} MiB of memory and was stopped ({reason or stopped}); "
            "give it more with spec.json compute.memory_mib, up to TrainingTaskMaxMemoryMiB"
        )
    if description.get("StopCode") in STOPPED_FROM_OUTSIDE:
        raise TrainingTaskStopped(f"{what} was stopped before it finished: {stopped}")
    raise TrainingTaskFailed(
        f"{what} failed ({error}): {stopped or reason or cause[:500] or 'no reason given'}"
        + (f"; exit code {exit_code}" if exit_code is not None else "")
    )


def _stored_error(key: str) -> dict[str, Any] | None:
    try:
        answer = client("s3").get_object(Bucket=stack_settings().model_bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    document: dict[str, Any] = json.loads(answer["Body"].read())
    return document


def _named(stored: dict[str, Any]) -> Exception:
    """The stored error as the same class, so the state fails by the same name as on the
    Lambda path; an error outside the project's family keeps its name in the message."""
    name, message = str(stored.get("errorType", "")), str(stored.get("errorMessage", ""))
    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, MlstackError):
        return found(message)
    logger.warning("Training task failed with an error of its own", extra={"error": name})
    return TrainingTaskFailed(f"{name}: {message}")


def _description(cause: str) -> dict[str, Any]:
    """The task's description in a States.TaskFailed cause (DescribeTasks' task, as JSON)."""
    try:
        document = json.loads(cause)
    except (TypeError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}
