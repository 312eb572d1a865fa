"""Lambda functions run in this process: the handler named by a function's CodeUri + Handler,
with its Environment, instead of moto's Docker containers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from mlstack.localcloud.faults import (
    FaultPlan,
    StoppedAtTimeout,
    failure_payload,
    reported_failure,
    stopping_after,
    timed_out,
)
from mlstack.localcloud.moto_patches import LAMBDA_INVOCATION, patched

# Applied over every function's own variables: in-process functions reach moto through botocore
# (patched in-process, or AWS_ENDPOINT_URL), not through the prediction function's own HTTPS client.
FUNCTION_OVERRIDES = {"MLSTACK_AWS_CLIENT": "boto3"}


# ------------------------------------------------------------------------------------ lambdas
@dataclass
class LambdaContext:
    """What Powertools and handlers read from the Lambda context."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


Handler = Callable[[Any, Any], Any]


@dataclass
class Invocation:
    function: str
    event: Any
    result: Any
    error: str | None
    seconds: float


class _ThreadService:
    """The provider's ``service`` as seen by the current thread: the function it is running."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __get__(self, provider: Any, owner: type | None = None) -> Any:
        if provider is None:
            return self
        return getattr(self._local, "service", None) or provider.__dict__.get("service")

    def __set__(self, provider: Any, value: Any) -> None:
        self._local.service = value


class _ThreadCollection:
    """One of the provider's metric buffers (metrics, dimensions, metadata) as the current thread
    sees it: its own, empty until the thread's function adds to it."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._local = threading.local()
        self._factory = factory

    def __get__(self, provider: Any, owner: type | None = None) -> Any:
        if provider is None:
            return self
        if not hasattr(self._local, "value"):
            self._local.value = self._factory()
        return self._local.value

    def __set__(self, provider: Any, value: Any) -> None:
        self._local.value = value


# The provider's buffers a function fills during its invocation and flushes at its end.
_METRIC_BUFFERS: dict[str, Callable[[], Any]] = {
    "metric_set": dict,
    "dimension_set": dict,
    "metadata_set": dict,
    "dimension_sets": list,
}


def _provider_buffer(name: str) -> property:
    def read(metrics: Any) -> Any:
        return getattr(metrics.provider, name)

    return property(read)


def bind_service(service: str | None) -> None:
    """Name the invoked function in its metrics and logs, and give it metric buffers of its own.
    On AWS each function is its own process and Powertools reads POWERTOOLS_SERVICE_NAME once,
    at import; here every function shares one ``mlstack_core.observability``, and functions of
    different runs execute at once in threads: the service name and the buffers are held per
    thread, so one function's flush never publishes another's metrics under its own name."""
    if not service:
        return
    from mlstack_core.observability.pipeline import logger, metrics

    provider = metrics.provider
    if not isinstance(type(provider).__dict__.get("service"), _ThreadService):
        per_thread = {name: _ThreadCollection(make) for name, make in _METRIC_BUFFERS.items()}
        provider.__class__ = type(
            type(provider).__name__,
            (type(provider),),
            {"service": _ThreadService(), **per_thread},
        )
        # The Metrics object shows the provider's buffers (``metrics.metric_set``).
        metrics.__class__ = type(
            type(metrics).__name__,
            (type(metrics),),
            {name: _provider_buffer(name) for name in per_thread},
        )
    provider.service = service
    logger.thread_safe_append_keys(service=service)


class ForeignFunctionCode(Exception):
    """A function whose code or handler is not one of the project's functions.

    The local cloud's Lambda API is open to any local process, which could create a function
    naming any importable module as its handler; this process would then run it.
    """


