"""Patches of moto's internals: what the local cloud needs from moto that moto lacks, or does too
slowly, each one named context manager, entered by ``LocalCloud.start``.

pyproject.toml pins moto to exactly one version (5.2.5) because these patches replace, wrap or
call moto's private functions and methods. Each such function, method or module attribute is a
``Seam`` registered here, with the signature the patch assumes: ``PATCHED_SEAMS`` (what a patch
replaces or wraps; ``patched`` applies nothing else) and ``CALLED_SEAMS`` (what a replacement
calls). tests/unit/test_moto_seams.py checks every seam against the moto installed, so an
upgrade that moves or changes one fails there, naming it.

- ``batched_map_items``: moto's parser refuses a Distributed Map's ItemBatcher;
  ``template_rewrites.take_item_batchers`` takes it out of the definitions moto gets, and here it
  is applied at run time.
- ``json_state_copies``: moto's interpreter deep-copies each state's data with
  ``copy.deepcopy``; here the same JSON is copied through orjson (``json_copy``), still deeply.
- ``shared_interpreter_clients``: moto's interpreter makes a boto3 client for every Lambda task;
  here one per region and service.
- ``deliver_rule_targets``: moto's EventBridge does not deliver to Lambda targets, and takes a
  schedule rule (no event pattern) as matching every event. A failed delivery is retried, then
  dead-lettered, as EventBridge does.
- ``execution_status_events``: moto's Step Functions publishes no execution status change
  events; one is put on the bus when an execution ends.
- ``state_machines_in_executing_backend``: moto's CloudFormation puts state machines where the
  interpreter does not look.
- ``resource_types_moto_lacks``: moto's CloudFormation has no ``AWS::S3::BucketPolicy``,
  ``AWS::SQS::QueuePolicy``, ``AWS::ApiGateway::Account``, ``AWS::SNS::Subscription`` or
  ``AWS::CloudWatch::Alarm``. The subscription is made through moto's SNS and each alarm through
  moto's CloudWatch (``put_metric_alarm``); the two policies become stack resources whose
  documents are not applied, because moto evaluates a bucket policy's Deny without its Condition,
  so the TLS-only deny would refuse every request.
- ``map_result_files``: moto's Distributed Map ResultWriter writes an empty manifest; the
  children's outputs are written to a result file it lists, as on AWS.
- ``atomic_item_writes``: DynamoDB applies each conditional write atomically; moto's in-process
  table does not, and Map iterations and queued runs here are threads of one process, so item
  writes are serialised (the run lock and version counter rely on that atomicity).

The in-process Lambda runner (``lambdas.InProcessLambdas.patch_moto``: moto's Lambda invocation),
the in-process task runner (``tasks.InProcessTasks.patch_moto``: moto's ECS RunTask, a Fargate
task's resources and network interface, and its Step Functions ECS integration's request and
response casing and ``.sync`` resolver) and the
fault plan (``faults.FaultPlan.failing_sns_publishes``: moto's SNS publish) patch moto through
``patched`` too, from seams registered here.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import json
import threading
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from mlstack.localcloud import template_rewrites


# ------------------------------------------------------------------------------------- seams
@dataclass(frozen=True)
class Seam:
    """A moto function, method or module attribute a patch relies on, where it lives and the
    signature the patch assumes (as ``signature_of`` renders it)."""

    path: str  # "package.module:Class.attribute" or "package.module:attribute"
    # None for what is not a function (a module attribute replaced whole).
    parameters: str | None
    # For an attribute replaced by a stand-in: the only names moto's module may use of it.
    only_uses: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.path.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.qualname.rpartition(".")[2]

    @property
    def qualname(self) -> str:
        return self.path.partition(":")[2]

    def owner(self) -> Any:
        """The module or class the attribute is set on."""
        owner: Any = importlib.import_module(self.module)
        for name in self.qualname.split(".")[:-1]:
            owner = getattr(owner, name)
        return owner

    def resolve(self) -> Any:
        return getattr(self.owner(), self.attribute)


def signature_of(function: Any) -> str:
    """``function``'s parameters, defaults included, without annotations: ``(self, event=None)``."""
    signature = inspect.signature(function)
    parameters = [
        p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()
    ]
    return str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))


_ITERATION = "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration"
_RESULT_WRITER = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval"
)
_TASK = "moto.stepfunctions.parser.asl.component.state.exec.state_task"

