"""The local cloud: template.yaml deployed into moto, with Lambda handlers run in-process.

The same template, state-machine definition and handler code as on AWS. The template is translated
by aws-sam-translator (the transform CloudFormation runs) and created as a stack in moto's
CloudFormation. Only what moto lacks is adapted, each in one named function below:

- ``package_code``: CodeUri/ContentUri/DefinitionUri are local paths, as before ``sam package``;
  code is zipped into an artifacts bucket and the state machine definition is inlined.
- ``substitute_definitions``: moto ignores ``DefinitionSubstitutions``; they become an ``Fn::Sub``.
- ``serve_api_locally``: moto's RestApi cannot be deployed from SAM's OpenAPI body; the API is
  served by ``mlstack.localapi`` and ``ApiUrl`` points there.
- ``InProcessLambdas``: moto runs Lambda in Docker; here the handler named by the function's
  Handler runs in this process, with the function's Environment.
- ``deliver_rule_targets``: moto's EventBridge does not deliver to Lambda targets.
- ``apply_bucket_configuration``: moto's CloudFormation does not apply a bucket's versioning or
  NotificationConfiguration, so both are applied after the stack is created.
- ``state_machines_in_executing_backend``: moto's CloudFormation puts state machines where the
  interpreter does not look.
- ``resource_types_moto_lacks``: moto's CloudFormation has no ``AWS::S3::BucketPolicy``,
  ``AWS::SQS::QueuePolicy``, ``AWS::SNS::Subscription`` or ``AWS::CloudWatch::Alarm``. The
  subscription is made through moto's SNS and each alarm through moto's CloudWatch
  (``put_metric_alarm``); the two policies become stack resources whose documents are not
  applied, because moto evaluates a bucket policy's Deny without its Condition, so the TLS-only
  deny would refuse every request.
- ``stack_resources``: moto lists a resource whose ``Condition`` is false as an empty entry.
- ``atomic_item_writes``: DynamoDB applies each conditional write atomically; moto's in-process
  table does not, and Map iterations and queued runs here are threads of one process, so item
  writes are serialised (the run lock and version counter rely on that atomicity).

docs/local-cloud.md lists what comes from the translated stack, what is adapted, and what local
runs therefore do not prove.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

STACK_NAME = "mlstack"
ARTIFACT_BUCKET = "mlstack-local-artifacts"
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
}
# Applied over every function's own variables: in-process functions reach moto through botocore
# (patched in-process, or AWS_ENDPOINT_URL), not through the prediction function's own HTTPS client.
FUNCTION_OVERRIDES = {"MLSTACK_AWS_CLIENT": "boto3"}


def project_root() -> Path:
    """The directory holding template.yaml: the working directory or this checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "template.yaml").is_file():
            return candidate
    raise FileNotFoundError("template.yaml not found in the working directory or the checkout")


# ------------------------------------------------------------------------------------ template
def load_template(path: Path) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(directory.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, file.relative_to(directory).as_posix())
    return buffer.getvalue()


def package_code(template: dict[str, Any], root: Path, s3: Any) -> dict[str, Path]:
    """Upload each CodeUri/ContentUri as a zip and point the template at it, like ``sam package``.

    Returns the S3 key → local directory map that the in-process runner uses to find a
    function's code from what moto stored.
    """
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    code_dirs: dict[str, Path] = {}
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for uri_key in ("CodeUri", "ContentUri"):
            uri = properties.get(uri_key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                directory = (root / uri).resolve()
                key = f"code/{directory.relative_to(root).as_posix()}.zip"
                s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=_zip_directory(directory))
                properties[uri_key] = f"s3://{ARTIFACT_BUCKET}/{key}"
                code_dirs[key] = directory
        definition_uri = properties.get("DefinitionUri")
        if isinstance(definition_uri, str) and not definition_uri.startswith("s3://"):
            properties["Definition"] = json.loads((root / definition_uri).read_text())
            del properties["DefinitionUri"]
    return code_dirs


