"""The large path, through statemachine/training.asl.json itself: with LargeDatasetThreshold
lowered, an upload's Preprocess and each candidate's Train run as ECS tasks (the local cloud runs
the training image's entrypoint in-process), and the version is registered, promoted and served
exactly as on the Lambda path. A task that runs out of memory, is stopped or fails on bad data
ends the run by name, alerts, releases the lock and leaves production as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack.localcloud.tasks import InProcessTasks, TaskFault
from tests.helpers.local_cloud import (
    TARGET,
    AlertInbox,
    entered_states,
    execution_events,
    function_environment,
    penguin_rows,
    predict_one,
)
from tests.helpers.tables import records_csv

SPEC = {"target": TARGET, "candidates": ["logistic_regression", "random_forest"]}


@pytest.fixture
def large_path(cloud: LocalCloud) -> Iterator[None]:
    """Every upload is "large": the stack's threshold at 0 MiB, as the function sees it."""
    with function_environment(cloud, "PreprocessFunction", LARGE_DATASET_THRESHOLD_MIB="0"):
        yield


def _tasks(cloud: LocalCloud) -> InProcessTasks:
    assert cloud.tasks is not None
    return cloud.tasks


def _family(cloud: LocalCloud, logical_id: str) -> str:
    """The task definition family the stack registered for ``logical_id``."""
    assert cloud.stack is not None
    definition = cloud.stack.physical_ids[logical_id]
    described = cloud.client("ecs").describe_task_definition(taskDefinition=definition)
    return str(described["taskDefinition"]["family"])


def _run(cloud: LocalCloud, stack: StackClient, model: str, body: bytes, spec: Any) -> Any:
    upload = stack.upload_dataset(model, body, spec, file_name="large.csv")
    execution = stack.find_execution(upload)
    return execution, cloud.wait_for_execution(execution, timeout=600)


def test_a_large_upload_trains_in_tasks_and_is_promoted_and_served(
    cloud: LocalCloud, stack: StackClient, large_path: None
) -> None:
    started = len(_tasks(cloud).stopped)
    execution, result = _run(cloud, stack, "fargate-penguins", records_csv(penguin_rows()), SPEC)
    assert result["status"] == "SUCCEEDED", result.get("cause")

    entered = entered_states(execution_events(cloud, execution))
    assert "Preprocess" not in entered
    assert "TrainCandidate" not in entered
    assert entered[:7] == [
        "AcquireRunLock",
        "ChooseSource",
        "MeasureDataset",
        "ChooseTrainingPath",
        "RenewRunLockForPreprocessTask",
        "PreprocessTask",
        "CollectPreparedRun",
    ]
    candidates = entered.count("TrainCandidateTask")
    assert candidates > 1
    assert entered.count("CollectTrainedCandidate") == candidates
    assert "RegisterAndPromote" in entered

    tasks = _tasks(cloud).stopped[started:]
    assert sorted(t.argv[0] for t in tasks) == ["preprocess"] + ["train"] * candidates
    assert all(t.exit_code == 0 for t in tasks)
    preprocess_family = _family(cloud, "PreprocessTaskDefinition")
    assert [t.family for t in tasks if t.argv[0] == "preprocess"] == [preprocess_family]

    version = stack.registry.get_alias("fargate-penguins")
    assert version == 1
    document = stack.registry.get_version("fargate-penguins", version)
    assert document["status"] == "Approved"
    status, _, answer = predict_one(cloud, "fargate-penguins")
    assert (status, answer["version"]) == (200, 1)
    assert answer["predictions"][0] in {"Adelie", "Chinstrap", "Gentoo"}


def test_a_preprocess_task_out_of_memory_fails_the_run_by_name_and_keeps_production(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox
) -> None:
    model = "fargate-oom"
    _, first = _run(cloud, stack, model, records_csv(penguin_rows()), SPEC)
    assert first["status"] == "SUCCEEDED", first.get("cause")
    alerts.drain()
    with function_environment(cloud, "PreprocessFunction", LARGE_DATASET_THRESHOLD_MIB="0"):
        _tasks(cloud).inject(TaskFault(_family(cloud, "PreprocessTaskDefinition"), "out_of_memory"))
        execution, result = _run(cloud, stack, model, records_csv(penguin_rows()), None)

    assert result["status"] == "FAILED"
    assert result["error"] == "TrainingTaskOutOfMemory", result.get("cause")
    assert "compute.memory_mib" in json.loads(result["cause"])["errorMessage"]
    entered = entered_states(execution_events(cloud, execution))
    assert "TrainCandidates" not in entered
    assert entered[-4:] == ["NotifyFailure", "ReleaseRunLock", "Outcome", "TrainingFailed"]
    failed = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert [m["MessageAttributes"]["error"]["Value"] for m in failed] == ["TrainingTaskOutOfMemory"]
    assert stack.registry.get_alias(model) == 1
    assert len(stack.registry.list_versions(model)) == 1
    # The lock was released: the next upload trains.
    _, after = _run(cloud, stack, model, records_csv(penguin_rows()), None)
    assert after["status"] == "SUCCEEDED", after.get("cause")


def test_a_bad_table_fails_the_preprocess_task_by_the_same_name_as_on_the_functions(
    cloud: LocalCloud, stack: StackClient, alerts: AlertInbox, large_path: None
) -> None:
    alerts.drain()
    rows = [row for row in penguin_rows() if row[TARGET] == "Adelie"]
    _, result = _run(cloud, stack, "fargate-single", records_csv(rows), SPEC)
    assert result["status"] == "FAILED"
    assert result["error"] == "SingleClass", result.get("cause")
    assert "nothing to learn" in json.loads(result["cause"])["errorMessage"]
    failed = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert [m["MessageAttributes"]["error"]["Value"] for m in failed] == ["SingleClass"]


def test_a_train_task_out_of_memory_is_one_failed_candidate(
    cloud: LocalCloud, stack: StackClient, large_path: None
) -> None:
    """As a Train function that fails: the gate chooses among the candidates that trained."""
    _tasks(cloud).inject(TaskFault(_family(cloud, "TrainTaskDefinition"), "out_of_memory"))
    execution, result = _run(cloud, stack, "fargate-one-oom", records_csv(penguin_rows()), SPEC)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    events = execution_events(cloud, execution)
    failed = [
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in events
        if e.get("stateExitedEventDetails", {}).get("name") == "CandidateFailed"
    ]
    assert [f["error"] for f in failed] == ["TrainingTaskOutOfMemory"]
    assert stack.registry.get_alias("fargate-one-oom") == 1