LAMBDA_INVOCATION = Seam(
    "moto.awslambda.models:LambdaFunction._invoke_lambda", "(self, event=None)"
)
RULE_DELIVERY = Seam(
    "moto.events.models:Rule.send_to_targets", "(self, original_event, transform_input=True)"
)
EXECUTION_TERMINATED = Seam(
    "moto.stepfunctions.parser.backend.execution:BaseExecutionWorkerCommunication.terminated",
    "(self)",
)
MAP_RUN = Seam(
    f"{_ITERATION}.distributed_iteration_component:DistributedIterationComponent._map_run",
    "(self, env, eval_input)",
)
INTERPRETER_CLIENT = Seam(
    f"{_TASK}.lambda_eval_utils:boto_client_for", "(region, service, state_credentials=None)"
)
RESULT_WRITER_PUT = Seam(
    f"{_RESULT_WRITER}.resource_eval_s3:ResourceEvalS3._handle_put_object",
    "(env, resource_runtime_part, state_credentials)",
)
STATE_MACHINE_FROM_TEMPLATE = Seam(
    "moto.stepfunctions.models:StateMachine.create_from_cloudformation_json",
    "(resource_name, cloudformation_json, account_id, region_name, **kwargs)",
)
RESOURCE_CLASS_FROM_TYPE = Seam(
    "moto.cloudformation.parsing:resource_class_from_type", "(resource_type)"
)
ITEM_WRITES = (
    Seam(
        "moto.dynamodb.models:DynamoDBBackend.put_item",
        "(self, table_name, item_attrs, expected=None, condition_expression=None, "
        "expression_attribute_names=None, expression_attribute_values=None, overwrite=False, "
        "return_values_on_condition_check_failure=None)",
    ),
    Seam(
        "moto.dynamodb.models:DynamoDBBackend.update_item",
        "(self, table_name, key, update_expression, expression_attribute_names, "
        "expression_attribute_values, attribute_updates=None, expected=None, "
        "condition_expression=None, return_values_on_condition_check_failure=None)",
    ),
    Seam(
        "moto.dynamodb.models:DynamoDBBackend.delete_item",
        "(self, table_name, key, expression_attribute_names=None, "
        "expression_attribute_values=None, condition_expression=None, "
        "return_values_on_condition_check_failure=None)",
    ),
)
# The in-process task runner (tasks.InProcessTasks.patch_moto).
TASK_RUN = Seam(
    "moto.ecs.models:EC2ContainerServiceBackend.run_task",
    "(self, cluster_str, task_definition_str, count, overrides, started_by, tags, launch_type, "
    "networking_configuration=None, group=None, platform_version=None, "
    "capacity_provider_strategy=None)",
)
TASK_RESOURCE_REQUIREMENTS = Seam(
    "moto.ecs.models:EC2ContainerServiceBackend._calculate_task_resource_requirements",
    "(task_definition)",
)
NETWORK_INTERFACE_CREATION = Seam(
    "moto.ec2.models.elastic_network_interfaces:NetworkInterfaceBackend.create_network_interface",
    "(self, subnet, private_ip_address, private_ip_addresses=None, group_ids=None, "
    "description=None, tags=None, delete_on_termination=False, **kwargs)",
)
ECS_SYNC_RESOLVER = Seam(
    f"{_TASK}.service.state_task_service_ecs:StateTaskServiceEcs._build_sync_resolver",
    "(self, env, resource_runtime_part, normalised_parameters, state_credentials)",
)
_ECS_SERVICE = f"{_TASK}.service.state_task_service_ecs:StateTaskServiceEcs"
ECS_REQUEST_NORMALISATION = Seam(
    f"{_ECS_SERVICE}._normalise_parameters",
    "(self, parameters, boto_service_name=None, service_action_name=None)",
)
ECS_RESPONSE_NORMALISATION = Seam(
    f"{_ECS_SERVICE}._normalise_response",
    "(self, response, boto_service_name=None, service_action_name=None)",
)
TASK_SEAMS = (
    TASK_RUN,
    TASK_RESOURCE_REQUIREMENTS,
    NETWORK_INTERFACE_CREATION,
    ECS_SYNC_RESOLVER,
    ECS_REQUEST_NORMALISATION,
    ECS_RESPONSE_NORMALISATION,
)
SNS_PUBLISH = Seam(
    "moto.sns.models:SNSBackend.publish",
    "(self, message, arn, phone_number=None, subject=None, message_attributes=None, "
    "group_id=None, deduplication_id=None, message_structure=None)",
)
# moto's Step Functions modules that deep-copy state data (inputs, outputs, history details):
# their ``copy`` becomes a stand-in that has ``deepcopy`` only.
STATE_COPYING_MODULES = (
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.eval.environment",
    "moto.stepfunctions.parser.asl.eval.event.event_manager",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map",
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
)
STATE_COPIES = tuple(
    Seam(f"{module}:copy", None, only_uses=("deepcopy",)) for module in STATE_COPYING_MODULES
)