def translate(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    class _NoManagedPolicies:
        """The template only uses SAM policy templates, which need no IAM look-up."""

        def load(self) -> dict[str, str]:
            return {}

    translated: dict[str, Any] = transform(
        copy.deepcopy(template), parameters, _NoManagedPolicies()
    )
    return translated


def substitute_definitions(translated: dict[str, Any]) -> None:
    """Apply DefinitionSubstitutions, which moto ignores, as an equivalent plain ``Fn::Sub``.

    Each ``${Name}`` becomes the inline form of its value (``${Resource.Attr}`` or ``${Resource}``).
    The list form of Fn::Sub is avoided: moto evaluates it with string.Template, which would turn
    the context-object paths ``$$.Execution.Id`` into ``$.Execution.Id``.
    """
    for resource in translated["Resources"].values():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        properties = resource["Properties"]
        substitutions = properties.pop("DefinitionSubstitutions", None)
        if not substitutions:
            continue
        definition = properties["DefinitionString"]
        if isinstance(definition, dict) and "Fn::Join" in definition:
            # SAM renders an inline definition as a join of literal lines.
            separator, parts = definition["Fn::Join"]
            definition = separator.join(parts)
        for name, value in substitutions.items():
            definition = definition.replace("${" + name + "}", inline_substitution(value))
        properties["DefinitionString"] = {"Fn::Sub": definition}


def inline_substitution(value: Any) -> str:
    """A DefinitionSubstitutions value as Fn::Sub text: ``${Res}``, ``${Res.Attr}`` or a literal."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return "${" + resource + "." + attribute + "}"
    raise ValueError(f"unsupported DefinitionSubstitutions value: {value!r}")


def serve_api_locally(translated: dict[str, Any], api_url: str) -> None:
    """Keep the RestApi resource, but serve its routes from the local HTTP server.

    moto's RestApi needs a ``Name`` (KeyError otherwise) and ignores the OpenAPI ``Body`` SAM
    generates, so its Deployment fails ("doesn't contain any methods"). The routes are served by
    ``mlstack.localapi`` from the same template events, and ``ApiUrl`` points there.
    """
    resources = translated["Resources"]
    dropped = {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] in ("AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage")
    }
    for logical_id in dropped:
        del resources[logical_id]
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            resource["Properties"].setdefault("Name", logical_id)
        depends = resource.get("DependsOn")
        if isinstance(depends, list):
            resource["DependsOn"] = [d for d in depends if d not in dropped]
        elif depends in dropped:
            del resource["DependsOn"]
    if "ApiUrl" in translated.get("Outputs", {}):
        translated["Outputs"]["ApiUrl"]["Value"] = api_url


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


def bind_service(service: str | None) -> None:
    """Name the invoked function in its metrics and logs. On AWS each function is its own process
    and Powertools reads POWERTOOLS_SERVICE_NAME once, at import; here every function shares one
    ``mlstack_core.observability``, and functions of different runs execute at once in threads,
    so the service name is held per thread."""
    if not service:
        return
    from mlstack_core.observability import logger, metrics

    provider = metrics.provider
    if not isinstance(type(provider).__dict__.get("service"), _ThreadService):
        provider.__class__ = type(
            type(provider).__name__, (type(provider),), {"service": _ThreadService()}
        )
    provider.service = service
    logger.thread_safe_append_keys(service=service)


class InProcessLambdas:
    """Runs the handler named by a function's CodeUri + Handler inside this process."""

    def __init__(self, code_dirs: dict[str, Path]) -> None:
        self._code_dirs = code_dirs
        self._modules: dict[Path, ModuleType] = {}
        self._import_lock = threading.Lock()
        self._environment_lock = threading.Lock()
        self.invocations: list[Invocation] = []
        self.listeners: list[Callable[[Invocation], None]] = []

    def code_dir(self, s3_key: str) -> Path:
        return self._code_dirs[s3_key]

    def load_handler(self, code_dir: Path, handler: str) -> Handler:
        """The function named by Handler (``mlstack_<step>.app.handler``), imported from its
        CodeUri as Lambda would: each function's code is a package of its own name, so every
        CodeUri can join sys.path."""
        module_name, _, attribute = handler.rpartition(".")
        with self._import_lock:
            if str(code_dir) not in sys.path:
                sys.path.insert(0, str(code_dir))
            module = importlib.import_module(module_name)
            if code_dir not in self._modules:
                self._modules[code_dir] = module
                limit_native_thread_pools()
        handler_function: Handler = getattr(module, attribute)
        return handler_function

    def apply_environment(self, variables: dict[str, str]) -> None:
        # One process hosts every function, so variables are process-wide. All functions share
        # the stack's resource names, and settings are read per call, so this is safe.
        with self._environment_lock:
            wanted = {**variables, **FUNCTION_OVERRIDES}
            changed = {k: str(v) for k, v in wanted.items() if os.environ.get(k) != str(v)}
            if changed:
                os.environ.update(changed)
                from mlstack_core import settings  # cached per process, as in a warm Lambda

                settings.stack_settings.cache_clear()
                settings.serving_settings.cache_clear()

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
        function = self.load_handler(code_dir, handler)
        bind_service(environment.get("POWERTOOLS_SERVICE_NAME"))
        context = LambdaContext(name, memory_mb, arn, deadline=time.time() + timeout_s)
        started = time.perf_counter()
        error: str | None = None
        try:
            result = function(event, context)
        except Exception as exc:  # the Lambda runtime turns any exception into an error payload
            error = type(exc).__name__
            result = {
                "errorType": error,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
        invocation = Invocation(name, event, result, error, time.perf_counter() - started)
        self.invocations.append(invocation)
        for listener in list(self.listeners):
            listener(invocation)
        return invocation

    def patch_moto(self) -> contextlib.AbstractContextManager[None]:
        from moto.awslambda.models import LambdaFunction

        runner = self

        def _invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
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
            return json.dumps(invocation.result, default=str), invocation.error is not None, ""

        return _patched(LambdaFunction, "_invoke_lambda", _invoke_lambda)


def limit_native_thread_pools() -> None:
    """One thread per native pool (OpenMP, BLAS) for the libraries loaded so far.

    Map iterations run as threads of this one process, where on AWS each has its own Lambda. Pools
    sized for the whole machine in every iteration oversubscribe the cores: a 300-row
    HistGradientBoosting fit took 23 s instead of 0.2 s next to two other fits.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


@contextlib.contextmanager
def _patched(owner: Any, attribute: str, replacement: Any) -> Iterator[None]:
    original = getattr(owner, attribute)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


@contextlib.contextmanager
def atomic_item_writes() -> Iterator[None]:
    """One item write at a time in moto's DynamoDB, as DynamoDB guarantees per item."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    originals = {
        name: getattr(DynamoDBBackend, name) for name in ("put_item", "update_item", "delete_item")
    }

    def serialised(original: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(*args, **kwargs)

        return write

    for name, original in originals.items():
        setattr(DynamoDBBackend, name, serialised(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(DynamoDBBackend, name, original)


def deliver_rule_targets() -> contextlib.AbstractContextManager[None]:
    """Let moto's EventBridge rules deliver to Lambda targets (it only knows SQS, logs, buses)."""
    from moto.awslambda.utils import get_backend
    from moto.events.models import Rule
    from moto.utilities.arns import parse_arn

    original = Rule.send_to_targets

    def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
        # A schedule rule has no event pattern, which moto's matcher takes as "every event": on
        # AWS it only fires on its schedule, so it never receives the bus's events.
        if rule.scheduled_expression or not rule.event_pattern.matches_event(event):
            return
        others = []
        for target in rule.targets:
            arn = parse_arn(target["Arn"])
            if arn.service == "lambda":
                function = get_backend(arn.account, arn.region).get_function(target["Arn"])
                # EventBridge invokes asynchronously; a failing trigger must not fail the upload.
                function.invoke(json.dumps(event, default=str), {}, {})
            else:
                others.append(target)
        if others:
            saved = rule.targets
            rule.targets = others
            try:
                original(rule, event, transform_input)
            finally:
                rule.targets = saved

    return _patched(Rule, "send_to_targets", send_to_targets)


def state_machines_in_executing_backend() -> contextlib.AbstractContextManager[None]:
    """moto's CloudFormation creates state machines in the backend that does not execute them."""
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.responses import get_backend

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        return get_backend(account_id, region_name).create_state_machine(
            name=properties.get("StateMachineName", resource_name),
            definition=properties.get("DefinitionString", ""),
            roleArn=properties.get("RoleArn", ""),
            tags=[{"key": t["Key"], "value": t["Value"]} for t in properties.get("Tags", [])],
        )

    return _patched(
        StateMachine,
        "create_from_cloudformation_json",
        classmethod(create_from_cloudformation_json),
    )


class _StackResourceStandIn:
    """A resource of a type moto's CloudFormation lacks, created by ``create`` (or only recorded).

    moto's parser resolves the resource's intrinsics before it calls
    ``create_from_cloudformation_json``, so ``create`` gets plain values; the stand-in is listed by
    ``describe_stack_resources`` like any other resource of the stack.
    """

    create: Callable[[dict[str, Any], str, str], str | None] = staticmethod(lambda p, a, r: None)
    # Fn::GetAtt Arn, for types that have one: a format over name, account and region.
    arn_format: str = ""

    def __init__(self, physical_resource_id: str, arn: str = "") -> None:
        self.physical_resource_id = physical_resource_id
        self.arn = arn

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> _StackResourceStandIn:
        properties = cloudformation_json.get("Properties", {})
        name = cls.create(properties, account_id, region_name) or resource_name
        arn = cls.arn_format.format(name=name, account=account_id, region=region_name)
        return cls(name, arn)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn" and bool(cls.arn_format)

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Arn" and self.arn:
            return self.arn
        raise KeyError(attribute_name)

    def is_created(self) -> bool:
        return True

    @classmethod
    def delete_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> None:
        return None


def _subscribe(properties: dict[str, Any], account_id: str, region: str) -> str:
    from moto.sns.models import sns_backends

    subscription = sns_backends[account_id][region].subscribe(
        properties["TopicArn"], properties["Endpoint"], properties["Protocol"]
    )
    arn: str = subscription.arn
    return arn


_ALARM_PROPERTIES = (
    "AlarmName",
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Statistic",
    "ExtendedStatistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "Unit",
)


def _put_alarm(properties: dict[str, Any], account_id: str, region: str) -> str:
    """An ``AWS::CloudWatch::Alarm`` as moto's CloudWatch ``put_metric_alarm`` takes it."""
    from moto.cloudwatch.models import cloudwatch_backends

    given: dict[str, Any] = {k: properties.get(k) for k in _ALARM_PROPERTIES}
    name = str(given["AlarmName"])
    cloudwatch_backends[account_id][region].put_metric_alarm(
        name=name,
        namespace=given["Namespace"],
        metric_name=given["MetricName"],
        metric_data_queries=None,
        comparison_operator=given["ComparisonOperator"],
        evaluation_periods=int(given["EvaluationPeriods"]),
        datapoints_to_alarm=given["DatapointsToAlarm"],
        period=int(given["Period"]),
        threshold=float(given["Threshold"]),
        statistic=given["Statistic"],
        extended_statistic=given["ExtendedStatistic"],
        description=given["AlarmDescription"] or "",
        dimensions=[
            {"Name": d["Name"], "Value": d["Value"]} for d in properties.get("Dimensions", [])
        ],
        alarm_actions=list(given["AlarmActions"] or []),
        ok_actions=list(given["OKActions"] or []),
        insufficient_data_actions=list(given["InsufficientDataActions"] or []),
        unit=given["Unit"],
        actions_enabled=True,
        treat_missing_data=given["TreatMissingData"],
        evaluate_low_sample_count_percentile=None,
        threshold_metric_id=None,
        rule=None,
        tags=[],
    )
    return name


def resource_types_moto_lacks() -> contextlib.AbstractContextManager[None]:
    """Create ``AWS::SNS::Subscription`` through moto's SNS and ``AWS::CloudWatch::Alarm`` through
    moto's CloudWatch; record the resource policies only.

    ``AWS::S3::BucketPolicy`` and ``AWS::SQS::QueuePolicy`` are listed in the stack but not applied:
    moto evaluates a bucket policy's Deny statements without their Conditions, so the template's
    TLS-only deny (``aws:SecureTransport`` false) would deny every local request.
    """
    from moto.cloudformation import parsing

    stand_ins: dict[str, type[_StackResourceStandIn]] = {
        "AWS::S3::BucketPolicy": type("BucketPolicy", (_StackResourceStandIn,), {}),
        "AWS::SQS::QueuePolicy": type("QueuePolicy", (_StackResourceStandIn,), {}),
        "AWS::SNS::Subscription": type(
            "Subscription", (_StackResourceStandIn,), {"create": staticmethod(_subscribe)}
        ),
        "AWS::CloudWatch::Alarm": type(
            "Alarm",
            (_StackResourceStandIn,),
            {
                "create": staticmethod(_put_alarm),
                "arn_format": "arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
            },
        ),
    }
    original = parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        return stand_ins.get(resource_type) or original(resource_type)

    return _patched(parsing, "resource_class_from_type", resource_class_from_type)


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


def apply_bucket_configuration(
    translated: dict[str, Any], physical: dict[str, str], s3: Any
) -> None:
    """Versioning and EventBridge notifications, which moto's CloudFormation does not apply."""
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::S3::Bucket":
            continue
        properties = resource.get("Properties", {})
        bucket = physical[logical_id]
        versioning = properties.get("VersioningConfiguration", {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning})
        notifications = properties.get("NotificationConfiguration", {})
        if notifications.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )


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
    serve_api_locally(translated, api_url)

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
class LocalCloud:
    """template.yaml deployed into moto, with every Lambda run in this process.

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
        self.parameters = parameters or {}
        self.host = host
        self.moto_port = moto_port
        self.api_port = api_port
        self.emit_metrics = emit_metrics
        self.lambdas: InProcessLambdas | None = None
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
        self._exit.close()

    def start(self) -> None:
        from moto.core.config import default_user_config

        saved_environment = dict(os.environ)
        self._exit.callback(_restore_environment, saved_environment)
        os.environ.update(LOCAL_ENVIRONMENT)
        if not self.emit_metrics:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        config = {"stepfunctions": {"execute_state_machine": True}}
        if self.moto_port is None:
            self._exit.enter_context(_mock_aws(config))
        else:
            default_user_config["stepfunctions"] = {"execute_state_machine": True}
            from moto.moto_server.threaded_moto_server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
            server.start()
            self._exit.callback(server.stop)
            self.endpoint_url = f"http://{self.host}:{self.moto_port}"
            # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT, and the
            # in-process handlers reach the server through AWS_ENDPOINT_URL.
            os.environ["MOTO_PORT"] = str(self.moto_port)
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url

        from mlstack.localapi import LocalApi, routes_from_template

        self.lambdas = InProcessLambdas({})
        self._exit.enter_context(self.lambdas.patch_moto())
        self._exit.enter_context(deliver_rule_targets())
        self._exit.enter_context(atomic_item_writes())

        template = load_template(self.root / "template.yaml")
        self.api = LocalApi(routes_from_template(template), self.invoke_function)
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

    # access -------------------------------------------------------------------------------------
    @property
    def outputs(self) -> dict[str, str]:
        assert self.stack is not None, "LocalCloud is not started"
        return self.stack.outputs

    def client(self, service: str) -> Any:
        session = boto3.Session(region_name=REGION)
        return session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def invoke_function(self, logical_id: str, event: Any) -> Any:
        """Invoke a function of the stack synchronously, by its logical id in the template."""
        assert self.stack is not None
        assert self.lambdas is not None
        from moto.awslambda.utils import get_backend

        name = self.stack.function_name(logical_id)
        function = get_backend("123456789012", REGION).get_function(name)
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
