"""ECS tasks run in this process: the training container's entrypoint
(``mlstack_task.main.main(argv)``) in a thread, instead of a Fargate task moto never starts.

moto's Step Functions interpreter runs ``arn:aws:states:::ecs:runTask.sync`` states: it calls
ECS RunTask, then DescribeTasks every 0.5 s until the task is STOPPED. moto's ECS creates the task
but starts no container, and advances its status on every DescribeTasks. Here (through seams
registered in ``moto_patches``):

- a Fargate task whose task definition has one container, named ``training`` (the project's
  image), runs the image's entrypoint with the container's Command (the override's, else the
  definition's) and Environment (the definition's, the override's on top), and stays RUNNING until
  the entrypoint returns; it then stops as Fargate reports an essential container's exit
  (``exitCode``, ``stopCode`` ``EssentialContainerExited``). Any other task definition stops at
  once with exit code 1: the local cloud runs only the project's image;
- the ``.sync`` state fails with ``States.TaskFailed`` (the task's description as its cause) when
  the task's container stopped with a non-zero exit code or none, as on AWS; moto's resolver
  succeeds whatever the exit code;
- entrypoints run at once only as far as the machine's available memory goes: each task reserves
  its Memory (MiB) first, and a task that asks for more than the whole budget stops at once with
  exit code 137 (``OutOfMemoryError``), instead of the operating system killing the local cloud;
- a Fargate container that leaves its memory to the task's, and a task network interface in a
  VPC without DNS hostnames, no longer break moto's RunTask.

Every task's environment is applied process-wide, as the Lambdas' is
(``InProcessLambdas.apply_environment``): the stack's settings are the same for every task, and a
task's per-run input comes only in its Command.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import logging
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlstack.localcloud.lambdas import (
    InProcessLambdas,
    bind_service,
    limit_native_thread_pools,
)
from mlstack.localcloud.moto_patches import (
    ECS_REQUEST_NORMALISATION,
    ECS_RESPONSE_NORMALISATION,
    ECS_SYNC_RESOLVER,
    NETWORK_INTERFACE_CREATION,
    TASK_RESOURCE_REQUIREMENTS,
    TASK_RUN,
    patched,
)

logger = logging.getLogger(__name__)

# The training image's import path (its Dockerfile's ``ENV PYTHONPATH``, each entry under
# /opt/mlstack/), relative to the project root, in the image's order.
IMAGE_PYTHONPATH = ("containers/training", "functions/preprocess", "functions/train", "layers/core")
TASK_CONTAINER = "training"  # the one container of the project's task definitions
ENTRYPOINT = "mlstack_task.main:main"

OUT_OF_MEMORY_EXIT_CODE = 137  # what a container killed for its memory exits with (128 + SIGKILL)
FOREIGN_EXIT_CODE = 1
TASK_FAILED = "States.TaskFailed"

Entrypoint = Callable[[list[str]], int]
EntrypointResolver = Callable[[], Entrypoint]
TaskFaultKind = Literal["out_of_memory", "stopped"]


# ------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class TaskStop:
    """How a task stopped, in the fields of ECS's DescribeTasks."""

    exit_code: int | None  # the container's; None when it never exited (stopped, not started)
    stop_code: str
    stopped_reason: str
    container_reason: str | None = None

    @classmethod
    def exited(cls, exit_code: int) -> TaskStop:
        return cls(exit_code, "EssentialContainerExited", "Essential container in task exited")

    @classmethod
    def out_of_memory(cls, reason: str) -> TaskStop:
        return cls(
            OUT_OF_MEMORY_EXIT_CODE,
            "EssentialContainerExited",
            "Essential container in task exited",
            f"OutOfMemoryError: {reason}",
        )

    @classmethod
    def stopped_by_user(cls) -> TaskStop:
        return cls(None, "UserInitiated", "Task stopped by user")