PATCHED_SEAMS: tuple[Seam, ...] = (
    LAMBDA_INVOCATION,
    RULE_DELIVERY,
    EXECUTION_TERMINATED,
    MAP_RUN,
    INTERPRETER_CLIENT,
    RESULT_WRITER_PUT,
    STATE_MACHINE_FROM_TEMPLATE,
    RESOURCE_CLASS_FROM_TYPE,
    *ITEM_WRITES,
    SNS_PUBLISH,
    *STATE_COPIES,
    *TASK_SEAMS,
)

# What the replacements call of moto, beyond the originals they wrap.
CALLED_SEAMS: tuple[Seam, ...] = (
    Seam(
        f"{_RESULT_WRITER}.resource_eval_s3:ResourceEvalS3._get_s3_client",
        "(resource_runtime_part, state_credentials)",
    ),
    Seam(
        "moto.awslambda.models:LambdaFunction.invoke",
        "(self, body, request_headers, response_headers)",
    ),
    Seam(
        "moto.stepfunctions.models:StepFunctionBackend.create_state_machine",
        "(self, name, definition, roleArn, tags=None, publish=None, loggingConfiguration=None, "
        "tracingConfiguration=None, encryptionConfiguration=None, version_description=None, "
        "sm_type=None)",
    ),
    Seam("moto.sns.models:SNSBackend.subscribe", "(self, topic_arn, endpoint, protocol)"),
    Seam(
        "moto.cloudwatch.models:CloudWatchBackend.put_metric_alarm",
        "(self, name, namespace, metric_name, comparison_operator, evaluation_periods, period, "
        "threshold, statistic, description, dimensions, alarm_actions, "
        "metric_data_queries=None, datapoints_to_alarm=None, extended_statistic=None, "
        "ok_actions=None, insufficient_data_actions=None, unit=None, actions_enabled=True, "
        "treat_missing_data=None, evaluate_low_sample_count_percentile=None, "
        "threshold_metric_id=None, rule=None, tags=None)",
    ),
    Seam(
        "moto.ecs.models:EC2ContainerServiceBackend.describe_task_definition",
        "(self, task_definition_str)",
    ),
    Seam("moto.ec2.utils:generate_dns_from_ip", "(ip, dns_type='internal')"),
    Seam(
        "moto.stepfunctions.parser.asl.component.common.error_name.failure_event:"
        "FailureEvent.__init__",
        "(self, env, error_name, event_type, event_details=None)",
    ),
    Seam(
        "moto.stepfunctions.parser.asl.component.common.error_name.failure_event:"
        "FailureEventException.__init__",
        "(self, failure_event)",
    ),
    Seam(
        "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name:"
        "StatesErrorName.__init__",
        "(self, typ)",
    ),
    Seam(
        "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type:"
        "StatesErrorNameType.StatesTaskFailed",
        None,
    ),
    Seam(f"{_ECS_SERVICE}._get_sfn_resource_type", "(self)"),
    Seam(f"{_ECS_SERVICE}._get_sfn_resource", "(self)"),
    Seam("moto.stepfunctions.parser.asl.utils.encoding:to_json_str", "(obj, separators=None)"),
    Seam(
        f"{_TASK}.service.state_task_service:StateTaskService._to_boto_request",
        "(self, parameters, structure_shape)",
    ),
    Seam(
        f"{_TASK}.service.state_task_service:StateTaskService._from_boto_response",
        "(self, response, structure_shape)",
    ),
    Seam(
        f"{_TASK}.service.state_task_service:StateTaskService._get_boto_service_name",
        "(self, boto_service_name=None)",
    ),
    Seam(
        f"{_TASK}.service.state_task_service:StateTaskService._get_boto_service_action",
        "(self, service_action_name=None)",
    ),
    Seam(
        "moto.sqs.models:SQSBackend.send_message",
        "(self, queue_name, message_body, message_attributes=None, delay_seconds=None, "
        "deduplication_id=None, group_id=None, system_attributes=None, validate_group_id=True)",
    ),
)

