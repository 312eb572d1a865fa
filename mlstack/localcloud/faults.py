"""Faults injected into the local cloud's functions, as AWS would produce them.

Each fault names a function of the stack (its logical id) and which of its invocations get it,
counted from when the fault is injected:

- ``exception``: the function's code raises (``InjectedFault``) before doing anything;
- ``timeout``: Lambda stops the function at its timeout: Step Functions sees ``Sandbox.Timedout``;
- ``timeout_after``: the function runs until ``after`` (``module:Class.method`` or
  ``module:function``) has done its work, then Lambda stops it at its timeout: Step Functions sees
  ``Sandbox.Timedout``, the side effects so far stay and nothing after them happens (Powertools'
  in-progress record is gone, as it is on AWS once it expires at the timed-out invocation's
  deadline);
- ``throttle``: Lambda refuses the invocation: ``Lambda.TooManyRequestsException``, nothing ran;
- ``ran_but_reported``: the function runs to the end, then Lambda reports
  ``Lambda.ServiceException`` anyway (AWS documents that this happens, hence the retries);
- ``aws_error``: the function's next ``aws_failures`` calls to ``aws_service`` get the error
  ``aws_error`` (for example S3 ``SlowDown``, DynamoDB
  ``ProvisionedThroughputExceededException``), answered before moto sees the request, so the
  SDK's own retries meet them as they would on AWS.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from mlstack.localcloud.moto_patches import SNS_PUBLISH, patched

FaultKind = Literal[
    "exception", "timeout", "timeout_after", "throttle", "ran_but_reported", "aws_error"
]

# The HTTP answer each AWS error comes with, in its service's protocol.
AWS_ERRORS: dict[str, tuple[int, str]] = {
    "SlowDown": (503, "Please reduce your request rate."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "ProvisionedThroughputExceededException": (
        400,
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    "ThrottlingException": (400, "Rate of requests exceeds the allowed throughput."),
    "InternalServerError": (500, "Internal server error"),
}


class InjectedFault(Exception):
    """The exception an ``exception`` fault raises in place of the function's code."""


class StoppedAtTimeout(Exception):
    """Raised where a ``timeout_after`` fault stops the function; the runner reports Lambda's
    timeout in its place."""


@dataclass
class Fault:
    function: str  # logical id, e.g. "RegisterFunction"
    kind: FaultKind
    invocations: frozenset[int] = frozenset({1})
    aws_service: str = "s3"  # or several: "dynamodb,s3"
    aws_error: str = "SlowDown"
    aws_failures: int = 1
    after: str = ""  # timeout_after: "module:Class.method", whose work is done before the stop


@dataclass
class _ActiveAwsError:
    service: str
    code: str
    remaining: int


@dataclass
class FaultPlan:
    """The faults in force; the in-process runner asks it before each invocation."""

    faults: list[Fault] = field(default_factory=list)
    _calls: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.local = field(default_factory=threading.local)
    aws_errors_answered: int = 0
    # Alerts: the next this many SNS publishes (the state machine's, or a function's) fail.
    sns_failures: int = 0

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)
            for fault in faults:
                self._calls[fault.function] = 0

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self._calls.clear()
            self.aws_errors_answered = 0
            self.sns_failures = 0

    def take(self, function_name: str) -> Fault | None:
        """The fault for this invocation of the function, if any (counts the invocation)."""
        with self._lock:
            mine = [f for f in self.faults if f.function in function_name]
            if not mine:
                return None
            self._calls[mine[0].function] += 1
            call = self._calls[mine[0].function]
            return next((f for f in mine if call in f.invocations), None)

    @contextlib.contextmanager
    def failing_sns_publishes(self) -> Iterator[None]:
        """``sns_failures`` publishes fail with SNS's InternalError, whoever publishes: the state
        machine's own NotifyFailure and NotifyRejection tasks included."""
        from moto.sns.exceptions import InternalError

        original = SNS_PUBLISH.resolve()
        plan = self

        def publish(backend: Any, *args: Any, **kwargs: Any) -> Any:
            with plan._lock:
                fail = plan.sns_failures > 0
                plan.sns_failures -= int(fail)
            if fail:
                raise InternalError("injected fault: SNS could not publish")
            return original(backend, *args, **kwargs)

        with patched(SNS_PUBLISH, publish):
            yield

    # aws_error: answered in the invoking thread, before moto -------------------------------------
    def arm(self, fault: Fault | None) -> None:
        armed = None
        if fault is not None and fault.kind == "aws_error":
            armed = _ActiveAwsError(fault.aws_service, fault.aws_error, fault.aws_failures)
        self._thread.aws_error = armed

    def before_send(self, request: Any, event_name: str = "", **_: Any) -> Any:
        armed: _ActiveAwsError | None = getattr(self._thread, "aws_error", None)
        service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
        if armed is None or armed.remaining <= 0 or service not in armed.service.split(","):
            return None
        armed.remaining -= 1
        with self._lock:
            self.aws_errors_answered += 1
        response = _error_response(request, service, armed.code)
        # botocore calls every before-send handler and takes the first answer, so moto would
        # still carry the request out: it is pointed nowhere until this attempt's answer is in.
        self._thread.restore = (request, request.url)
        request.url = "http://fault-injected.invalid/"
        return response

    def response_received(self, **_: Any) -> None:
        restore = getattr(self._thread, "restore", None)
        if restore is not None:
            request, url = restore
            request.url = url  # the SDK's retry sends the same request again
            self._thread.restore = None


def _error_response(request: Any, service: str, code: str) -> Any:
    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from moto.core.botocore_stubber import MockRawResponse

    status, message = AWS_ERRORS.get(code, (400, code))
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        headers = {"Content-Type": "application/xml"}
    else:  # the JSON protocols (DynamoDB, Step Functions, SNS query errors are not injected)
        body = json.dumps({"__type": f"com.amazonaws#{code}", "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0"}
    return AWSResponse(request.url, status, HTTPHeaders.from_dict(headers), MockRawResponse(body))


@contextlib.contextmanager
def stopping_after(fault: Fault | None) -> Iterator[None]:
    """For a ``timeout_after`` fault, ``fault.after`` does its work and then raises
    StoppedAtTimeout, for the duration of one invocation; any other fault changes nothing."""
    if fault is None or fault.kind != "timeout_after":
        yield
        return
    module_name, _, path = fault.after.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)

    def then_stop(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        raise StoppedAtTimeout(f"stopped at the timeout, after {fault.after}")

    setattr(owner, name, then_stop)
    try:
        yield
    finally:
        setattr(owner, name, original)


def timed_out(timeout_s: int) -> tuple[str, dict[str, str]]:
    message = f"Task timed out after {timeout_s:.2f} seconds"
    return "Sandbox.Timedout", {"errorType": "Sandbox.Timedout", "errorMessage": message}


def failure_payload(fault: Fault, timeout_s: int) -> tuple[str, dict[str, str]] | None:
    """What Lambda reports instead of running the function, for the faults that do not run it."""
    if fault.kind == "throttle":
        error = "Lambda.TooManyRequestsException"
        return error, {"errorType": error, "errorMessage": "Rate Exceeded."}
    if fault.kind == "timeout":
        return timed_out(timeout_s)
    if fault.kind == "exception":
        error = InjectedFault.__name__
        return error, {"errorType": error, "errorMessage": "injected fault in the function's code"}
    return None


def reported_failure() -> tuple[str, dict[str, str]]:
    error = "Lambda.ServiceException"
    return error, {"errorType": error, "errorMessage": "Lambda reported an error after the run"}