@dataclass(frozen=True)
class TaskFault:
    """The next task of a task definition family, or with a container of that name, stops as
    ``kind`` says without running: ``out_of_memory`` (exit code 137, the container killed for its
    memory) or ``stopped`` (StopTask: no exit code)."""

    target: str  # a task definition family, or a container name
    kind: TaskFaultKind

    def stop(self) -> TaskStop:
        if self.kind == "out_of_memory":
            return TaskStop.out_of_memory("Container killed due to memory usage")
        return TaskStop.stopped_by_user()


@dataclass
class StoppedTask:
    """A task the local cloud ran (or stopped without running), as tests read it."""

    task_arn: str
    family: str
    argv: list[str]
    environment: dict[str, str]  # the container override's variables only
    memory_mib: int
    exit_code: int | None
    stop_code: str
    stopped_reason: str
    container_reason: str | None
    seconds: float


@dataclass
class _Launch:
    """What one task runs, read from its task definition and RunTask overrides."""

    family: str
    argv: list[str]
    environment: dict[str, str]  # the definition's and the override's
    overridden: dict[str, str]  # the override's
    memory_mib: int


class ForeignTaskContainer(Exception):
    """A task definition that is not the project's: the local cloud's ECS API is open to any
    local process, which could register a task definition for any image."""