MOTO_SEAMS: tuple[Seam, ...] = PATCHED_SEAMS + CALLED_SEAMS


_INHERITED = object()  # the attribute is not the owner's own


@contextlib.contextmanager
def patched(seam: Seam, replacement: Any) -> Iterator[None]:
    """``replacement`` in place of the seam's attribute until the block ends. Only a registered
    seam can be patched, so every patch has its seam test."""
    if seam not in PATCHED_SEAMS:
        raise LookupError(f"{seam.path} is not in PATCHED_SEAMS: register it, with its signature")
    owner, attribute = seam.owner(), seam.attribute
    check_replacement(seam, replacement)
    # The attribute as stored (a staticmethod stays one), to be put back as it was.
    stored = vars(owner).get(attribute, _INHERITED)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        if stored is _INHERITED:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, stored)


def check_replacement(seam: Seam, replacement: Any) -> None:
    """The replacement takes moto's parameters by moto's names (moto passes some by keyword), or
    passes every argument on (``*args, **kwargs``). The receiver's name may differ."""
    if seam.parameters is None:
        return
    stored = inspect.getattr_static(seam.owner(), seam.attribute)
    function = getattr(replacement, "__func__", replacement)  # a staticmethod or classmethod
    taken = list(inspect.signature(function).parameters.values())
    kinds = {p.kind for p in taken}
    if {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD} <= kinds:
        return
    names = [p.name for p in taken]
    expected = [p.name for p in inspect.signature(seam.resolve()).parameters.values()]
    if isinstance(replacement, classmethod):
        names = names[1:]  # cls: moto's signature is read through the class, bound
    elif inspect.isclass(seam.owner()) and not isinstance(stored, (staticmethod, classmethod)):
        names, expected = names[1:], expected[1:]  # the instance
    if names != expected:
        raise TypeError(f"the replacement of {seam.path} takes {names}; moto passes {expected}")


# ----------------------------------------------------------------------------------- patches
def batched_map_items() -> contextlib.AbstractContextManager[None]:
    """Group a Distributed Map's items as ``ItemBatcher`` does: each child execution gets
    ``{"BatchInput": ..., "Items": [...]}``, at most ``MaxItemsPerBatch`` items, each item first
    shaped by the Map's ``ItemSelector`` (with ``$$.Map.Item.Index`` and ``.Value``). Paths in
    ``BatchInput`` and ``ItemSelector`` are read from the Map state's input (``$.a.b``) and the
    item's context (``$$.Map.Item.Index``, ``$$.Map.Item.Value[.field]``): what the stack's
    definitions use, not the whole of JSONPath."""
    original = MAP_RUN.resolve()

    def map_run(component: Any, env: Any, eval_input: Any) -> None:
        taken = template_rewrites.ITEM_BATCHERS.get(eval_input.state_name)
        if taken is None:
            return original(component, env, eval_input)
        items = env.stack.pop()
        state_input = env.states.get_input()
        selector = taken["selector"]
        shaped = [
            _resolve(selector, state_input, index, item) if selector else item
            for index, item in enumerate(items)
        ]
        size = int(taken["batcher"].get("MaxItemsPerBatch", len(shaped) or 1))
        batch_input = taken["batcher"].get("BatchInput")
        batches = []
        for start in range(0, len(shaped), size):
            batch: dict[str, Any] = {"Items": shaped[start : start + size]}
            if batch_input is not None:
                batch["BatchInput"] = _resolve(batch_input, state_input, None, None)
            batches.append(batch)
        env.stack.append(batches)
        return original(component, env, eval_input)

    return patched(MAP_RUN, map_run)


def _resolve(template: Any, state_input: Any, index: int | None, item: Any) -> Any:
    if isinstance(template, list):
        return [_resolve(value, state_input, index, item) for value in template]
    if not isinstance(template, dict):
        return template
    out: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$") and isinstance(value, str):
            out[key[:-2]] = _path(value, state_input, index, item)
        else:
            out[key] = _resolve(value, state_input, index, item)
    return out


