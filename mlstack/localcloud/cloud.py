"""The local cloud's lifecycle: moto started, the stack deployed from template.yaml, the API
served, and the stack's functions invoked in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from mlstack.localcloud.lambdas import InProcessLambdas
from mlstack.localcloud.moto_patches import (
    atomic_item_writes,
    batched_map_items,
    deliver_rule_targets,
    execution_status_events,
    json_state_copies,
    map_result_files,
    resource_types_moto_lacks,
    shared_interpreter_clients,
    state_machines_in_executing_backend,
)
from mlstack.localcloud.packaging import package_code
from mlstack.localcloud.tasks import InProcessTasks
from mlstack.localcloud.template_rewrites import (
    apply_bucket_configuration,
    name_image_repositories,
    serve_api_locally,
    substitute_definitions,
    take_item_batchers,
)
from mlstack.sam import load_template, project_root, translate

STACK_NAME = "mlstack"


REGION = "us-east-1"


LOCAL_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",  # see limit_native_thread_pools
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    # X-Ray has no daemon here; Powertools Tracer would try to send segments.
    "POWERTOOLS_TRACE_DISABLED": "true",
    # By default botocore sends an upload aws-chunked with a trailing checksum; in-process, the
    # whole body is read through its chunk encoder and decoded again by moto, both in quadratic
    # time: a 608 MiB upload took 205 s, without the encoding 4 s.
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
}


# ------------------------------------------------------------------------------------ deploy
@dataclass
class Stack:
    name: str
    outputs: dict[str, str]
    translated: dict[str, Any]
    physical_ids: dict[str, str]
    code_dirs: dict[str, Path]

    def function_name(self, logical_id: str) -> str:
        return self.physical_ids[logical_id]


def stack_resources(cloudformation: Any, stack_name: str) -> list[dict[str, Any]]:
    """``describe_stack_resources``, without the empty entry moto lists for each resource whose
    ``Condition`` is false (CloudFormation lists nothing for those)."""
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    return [r for r in resources if "LogicalResourceId" in r]


def deploy(
    root: Path,
    *,
    stack_name: str = STACK_NAME,
    parameters: dict[str, str] | None = None,
    session: boto3.Session | None = None,
    endpoint_url: str | None = None,
    api_url: str = "http://127.0.0.1:3000/",
) -> Stack:
    session = session or boto3.Session(region_name=REGION)
    client_args: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
    root = root.resolve()
    s3 = session.client("s3", **client_args)
    cloudformation = session.client("cloudformation", **client_args)

    template = load_template(root / "template.yaml")
    code_dirs = package_code(template, root, s3)
    translated = translate(template, parameters or {})
    substitute_definitions(translated)
    take_item_batchers(translated)
    serve_api_locally(translated, api_url)
    name_image_repositories(translated, stack_name)

    with state_machines_in_executing_backend(), resource_types_moto_lacks():
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(translated),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()
            ],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    description = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if description["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack_name} is {description['StackStatus']}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in stack_resources(cloudformation, stack_name)
    }
    apply_bucket_configuration(translated, physical, s3)
    return Stack(stack_name, outputs, translated, physical, code_dirs)


# ------------------------------------------------------------------------------------ runtime
# Stack parameters that differ locally: a user watching drift or quality on a laptop sees what
# the prediction function sampled as soon as a request is answered (it writes after every
# request), not after five minutes; and every request of a model that opted in is captured.
LOCAL_PARAMETERS = {"DriftFlushSeconds": "0", "CaptureSampleRate": "1"}
# How long closing the local cloud waits for ECS tasks still running (their entrypoints are
# threads of this process, which cannot be stopped from outside).
TASK_DRAIN_SECONDS = 30.0


class LocalCloud:
    """template.yaml deployed into moto, with every Lambda and ECS task run in this process.

    ``moto_port=None`` keeps moto in-process (tests, demo); a port starts moto's server there, for
    other processes to reach with ``AWS_ENDPOINT_URL`` (``mlstack local up``).
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        stack_name: str = STACK_NAME,
        parameters: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        moto_port: int | None = None,
        api_port: int = 0,
        emit_metrics: bool = True,
    ) -> None:
        self.root = root or project_root()
        self.stack_name = stack_name
        self.parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        self.host = host
        self.moto_port = moto_port
        self.api_port = api_port
        self.emit_metrics = emit_metrics
        self.lambdas: InProcessLambdas | None = None
        self.tasks: InProcessTasks | None = None
        self.stack: Stack | None = None
        self.api_url = ""
        self.endpoint_url: str | None = None
        self._exit = contextlib.ExitStack()

    # lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> LocalCloud:
        try:
            self.start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.tasks is not None:
            self.tasks.wait(TASK_DRAIN_SECONDS)
        self._exit.close()

    def start(self) -> None:
        from moto.core.config import default_user_config

        saved_environment = dict(os.environ)
        self._exit.callback(_restore_environment, saved_environment)
        os.environ.update(LOCAL_ENVIRONMENT)
        if not self.emit_metrics:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        config = {"stepfunctions": {"execute_state_machine": True}}
        self.lambdas = InProcessLambdas({}, functions_dir=self.root / "functions")
        # Before moto starts: its mock gives boto3 a new default session, which registers this.
        self._exit.enter_context(self.lambdas.aws_errors_injectable())
        if self.moto_port is None:
            self._exit.enter_context(_mock_aws(config))
        else:
            default_user_config["stepfunctions"] = {"execute_state_machine": True}
            from mlstack.localcloud.endpoint import LocalMotoServer

            server = LocalMotoServer(self.host, self.moto_port, self._max_upload_bytes())
            server.start()
            self._exit.callback(server.stop)
            self.endpoint_url = f"http://{self.host}:{self.moto_port}"
            # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT, and the
            # in-process handlers reach the server through AWS_ENDPOINT_URL.
            os.environ["MOTO_PORT"] = str(self.moto_port)
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url

        from mlstack.localcloud.api import LocalApi, routes_from_template

        self._exit.enter_context(self.lambdas.patch_moto())
        self.tasks = InProcessTasks(self.root, apply_environment=self.lambdas.apply_environment)
        self._exit.enter_context(self.tasks.patch_moto())
        self._exit.enter_context(self.lambdas.faults.failing_sns_publishes())
        self._exit.enter_context(deliver_rule_targets())
        self._exit.enter_context(atomic_item_writes())
        self._exit.enter_context(map_result_files())
        self._exit.enter_context(execution_status_events())
        self._exit.enter_context(batched_map_items())
        self._exit.enter_context(json_state_copies())
        self._exit.enter_context(shared_interpreter_clients())

        template = load_template(self.root / "template.yaml")
        self.api = LocalApi(routes_from_template(template), self.invoke_function, self.identify)
        http_server = self.api.serve(self.host, self.api_port)
        self._exit.callback(http_server.server_close)
        self._exit.callback(http_server.shutdown)
        self.api_port = http_server.server_address[1]
        self.api_url = f"http://{self.host}:{self.api_port}/"

        self.stack = deploy(
            self.root,
            stack_name=self.stack_name,
            parameters=self.parameters,
            endpoint_url=self.endpoint_url,
            api_url=self.api_url,
        )
        self.lambdas._code_dirs.update(self.stack.code_dirs)
        self.api.ready.set()

    def _max_upload_bytes(self) -> int:
        """The largest body the local endpoint takes: the stack's upload limit and 1 MiB of room."""
        template = load_template(self.root / "template.yaml")
        default = template["Parameters"]["MaxUploadMiB"]["Default"]
        limit = self.parameters.get("MaxUploadMiB", default)
        return int((float(limit) + 1) * 1024 * 1024)

    # access -------------------------------------------------------------------------------------
    @property
    def outputs(self) -> dict[str, str]:
        assert self.stack is not None, "LocalCloud is not started"
        return self.stack.outputs

    def client(self, service: str) -> Any:
        session = boto3.Session(region_name=REGION)
        return session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def identify(self, access_key_id: str) -> str | None:
        """The ARN moto's STS gives the holder of ``access_key_id`` (the local API's IAM auth)."""
        sts = boto3.client(
            "sts",
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key="not-verified-locally",
        )
        try:
            arn: str = sts.get_caller_identity()["Arn"]
        except Exception:  # an unknown key: no identity, so IAM-authorised routes answer 403
            return None
        return arn

    @contextlib.contextmanager
    def function_environment(self, logical_id: str, **variables: str) -> Iterator[None]:
        """Run with some of a function's environment variables changed (a stack parameter set
        differently), through Lambda's own configuration API; restored afterwards."""
        assert self.stack is not None
        functions = self.client("lambda")
        name = self.stack.physical_ids[logical_id]
        stored = functions.get_function_configuration(FunctionName=name)["Environment"]
        saved = {k: str(v) for k, v in stored["Variables"].items()}  # moto keeps numbers
        functions.update_function_configuration(
            FunctionName=name, Environment={"Variables": {**saved, **variables}}
        )
        try:
            yield
        finally:
            functions.update_function_configuration(
                FunctionName=name, Environment={"Variables": saved}
            )

    def invoke_function(self, logical_id: str, event: Any) -> Any:
        """Invoke a function of the stack synchronously, by its logical id in the template."""
        assert self.stack is not None
        assert self.lambdas is not None
        from moto.awslambda.utils import get_backend

        name = self.stack.function_name(logical_id)
        function = get_backend("123456789012", REGION).get_function(name)
        # The local API answers each request in a thread of its own; Lambda would give
        # concurrent requests separate environments, and this process is the function's only
        # one, so its synchronous invocations take turns (``InProcessLambdas.one_at_a_time``).
        # Step Functions' Map iterations do not come through here: they keep running at once.
        with self.lambdas.one_at_a_time(function.function_name):
            invocation = self.lambdas.run(
                name=function.function_name,
                code_dir=self.lambdas.code_dir(function.code["S3Key"]),
                handler=str(function.handler),
                environment=function.environment_vars,
                event=event,
                memory_mb=int(function.memory_size),
                timeout_s=int(function.timeout),
                arn=function.function_arn,
            )
        return invocation.result

    def executions(self) -> list[dict[str, Any]]:
        response = self.client("stepfunctions").list_executions(
            stateMachineArn=self.outputs["TrainingStateMachineArn"]
        )
        executions: list[dict[str, Any]] = response["executions"]
        return executions

    def wait_for_execution(self, execution_arn: str, timeout: float = 300) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if description["status"] != "RUNNING":
                return description
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout}s")
            time.sleep(0.05)


def _restore_environment(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


def _mock_aws(config: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
    from moto import mock_aws

    return mock_aws(config=config)  # type: ignore[call-overload]


def quiet_local_logs() -> None:
    """moto's interpreter logs every JSONPath miss at ERROR level; keep the console readable."""
    import logging

    for name in ("moto", "werkzeug", "botocore", "samtranslator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