class InProcessLambdas:
    """Runs the handler named by a function's CodeUri + Handler inside this process, for the
    project's own functions only: code packaged from a directory under ``functions_dir``, and a
    handler module that is a file of that directory."""

    def __init__(self, code_dirs: dict[str, Path], *, functions_dir: Path) -> None:
        self._code_dirs = code_dirs
        self._functions_dir = functions_dir.resolve()
        self.faults = FaultPlan()
        self._modules: dict[Path, ModuleType] = {}
        self._import_lock = threading.Lock()
        self._environment_lock = threading.Lock()
        self._environments: dict[str, threading.RLock] = {}
        self.invocations: list[Invocation] = []
        self.listeners: list[Callable[[Invocation], None]] = []

    def code_dir(self, s3_key: str) -> Path:
        try:
            return self._code_dirs[s3_key]
        except KeyError:
            raise ForeignFunctionCode(
                f"code {s3_key!r} was not packaged from the template: the local cloud runs only "
                "the project's functions"
            ) from None

    def load_handler(self, code_dir: Path, handler: str) -> Handler:
        """The function named by Handler (``mlstack_<step>.app.handler``), imported from its
        CodeUri as Lambda would: each function's code is a package of its own name, so every
        CodeUri can join sys.path."""
        module_name, _, attribute = handler.rpartition(".")
        self._check_handler(code_dir, module_name, attribute)
        with self._import_lock:
            if str(code_dir) not in sys.path:
                sys.path.insert(0, str(code_dir))
            module = importlib.import_module(module_name)
            if code_dir not in self._modules:
                self._modules[code_dir] = module
                limit_native_thread_pools()
        handler_function: Handler = getattr(module, attribute)
        return handler_function

    def _check_handler(self, code_dir: Path, module_name: str, attribute: str) -> None:
        """Before anything is imported: the module is a source file inside the function's
        directory, and that directory is one of the project's functions."""
        directory = code_dir.resolve()
        if directory.parent != self._functions_dir:
            raise ForeignFunctionCode(f"{code_dir} is not a directory of {self._functions_dir}")
        parts = module_name.split(".")
        if not module_name or not attribute.isidentifier() or attribute.startswith("_"):
            raise ForeignFunctionCode(f"handler {module_name}.{attribute} is not a module.function")
        if not all(part.isidentifier() for part in parts):
            raise ForeignFunctionCode(f"handler module {module_name!r} is not a module path")
        source = directory.joinpath(*parts).with_suffix(".py")
        if not source.is_file() or not source.resolve().is_relative_to(directory):
            raise ForeignFunctionCode(
                f"handler module {module_name!r} is not a file of {directory.name}: the local "
                "cloud runs only the project's functions"
            )

    def apply_environment(self, variables: dict[str, str]) -> None:
        # One process hosts every function, so variables are process-wide. All functions share
        # the stack's resource names, and settings are read per call, so this is safe.
        with self._environment_lock:
            wanted = {**variables, **FUNCTION_OVERRIDES}
            changed = {k: str(v) for k, v in wanted.items() if os.environ.get(k) != str(v)}
            os.environ.update(changed)
            # The service name differs per function and is bound per thread (bind_service); any
            # other change is a new environment, whose settings and clients are made again.
            if changed.keys() - {"POWERTOOLS_SERVICE_NAME"}:
                from mlstack_core import settings  # cached per process, as in a warm Lambda

                settings.forget()

    @contextlib.contextmanager
    def one_at_a_time(self, name: str) -> Iterator[None]:
        """The function's invocations one after another, as in one Lambda execution environment.

        Lambda hands an execution environment one request at a time, and the functions' code
        relies on that: the prediction function's per-container state (the alias and session
        caches, the drift and capture samples) takes no lock. Here one process stands for every
        environment of a function, and callers such as the local API's server call from
        threads of their own, so they wait for each other. (Re-entrant: an invocation that
        invokes its own function in the same thread goes on.)
        """
        with self._environment_lock:
            environment = self._environments.setdefault(name, threading.RLock())
        with environment:
            yield

    def run(
        self,
        *,
        name: str,
        code_dir: Path,
        handler: str,
        environment: dict[str, str],
        event: Any,
        memory_mb: int = 1024,
        timeout_s: int = 60,
        arn: str = "",
    ) -> Invocation:
        self.apply_environment(environment)
        fault = self.faults.take(name)
        started = time.perf_counter()
        error: str | None = None
        result: Any
        failure = failure_payload(fault, timeout_s) if fault is not None else None
        if failure is not None:  # Lambda answers for the function, which does not run
            error, result = failure
        else:
            function = self.load_handler(code_dir, handler)
            bind_service(environment.get("POWERTOOLS_SERVICE_NAME"))
            context = LambdaContext(name, memory_mb, arn, deadline=time.time() + timeout_s)
            self.faults.arm(fault)
            try:
                with stopping_after(fault):
                    result = function(event, context)
            except StoppedAtTimeout:
                error, result = timed_out(timeout_s)
            except Exception as exc:  # the Lambda runtime turns any exception into an error
                error = type(exc).__name__
                result = {
                    "errorType": error,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-5:],
                }
            finally:
                self.faults.arm(None)
            if fault is not None and fault.kind == "ran_but_reported" and error is None:
                error, result = reported_failure()
        invocation = Invocation(name, event, result, error, time.perf_counter() - started)
        self.invocations.append(invocation)
        for listener in list(self.listeners):
            listener(invocation)
        return invocation

    @contextlib.contextmanager
    def aws_errors_injectable(self) -> Iterator[None]:
        """Let ``aws_error`` faults answer the functions' AWS calls: the fault plan's handler
        goes first among the handlers every new botocore session registers."""
        from botocore.handlers import BUILTIN_HANDLERS

        entries = [
            ("before-send", self.faults.before_send),
            ("response-received", self.faults.response_received),
        ]
        BUILTIN_HANDLERS[:0] = entries
        try:
            yield
        finally:
            for entry in entries:
                BUILTIN_HANDLERS.remove(entry)

    def patch_moto(self) -> contextlib.AbstractContextManager[None]:
        runner = self

        def _invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
            try:
                invocation = runner.run(
                    name=function.function_name,
                    code_dir=runner.code_dir(function.code["S3Key"]),
                    handler=function.handler,
                    environment=function.environment_vars,
                    event=event if event is not None else {},
                    memory_mb=int(function.memory_size),
                    timeout_s=int(function.timeout),
                    arn=function.function_arn,
                )
            except ForeignFunctionCode as refused:
                error = {"errorType": type(refused).__name__, "errorMessage": str(refused)}
                return json.dumps(error), True, ""
            return json.dumps(invocation.result, default=str), invocation.error is not None, ""

        return patched(LAMBDA_INVOCATION, _invoke_lambda)


def limit_native_thread_pools() -> None:
    """One thread per native pool (OpenMP, BLAS, Arrow's) for the libraries loaded so far.

    Map iterations run as threads of this one process, where on AWS each has its own Lambda. Pools
    sized for the whole machine in every iteration oversubscribe the cores: a 300-row
    HistGradientBoosting fit took 23 s instead of 0.2 s next to two other fits. Arrow's pool (the
    training image's CSV engine) is one per process: every task shares its one thread.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow

        pyarrow.set_cpu_count(1)