def _path(path: str, state_input: Any, index: int | None, item: Any) -> Any:
    if path == "$$.Map.Item.Index":
        return index
    if path.startswith("$$.Map.Item.Value"):
        value, rest = item, path.removeprefix("$$.Map.Item.Value")
    elif path.startswith("$"):
        value, rest = state_input, path.removeprefix("$")
    else:
        raise ValueError(f"the local ItemBatcher does not read {path!r}")
    for field in filter(None, rest.split(".")):
        value = value[field]
    return value


def json_copy(value: Any, memo: Any = None) -> Any:
    """A deep copy of JSON data through orjson (about 10x faster than ``copy.deepcopy`` on a
    1,000-row batch); anything orjson would not give back unchanged takes ``copy.deepcopy``."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict or kind is list:
        try:
            copied = orjson.loads(orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER))
        except (TypeError, orjson.JSONEncodeError):
            return copy.deepcopy(value, memo)
        if copied == value:  # also false for NaN, which orjson writes as null
            return copied
    return copy.deepcopy(value, memo)


@contextlib.contextmanager
def json_state_copies() -> Iterator[None]:
    """moto's interpreter deep-copies every state's input and output, and a batch of 1,000 rows
    passes several states: ``copy.deepcopy`` took most of a local job's time. The state data is
    JSON, so the local cloud copies it as JSON (``json_copy``); the copies stay deep."""
    fast = types.SimpleNamespace(deepcopy=json_copy)
    with contextlib.ExitStack() as stack:
        for seam in STATE_COPIES:
            stack.enter_context(patched(seam, fast))
        yield


def shared_interpreter_clients() -> contextlib.AbstractContextManager[None]:
    """moto's interpreter builds a new boto3 Lambda client for every Task it runs (about 10 ms,
    as much as scoring a 1,000-row batch). Its clients differ only by region and service (the
    credentials are fixed), so the local cloud builds each once; boto3 clients are thread-safe."""
    build = INTERPRETER_CLIENT.resolve()
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        with lock:
            if (region, service) not in clients:
                clients[region, service] = build(region=region, service=service)
            return clients[region, service]

    return patched(INTERPRETER_CLIENT, client_for)


@contextlib.contextmanager
def atomic_item_writes() -> Iterator[None]:
    """One item write at a time in moto's DynamoDB, as DynamoDB guarantees per item."""
    lock = threading.RLock()

    def serialised(original: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(*args, **kwargs)

        return write

    with contextlib.ExitStack() as stack:
        for seam in ITEM_WRITES:
            stack.enter_context(patched(seam, serialised(seam.resolve())))
        yield


def deliver_rule_targets() -> contextlib.AbstractContextManager[None]:
    """Let moto's EventBridge rules deliver to Lambda targets (it only knows SQS, logs, buses)."""
    from moto.awslambda.utils import get_backend
    from moto.utilities.arns import parse_arn

    original = RULE_DELIVERY.resolve()

    def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
        event = original_event
        # A schedule rule has no event pattern, which moto's matcher takes as "every event": on
        # AWS it only fires on its schedule, so it never receives the bus's events.
        if rule.scheduled_expression or not rule.event_pattern.matches_event(event):
            return
        others = []
        for target in rule.targets:
            arn = parse_arn(target["Arn"])
            if arn.service == "lambda":
                function = get_backend(arn.account, arn.region).get_function(target["Arn"])
                _deliver_with_retries(function, event, target)
            else:
                others.append(target)
        if others:
            saved = rule.targets
            rule.targets = others
            try:
                original(rule, event, transform_input)
            finally:
                rule.targets = saved

    return patched(RULE_DELIVERY, send_to_targets)


# EventBridge retries a failed delivery per the target's RetryPolicy (up to 185 times over a day),
# and Lambda's asynchronous invocation retries a function error twice; locally, a few at once.
LOCAL_DELIVERY_ATTEMPTS = 3


def _deliver_with_retries(function: Any, event: Any, target: dict[str, Any]) -> None:
    """Invoke a rule's Lambda target as EventBridge does, though synchronously and in-process:
    with the asynchronous invocation type, again after an error, and into the target's dead-letter
    queue when every attempt failed. A failing target never fails the call that put the event."""
    from moto.sqs.models import sqs_backends
    from moto.utilities.arns import parse_arn

    body = json.dumps(event, default=str)
    for _ in range(LOCAL_DELIVERY_ATTEMPTS):
        response_headers: dict[str, str] = {}
        function.invoke(body, {"x-amz-invocation-type": "Event"}, response_headers)
        if "x-amz-function-error" not in response_headers:
            return
    dead_letters = (target.get("DeadLetterConfig") or {}).get("Arn")
    if dead_letters:
        queue = parse_arn(dead_letters)
        sqs_backends[queue.account][queue.region].send_message(queue.resource_id, body)


def execution_status_events() -> contextlib.AbstractContextManager[None]:
    """Put Step Functions' "Execution Status Change" events on the bus when an execution ends.

    moto's interpreter publishes none, so the rule on a run's ending (RunEnded) would never
    fire. The event has AWS's shape and goes to every rule, as moto delivers S3's events.
    """
    from moto.events.models import events_backends

    original = EXECUTION_TERMINATED.resolve()

    def terminated(communication: Any) -> None:
        original(communication)
        execution = communication.execution
        status = str(getattr(execution.exec_status, "value", execution.exec_status))
        started, stopped = execution.start_date, execution.stop_date
        event: Any = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": execution.account_id,
            "time": (stopped or started).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": execution.region_name,
            "resources": [execution.exec_arn],
            "detail": {
                "executionArn": execution.exec_arn,
                "stateMachineArn": execution.state_machine_arn,
                "name": execution.name,
                "status": status,
                "startDate": int(started.timestamp() * 1000),
                "stopDate": int(stopped.timestamp() * 1000) if stopped else None,
                "input": json.dumps(execution.input_data),
                "inputDetails": {"included": True},
                "error": execution.error,
                "cause": execution.cause,
            },
        }
        backend = events_backends[execution.account_id][execution.region_name]
        for bus in list(backend.event_buses.values()):
            for rule in list(bus.rules.values()):
                rule.send_to_targets(event, transform_input=False)

    return patched(EXECUTION_TERMINATED, terminated)


