"""The local cloud's ECS tasks (mlstack.localcloud.tasks): moto's Fargate RunTask runs the training
container's entrypoint in this process, reports its exit as ECS's DescribeTasks does, and fails a
Step Functions ``runTask.sync`` state with ``States.TaskFailed`` when it exits non-zero. A fake
entrypoint stands in for the image's, so nothing trains here."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlstack.localcloud.tasks import (
    IMAGE_PYTHONPATH,
    InProcessTasks,
    TaskFault,
    image_entrypoint,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FAMILY = "train-task"


@dataclass
class FakeImage:
    """The entrypoint the tests' tasks run: each call answers with the next exit code (or raises
    it, if it is an exception), after ``release`` is set."""

    exit_codes: list[int | Exception] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    calls: list[list[str]] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.release.set()

    def main(self, argv: list[str]) -> int:
        with self._lock:
            self.calls.append(argv)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            answer = self.exit_codes.pop(0) if self.exit_codes else 0
        try:
            assert self.release.wait(10), "the test never released the task"
        finally:
            with self._lock:
                self.running -= 1
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Ecs:
    client: Any
    cluster: str
    subnet: str
    tasks: InProcessTasks
    image: FakeImage
    applied: dict[str, str]

    def run(self, family: str = FAMILY, **overrides: Any) -> str:
        response = self.client.run_task(
            cluster=self.cluster,
            taskDefinition=family,
            launchType="FARGATE",
            overrides=overrides,
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [self.subnet],
                    "securityGroups": [],
                    "assignPublicIp": "ENABLED",
                }
            },
        )
        arn: str = response["tasks"][0]["taskArn"]
        return arn

    def describe(self, task_arn: str) -> dict[str, Any]:
        task: dict[str, Any] = self.client.describe_tasks(cluster=self.cluster, tasks=[task_arn])[
            "tasks"
        ][0]
        return task

    def stopped(self, task_arn: str) -> dict[str, Any]:
        assert self.tasks.wait(10)
        task = self.describe(task_arn)
        assert task["lastStatus"] == "STOPPED"
        return task


def register(client: Any, family: str = FAMILY, container: str = "training") -> None:
    """A task definition as the template declares it: Fargate, the container's memory left to
    the task's, the stack's settings in its Environment."""
    client.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="1024",
        memory="2048",
        containerDefinitions=[
            {
                "name": container,
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/training:latest",
                "essential": True,
                "command": ["preprocess", "--event", "{}"],
                "environment": [
                    {"name": "DATA_BUCKET", "value": "data"},
                    {"name": "LOG_LEVEL", "value": "INFO"},
                ],
            }
        ],
    )


def make_ecs(image: FakeImage, memory_budget_mib: int = 64 * 1024) -> Iterator[Ecs]:
    applied: dict[str, str] = {}
    tasks = InProcessTasks(
        ROOT,
        resolve_entrypoint=lambda: image.main,
        apply_environment=applied.update,
        memory_budget_mib=memory_budget_mib,
    )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), tasks.patch_moto():
        ecs = make_ecs_from(tasks, image, applied)
        try:
            yield ecs
        finally:
            image.release.set()
            tasks.wait(10)


@pytest.fixture(name="ecs")
def ecs_fixture() -> Iterator[Ecs]:
    yield from make_ecs(FakeImage())


def training(command: list[str], **extra: Any) -> dict[str, Any]:
    return {"containerOverrides": [{"name": "training", "command": command, **extra}]}


# ---------------------------------------------------------------------------------- the image
def test_the_image_import_path_is_the_dockerfiles() -> None:
    dockerfile = ROOT / "containers" / "training" / "Dockerfile"
    assert dockerfile.is_file(), f"{dockerfile} is missing: the local runner mirrors its PYTHONPATH"
    found = re.findall(r'^ENV\s+PYTHONPATH[=\s]"?([^"\s]+)"?\s*$', dockerfile.read_text(), re.M)
    assert found == [":".join(f"/opt/mlstack/{path}" for path in IMAGE_PYTHONPATH)]


def test_the_default_entrypoint_is_the_images_imported_from_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "containers" / "training" / "mlstack_task"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text("def main(argv):\n    return len(argv)\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mlstack_task", raising=False)
    monkeypatch.delitem(sys.modules, "mlstack_task.main", raising=False)

    resolve = image_entrypoint(tmp_path)
    assert "mlstack_task.main" not in sys.modules  # imported on first use, not before
    assert resolve()(["train", "--run-key", "k"]) == 3
    assert sys.path[: len(IMAGE_PYTHONPATH)] == [str(tmp_path / p) for p in IMAGE_PYTHONPATH]
    sys.modules.pop("mlstack_task", None)
    sys.modules.pop("mlstack_task.main", None)


# --------------------------------------------------------------------------------- exit codes
def test_a_task_runs_while_its_entrypoint_runs_then_stops_as_fargate_reports_it(
    ecs: Ecs,
) -> None:
    ecs.image.release.clear()
    arn = ecs.run(**training(["train", "--run-key", "runs/m/r/run.json"]))
    for _ in range(6):  # moto would have advanced it to STOPPED by now
        running = ecs.describe(arn)
        assert (running["lastStatus"], running["desiredStatus"]) == ("RUNNING", "RUNNING")
        assert "exitCode" not in running["containers"][0]
        assert "stopCode" not in running
    ecs.image.release.set()

    task = ecs.stopped(arn)
    assert task["desiredStatus"] == "STOPPED"
    (container,) = task["containers"]
    assert (container["name"], container["lastStatus"], container["exitCode"]) == (
        "training",
        "STOPPED",
        0,
    )
    assert container["taskArn"] == arn
    assert "reason" not in container
    assert task["stopCode"] == "EssentialContainerExited"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["stoppedAt"] >= task["startedAt"]
    assert ecs.image.calls == [["train", "--run-key", "runs/m/r/run.json"]]
    (record,) = ecs.tasks.stopped
    assert (record.task_arn, record.family, record.exit_code) == (arn, FAMILY, 0)
    assert record.argv == ["train", "--run-key", "runs/m/r/run.json"]
    assert record.memory_mib == 2048  # the task definition's, without an override
    assert record.seconds > 0


def test_the_exit_code_is_the_entrypoints_and_an_uncaught_exception_exits_1(
    ecs: Ecs, caplog: pytest.LogCaptureFixture
) -> None:
    ecs.image.exit_codes[:] = [3, RuntimeError("the split is gone")]
    assert ecs.stopped(ecs.run(**training(["train"])))["containers"][0]["exitCode"] == 3
    with caplog.at_level(logging.ERROR, logger="mlstack.localcloud.tasks"):
        assert ecs.stopped(ecs.run(**training(["train"])))["containers"][0]["exitCode"] == 1
    assert "the split is gone" in caplog.text  # the traceback, as the container's log has it
    assert [t.exit_code for t in ecs.tasks.stopped] == [3, 1]


def test_without_an_override_the_task_definitions_command_runs(ecs: Ecs) -> None:
    ecs.stopped(ecs.run())
    assert ecs.image.calls == [["preprocess", "--event", "{}"]]


def test_the_environment_is_the_definitions_with_the_overrides_on_top(ecs: Ecs) -> None:
    variables = [{"name": "LOG_LEVEL", "value": "DEBUG"}, {"name": "EXTRA", "value": "1"}]
    ecs.stopped(ecs.run(**training(["train"], environment=variables)))
    assert ecs.applied == {"DATA_BUCKET": "data", "LOG_LEVEL": "DEBUG", "EXTRA": "1"}
    assert ecs.tasks.stopped[0].environment == {"LOG_LEVEL": "DEBUG", "EXTRA": "1"}


def test_by_default_the_environment_is_applied_process_wide_as_for_lambdas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DATA_BUCKET", "LOG_LEVEL", "MLSTACK_AWS_CLIENT"):
        monkeypatch.setenv(name, "before")  # restored after the test
    seen: dict[str, str] = {}

    def main(argv: list[str]) -> int:
        seen.update({k: os.environ[k] for k in ("DATA_BUCKET", "LOG_LEVEL")})
        return 0

    tasks = InProcessTasks(ROOT, resolve_entrypoint=lambda: main, memory_budget_mib=4096)
    with mock_aws(), tasks.patch_moto():
        ecs = make_ecs_from(tasks)
        ecs.stopped(ecs.run())
    assert seen == {"DATA_BUCKET": "data", "LOG_LEVEL": "INFO"}


def make_ecs_from(
    tasks: InProcessTasks, image: FakeImage | None = None, applied: dict[str, str] | None = None
) -> Ecs:
    """A cluster, a subnet and the task definition, in moto, for ``tasks`` to run."""
    ec2 = boto3.client("ec2", region_name=REGION)
    # No DNS hostnames, as a template's VPC may be: moto then gives interfaces no DNS name.
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    client = boto3.client("ecs", region_name=REGION)
    cluster = client.create_cluster(clusterName="training")["cluster"]["clusterArn"]
    register(client)
    return Ecs(
        client, cluster, subnet, tasks, image or FakeImage(), {} if applied is None else applied
    )


# ----------------------------------------------------------------------------------- refusals
def test_a_task_definition_that_is_not_the_projects_image_stops_at_once(ecs: Ecs) -> None:
    register(ecs.client, family="web", container="web")
    task = ecs.describe(ecs.run("web"))
    assert task["lastStatus"] == "STOPPED"
    assert task["containers"][0]["exitCode"] == 1
    assert task["stopCode"] == "TaskFailedToStart"
    assert "the local cloud runs only the project's image" in task["stoppedReason"]
    assert ecs.image.calls == []


def test_a_task_larger_than_the_machine_stops_at_once_as_out_of_memory() -> None:
    for ecs in make_ecs(FakeImage(), memory_budget_mib=1000):
        task = ecs.describe(ecs.run(memory="4096", **training(["train"])))
        assert task["lastStatus"] == "STOPPED"
        (container,) = task["containers"]
        assert container["exitCode"] == 137
        assert container["reason"] == (
            "OutOfMemoryError: the local machine has 1000 MiB available, "
            "the task asked for 4096 MiB"
        )
        assert task["stopCode"] == "EssentialContainerExited"
        assert ecs.image.calls == []


def test_tasks_run_at_once_only_as_far_as_the_memory_budget_goes() -> None:
    image = FakeImage()
    for ecs in make_ecs(image, memory_budget_mib=5000):
        image.release.clear()
        first = ecs.run(memory="3000", **training(["train", "1"]))
        second = ecs.run(memory="3000", **training(["train", "2"]))
        small = ecs.run(memory="2000", **training(["train", "3"]))
        _until(lambda: image.running == 2)
        # One of the two 3000 MiB tasks waits for memory (whichever reserved second).
        statuses = sorted(ecs.describe(arn)["lastStatus"] for arn in (first, second))
        assert statuses == ["PENDING", "RUNNING"]
        assert ecs.describe(small)["lastStatus"] == "RUNNING"
        image.release.set()
        for arn in (first, second, small):
            assert ecs.stopped(arn)["containers"][0]["exitCode"] == 0
        assert image.most_at_once == 2
        assert ecs.tasks.memory.reserved_mib == 0


def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ------------------------------------------------------------------------------------- faults
def test_an_out_of_memory_fault_stops_the_next_task_of_the_family_without_running_it(
    ecs: Ecs,
) -> None:
    ecs.tasks.inject(TaskFault(FAMILY, "out_of_memory"))
    task = ecs.describe(ecs.run(**training(["train"])))
    assert task["lastStatus"] == "STOPPED"
    (container,) = task["containers"]
    assert container["exitCode"] == 137
    assert container["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert task["stopCode"] == "EssentialContainerExited"
    assert ecs.image.calls == []
    assert ecs.stopped(ecs.run(**training(["train"])))["containers"][0]["exitCode"] == 0
    assert [t.exit_code for t in ecs.tasks.stopped] == [137, 0]


def test_a_stopped_fault_stops_the_next_task_of_the_container_as_stop_task_does(
    ecs: Ecs,
) -> None:
    ecs.tasks.inject(TaskFault("training", "stopped"))
    task = ecs.describe(ecs.run(**training(["train"])))
    assert task["lastStatus"] == "STOPPED"
    assert task["stopCode"] == "UserInitiated"
    assert task["stoppedReason"] == "Task stopped by user"
    assert "exitCode" not in task["containers"][0]
    assert ecs.image.calls == []
    assert ecs.tasks.stopped[0].exit_code is None


# ----------------------------------------------------------------------------- step functions
def _run_task_machine(ecs: Ecs, **state: Any) -> str:
    """A state machine of one runTask.sync state (and ``state``'s fields) with a Catch."""
    definition = {
        "StartAt": "TrainCandidateTask",
        "States": {
            "TrainCandidateTask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::ecs:runTask.sync",
                "Parameters": {
                    "Cluster": ecs.cluster,
                    "TaskDefinition": FAMILY,
                    "LaunchType": "FARGATE",
                    "NetworkConfiguration": {
                        "AwsvpcConfiguration": {
                            "Subnets": [ecs.subnet],
                            "SecurityGroups": [],
                            "AssignPublicIp": "ENABLED",
                        }
                    },
                    "Overrides": {
                        "Memory": "3072",
                        "ContainerOverrides": [{"Name": "training", "Command.$": "$.command"}],
                    },
                },
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "ResultPath": "$.task_failure",
                        "Next": "Caught",
                    }
                ],
                "End": True,
                **state,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return sfn.create_state_machine(
        name=f"tasks-{len(state)}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/states",
    )["stateMachineArn"]


def test_a_run_task_sync_state_fails_with_states_task_failed_on_a_non_zero_exit(
    ecs: Ecs,
) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = _run_task_machine(ecs)

    def execute(command: list[str]) -> dict[str, Any]:
        started = sfn.start_execution(
            stateMachineArn=machine,
            name=f"execution-{len(ecs.image.calls)}",
            input=json.dumps({"command": command}),
        )
        described = _ended(sfn, started["executionArn"])
        assert described["status"] == "SUCCEEDED"
        output: dict[str, Any] = json.loads(described["output"])
        return output

    ecs.image.exit_codes[:] = [2, 0]
    failed = execute(["train", "--candidate", "{}"])
    assert failed["task_failure"]["Error"] == "States.TaskFailed"
    cause = json.loads(failed["task_failure"]["Cause"])
    assert cause["Containers"][0]["ExitCode"] == 2
    assert cause["StopCode"] == "EssentialContainerExited"
    assert cause["StoppedAt"] >= cause["StartedAt"] > 1_600_000_000_000  # epoch ms, as on AWS

    succeeded = execute(["train", "--candidate", "{}"])
    assert "task_failure" not in succeeded
    assert succeeded["Containers"][0]["ExitCode"] == 0
    assert succeeded["LastStatus"] == "STOPPED"
    assert ecs.image.calls == [["train", "--candidate", "{}"]] * 2
    assert [t.memory_mib for t in ecs.tasks.stopped] == [3072, 3072]  # the state's Overrides


def _ended(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """The execution's description once it is no longer running (at most 30 s)."""
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    answer: dict[str, Any] = described
    return answer


def test_a_task_past_its_states_timeout_fails_the_state_as_states_timeout(ecs: Ecs) -> None:
    """TimeoutSecondsPath bounds a stuck task: the state fails, and the run goes on by its
    Catch, while (locally) the thread finishes on its own once released."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = _run_task_machine(ecs, TimeoutSecondsPath="$.timeout")
    ecs.image.release.clear()
    started = sfn.start_execution(
        stateMachineArn=machine,
        input=json.dumps({"command": ["train"], "timeout": 1}),
    )
    described = _ended(sfn, started["executionArn"])
    ecs.image.release.set()
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["task_failure"]["Error"] == "States.Timeout"