# ------------------------------------------------------------------------------------ memory
def available_memory_mib() -> int:
    """The machine's available memory: /proc/meminfo's MemAvailable, else what sysconf says is
    free."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024  # kB
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(pages) // (1024 * 1024)


class MemoryBudget:
    """A counting semaphore over MiB: an entrypoint starts once its task's memory fits beside
    the tasks already running."""

    def __init__(self, mib: int) -> None:
        self.mib = mib
        self.reserved_mib = 0
        self._changed = threading.Condition()

    def fits(self, mib: int) -> bool:
        return mib <= self.mib

    @contextlib.contextmanager
    def reserved(self, mib: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self.reserved_mib + mib <= self.mib)
            self.reserved_mib += mib
        try:
            yield
        finally:
            with self._changed:
                self.reserved_mib -= mib
                self._changed.notify_all()


# ------------------------------------------------------------------------------------ runner
def image_entrypoint(root: Path) -> EntrypointResolver:
    """The image's entrypoint, imported on first use with the image's import path on sys.path."""
    lock = threading.Lock()

    def resolve() -> Entrypoint:
        module_name, _, attribute = ENTRYPOINT.partition(":")
        with lock:
            # Reversed, so the image's first entry ends up first.
            for relative in reversed(IMAGE_PYTHONPATH):
                entry = str(root / relative)
                if entry not in sys.path:
                    sys.path.insert(0, entry)
            first = module_name not in sys.modules
            module = importlib.import_module(module_name)
            if first:
                limit_native_thread_pools()
        entrypoint: Entrypoint = getattr(module, attribute)
        return entrypoint

    return resolve


class InProcessTasks:
    """Runs the project's ECS tasks in threads of this process (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        *,
        resolve_entrypoint: EntrypointResolver | None = None,
        apply_environment: Callable[[dict[str, str]], None] | None = None,
        memory_budget_mib: int | None = None,
    ) -> None:
        self.root = root
        self.resolve_entrypoint = resolve_entrypoint or image_entrypoint(root)
        self.apply_environment = (
            apply_environment
            or InProcessLambdas({}, functions_dir=root / "functions").apply_environment
        )
        self.memory = MemoryBudget(
            available_memory_mib() if memory_budget_mib is None else memory_budget_mib
        )
        self.faults: list[TaskFault] = []
        self.stopped: list[StoppedTask] = []
        self.listeners: list[Callable[[StoppedTask], None]] = []
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    # faults -------------------------------------------------------------------------------------
    def inject(self, *faults: TaskFault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _take_fault(self, family: str, container: str) -> TaskFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.target in (family, container):
                    self.faults.remove(fault)
                    return fault
        return None

    # lifecycle ----------------------------------------------------------------------------------
    def wait(self, timeout: float = 30.0) -> bool:
        """Wait for the running tasks' entrypoints, at most ``timeout`` seconds in all; whether
        every one has returned."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def start(self, task: Any, task_definition: Any) -> None:
        """Run a task moto has just created (its ``Task`` and ``TaskDefinition``)."""
        _hold(task)
        started = time.perf_counter()
        try:
            launch = _launch(task, task_definition)
        except ForeignTaskContainer as refused:
            stop = TaskStop(FOREIGN_EXIT_CODE, "TaskFailedToStart", str(refused))
            family = str(task_definition.family)
            self._stop(task, stop, _Launch(family, [], {}, {}, 0), started)
            return
        fault = self._take_fault(launch.family, TASK_CONTAINER)
        if fault is not None:
            self._stop(task, fault.stop(), launch, started)
            return
        if not self.memory.fits(launch.memory_mib):
            reason = (
                f"the local machine has {self.memory.mib} MiB available, "
                f"the task asked for {launch.memory_mib} MiB"
            )
            self._stop(task, TaskStop.out_of_memory(reason), launch, started)
            return
        thread = threading.Thread(
            target=self._run,
            args=(task, launch, started),
            name=f"ecs-task-{launch.family}-{task.id[:8]}",
            daemon=True,  # a task still running when the process exits is abandoned
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run(self, task: Any, launch: _Launch, started: float) -> None:
        try:
            with self.memory.reserved(launch.memory_mib):
                _set_status(task, "RUNNING")
                exit_code = self._entrypoint(launch)
            self._stop(task, TaskStop.exited(exit_code), launch, started)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _entrypoint(self, launch: _Launch) -> int:
        """The container's exit code: the entrypoint's answer, ``sys.exit``'s code, or 1 for an
        uncaught exception (its traceback logged, as the container's log would show it)."""
        try:
            self.apply_environment(launch.environment)
            bind_service(launch.environment.get("POWERTOOLS_SERVICE_NAME"))
            return int(self.resolve_entrypoint()(list(launch.argv)))
        except SystemExit as exited:
            code = exited.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        except Exception:
            logger.exception("task %s %s failed", launch.family, launch.argv[:1])
            return 1

    def _stop(self, task: Any, stop: TaskStop, launch: _Launch, started: float) -> None:
        now = datetime.datetime.now(datetime.UTC)
        for container in task.containers:
            container.exitCode = stop.exit_code
            container.reason = stop.container_reason
            container.last_status = "STOPPED"
        task.stop_code = stop.stop_code
        task.stopped_reason = stop.stopped_reason
        task.stopping_at = task.execution_stopped_at = task.stopped_at = now
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"  # last: a DescribeTasks that sees it sees the rest
        stopped = StoppedTask(
            task_arn=task.task_arn,
            family=launch.family,
            argv=launch.argv,
            environment=launch.overridden,
            memory_mib=launch.memory_mib,
            exit_code=stop.exit_code,
            stop_code=stop.stop_code,
            stopped_reason=stop.stopped_reason,
            container_reason=stop.container_reason,
            seconds=time.perf_counter() - started,
        )
        with self._lock:
            self.stopped.append(stopped)
        for listener in list(self.listeners):
            listener(stopped)

    # moto ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def patch_moto(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(patched(TASK_RUN, self._run_task_patch()))
            stack.enter_context(
                patched(TASK_RESOURCE_REQUIREMENTS, staticmethod(_resource_requirements_patch()))
            )
            stack.enter_context(patched(NETWORK_INTERFACE_CREATION, _network_interface_patch()))
            stack.enter_context(patched(ECS_SYNC_RESOLVER, _sync_resolver_patch()))
            stack.enter_context(patched(ECS_REQUEST_NORMALISATION, _normalise_parameters))
            stack.enter_context(patched(ECS_RESPONSE_NORMALISATION, _normalise_response))
            yield

    def _run_task_patch(self) -> Callable[..., list[Any]]:
        original = TASK_RUN.resolve()
        runner = self

        def run_task(
            backend: Any,
            cluster_str: str,
            task_definition_str: str,
            count: int,
            overrides: dict[str, Any] | None,
            started_by: str,
            tags: list[dict[str, str]] | None,
            launch_type: str | None,
            networking_configuration: dict[str, Any] | None = None,
            group: str | None = None,
            platform_version: str | None = None,
            capacity_provider_strategy: list[dict[str, Any]] | None = None,
        ) -> list[Any]:
            tasks: list[Any] = original(
                backend,
                cluster_str,
                task_definition_str,
                count,
                overrides,
                started_by,
                tags,
                launch_type,
                networking_configuration,
                group,
                platform_version,
                capacity_provider_strategy,
            )
            for task in tasks:
                if task.container_instance_arn is None:  # Fargate: no instance of the cluster's
                    definition = backend.describe_task_definition(task.task_definition_arn)
                    runner.start(task, definition)
            return tasks

        return run_task


# ------------------------------------------------------------------------------ moto's tasks
def _hold(task: Any) -> None:
    """Keep moto's task where the runner puts it: moto's ``ManagedState`` advances a task towards
    STOPPED on every DescribeTasks, and a task with no transitions stays put. Its container is
    the task's (moto names the task definition) and has not exited yet."""
    task._transitions = []
    task.created_at = task.started_at = datetime.datetime.now(datetime.UTC)
    for container in task.containers:
        container.task_arn = task.task_arn
        container.exitCode = None
        container.last_status = "RUNNING"
    _set_status(task, "PENDING")


def _set_status(task: Any, status: str) -> None:
    task.last_status = status
    for container in task.containers:
        container.last_status = status


def _pairs(variables: list[dict[str, str]] | None) -> dict[str, str]:
    return {str(v["name"]): str(v.get("value", "")) for v in variables or []}


def _launch(task: Any, task_definition: Any) -> _Launch:
    family = str(task_definition.family)
    containers = list(task_definition.container_definitions)
    names = [str(c.get("name")) for c in containers]
    if names != [TASK_CONTAINER]:
        raise ForeignTaskContainer(
            f"ForeignTaskContainer: task definition {family} has containers {names}: the local "
            f"cloud runs only the project's image, as the one container {TASK_CONTAINER!r}"
        )
    (container,) = containers
    overrides: dict[str, Any] = task.overrides or {}
    override: dict[str, Any] = next(
        (o for o in overrides.get("containerOverrides") or [] if o.get("name") == TASK_CONTAINER),
        {},
    )
    overridden = _pairs(override.get("environment"))
    memory = overrides.get("memory") or task_definition.memory or container.get("memory") or 0
    return _Launch(
        family=family,
        argv=[str(a) for a in override.get("command") or container.get("command") or []],
        environment={**_pairs(container.get("environment")), **overridden},
        overridden=overridden,
        memory_mib=int(memory),
    )


_MEMORY_KEYS = ("Memory", "MemoryReservation", "memory", "memoryReservation")


def _resource_requirements_patch() -> Callable[[Any], dict[str, Any]]:
    """moto sums the containers' memory, where a Fargate container may leave its memory to the
    task's (moto adds None): such a container counts 0 towards the instance placement moto
    models, which Fargate does not use."""
    original = TASK_RESOURCE_REQUIREMENTS.resolve()

    def calculate_task_resource_requirements(task_definition: Any) -> dict[str, Any]:
        containers = []
        for container in task_definition.container_definitions:
            given = {k: v for k, v in container.items() if not (k in _MEMORY_KEYS and v is None)}
            if not any(k in given for k in _MEMORY_KEYS):
                given["memory"] = 0
            containers.append(given)
        requirements: dict[str, Any] = original(
            types.SimpleNamespace(container_definitions=containers)
        )
        return requirements

    return calculate_task_resource_requirements


def _network_interface_patch() -> Callable[..., Any]:
    """A network interface has a private DNS name on AWS whatever its VPC's DNS settings; moto
    gives it none unless the VPC has DNS hostnames, and its Fargate RunTask then fails reading
    it."""
    from moto.ec2.utils import generate_dns_from_ip

    original = NETWORK_INTERFACE_CREATION.resolve()

    def create_network_interface(backend: Any, *args: Any, **kwargs: Any) -> Any:
        interface = original(backend, *args, **kwargs)
        if getattr(interface, "private_dns_name", None) is None:
            interface.private_dns_name = generate_dns_from_ip(interface.private_ip_address)
        return interface

    return create_network_interface


def _operation(service: Any, boto_service_name: str | None, action: str | None) -> Any:
    """The botocore operation an ECS state calls (``runTask`` → ``RunTask``)."""
    import botocore.session
    from botocore import xform_name

    name = service._get_boto_service_name(boto_service_name=boto_service_name)
    snake = service._get_boto_service_action(service_action_name=action)
    model = botocore.session.get_session().get_service_model(name)
    (operation,) = [op for op in model.operation_names if xform_name(op) == snake]
    return model.operation_model(operation)


def _normalise_parameters(
    service: Any,
    parameters: dict[str, Any],
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """The state's Parameters as boto3 takes them (``Cluster`` → ``cluster``, nested too), as
    Step Functions relays them; moto's interpreter passes them on as written."""
    operation = _operation(service, boto_service_name, service_action_name)
    service._to_boto_request(parameters, operation.input_shape)


def _normalise_response(
    service: Any,
    response: Any,
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """The API's answer as a state's result has it (``tasks`` → ``Tasks``, nested too, times in
    epoch milliseconds); moto's interpreter leaves it as boto3 gives it, then reads the Step
    Functions casing."""
    operation = _operation(service, boto_service_name, service_action_name)
    service._from_boto_response(response, operation.output_shape)
    _epoch_milliseconds(response)


def _epoch_milliseconds(value: Any) -> Any:
    """``value`` with every datetime in it (in place, where it is a dict or list) as epoch ms."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _epoch_milliseconds(item)
    elif isinstance(value, list):
        value[:] = [_epoch_milliseconds(item) for item in value]
    return value


def task_failed(described: dict[str, Any]) -> bool:
    """Whether Step Functions fails a ``runTask.sync`` state on this stopped task (DescribeTasks'
    task, as the interpreter normalises it): a container that exited non-zero, or never exited."""
    containers = described.get("Containers") or []
    return not containers or any(c.get("ExitCode") != 0 for c in containers)


def _sync_resolver_patch() -> Callable[..., Any]:
    """The ``.sync`` resolver fails the state as Step Functions does: ``States.TaskFailed``, the
    task's description as the cause. (moto's own callback failure takes only custom error names,
    which may not begin with ``States.``, so the failure event is raised as the interpreter's
    own errors are.)"""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    original = ECS_SYNC_RESOLVER.resolve()

    def build_sync_resolver(
        service: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: Any,
        state_credentials: Any,
    ) -> Callable[[], Any]:
        resolve = original(
            service, env, resource_runtime_part, normalised_parameters, state_credentials
        )

        def resolver() -> Any:
            described = resolve()
            if described is not None and task_failed(described):
                details = TaskFailedEventDetails(
                    resourceType=service._get_sfn_resource_type(),
                    resource=service._get_sfn_resource(),
                    error=TASK_FAILED,
                    cause=to_json_str(described),
                )
                # moto's EventDetails is a TypedDict of every kind of details, this one only.
                event_details: Any = {"taskFailedEventDetails": details}
                raise FailureEventException(
                    failure_event=FailureEvent(
                        env=env,
                        error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=event_details,
                    )
                )
            return described

        return resolver

    return build_sync_resolver