def map_result_files() -> contextlib.AbstractContextManager[None]:
    """Write a Distributed Map's result files as Step Functions' ResultWriter does.

    moto writes ``manifest.json`` with empty ``ResultFiles`` and drops the children's outputs (a
    TODO in its parser). Here they go to ``SUCCEEDED_0.json`` beside the manifest, in AWS's shape
    (a list of ``{"Input", "Output", "Status"}`` with JSON text), and the manifest lists it.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (  # noqa: E501
        ResourceEvalS3,
    )

    original = RESULT_WRITER_PUT.resolve()

    def handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        outputs = list(env.stack[-2])  # the iterations' outputs, under the writer's parameters
        original(env, resource_runtime_part, state_credentials)
        details = env.stack[-1]["ResultWriterDetails"]
        s3 = ResourceEvalS3._get_s3_client(resource_runtime_part, state_credentials)
        manifest = json.loads(
            s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read()
        )
        entries = [{"Status": "SUCCEEDED", "Output": json.dumps(output)} for output in outputs]
        body = json.dumps(entries).encode()
        key = details["Key"].rsplit("/", 1)[0] + "/SUCCEEDED_0.json"
        s3.put_object(Bucket=details["Bucket"], Key=key, Body=body)
        manifest["ResultFiles"]["SUCCEEDED"] = [{"Key": key, "Size": len(body)}]
        s3.put_object(Bucket=details["Bucket"], Key=details["Key"], Body=json.dumps(manifest))

    return patched(RESULT_WRITER_PUT, staticmethod(handle_put_object))


def state_machines_in_executing_backend() -> contextlib.AbstractContextManager[None]:
    """moto's CloudFormation creates state machines in the backend that does not execute them."""
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

    return patched(STATE_MACHINE_FROM_TEMPLATE, classmethod(create_from_cloudformation_json))


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
    stand_ins: dict[str, type[_StackResourceStandIn]] = {
        "AWS::S3::BucketPolicy": type("BucketPolicy", (_StackResourceStandIn,), {}),
        "AWS::SQS::QueuePolicy": type("QueuePolicy", (_StackResourceStandIn,), {}),
        # A region-wide API Gateway setting (the CloudWatch role for access logs): nothing to
        # apply to the local API, which logs nothing.
        "AWS::ApiGateway::Account": type("ApiGatewayAccount", (_StackResourceStandIn,), {}),
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
    original = RESOURCE_CLASS_FROM_TYPE.resolve()

    def resource_class_from_type(resource_type: str) -> Any:
        return stand_ins.get(resource_type) or original(resource_type)

    return patched(RESOURCE_CLASS_FROM_TYPE, resource_class_from_type)
