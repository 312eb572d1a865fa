"""What moto lacks, adapted one named function at a time (the list is in ``mlstack.localcloud``)."""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from mlstack.sam import inline_substitution


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


# Map state name -> its ItemBatcher and ItemSelector, taken out of the definitions moto is given.
ITEM_BATCHERS: dict[str, dict[str, Any]] = {}


def take_item_batchers(translated: dict[str, Any]) -> None:
    """moto's ASL parser refuses ``ItemBatcher`` (Distributed Map). The definitions moto gets lose
    it, and the Map's ``ItemSelector`` with it; ``batched_map_items`` applies both at run time.
    It also refuses Express child executions (``ExecutionType: EXPRESS``): those children run as
    Standard ones locally. The template and the checks keep the real definition."""
    for resource in translated["Resources"].values():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        properties = resource["Properties"]
        wrapped = properties.get("DefinitionString")
        if not (isinstance(wrapped, dict) and isinstance(wrapped.get("Fn::Sub"), str)):
            continue
        definition = json.loads(wrapped["Fn::Sub"])
        if _take_batchers(definition["States"]):
            properties["DefinitionString"] = {"Fn::Sub": json.dumps(definition)}


def _take_batchers(states: dict[str, Any]) -> bool:
    taken = False
    for name, state in states.items():
        processor = state.get("ItemProcessor") or state.get("Iterator") or {}
        config = processor.get("ProcessorConfig") or {}
        if config.get("ExecutionType") == "EXPRESS":
            config["ExecutionType"] = "STANDARD"
            taken = True
        taken |= _take_batchers(processor.get("States", {}))
        for branch in state.get("Branches", []):
            taken |= _take_batchers(branch["States"])
        if "ItemBatcher" in state:
            ITEM_BATCHERS[name] = {
                "batcher": state.pop("ItemBatcher"),
                "selector": state.pop("ItemSelector", None),
            }
            taken = True
    return taken


def batched_map_items() -> contextlib.AbstractContextManager[None]:
    """Group a Distributed Map's items as ``ItemBatcher`` does: each child execution gets
    ``{"BatchInput": ..., "Items": [...]}``, at most ``MaxItemsPerBatch`` items, each item first
    shaped by the Map's ``ItemSelector`` (with ``$$.Map.Item.Index`` and ``.Value``). Paths in
    ``BatchInput`` and ``ItemSelector`` are read from the Map state's input (``$.a.b``) and the
    item's context (``$$.Map.Item.Index``, ``$$.Map.Item.Value[.field]``): what the stack's
    definitions use, not the whole of JSONPath."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (  # noqa: E501
        DistributedIterationComponent,
    )

    original = DistributedIterationComponent._map_run

    def map_run(component: Any, env: Any, eval_input: Any) -> None:
        taken = ITEM_BATCHERS.get(eval_input.state_name)
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

    return patched(DistributedIterationComponent, "_map_run", map_run)


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


# moto's Step Functions modules that deep-copy state data (inputs, outputs, history details).
STATE_COPYING_MODULES = (
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.eval.environment",
    "moto.stepfunctions.parser.asl.eval.event.event_manager",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map",
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
)


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
    import importlib

    fast = types.SimpleNamespace(deepcopy=json_copy)
    with contextlib.ExitStack() as stack:
        for name in STATE_COPYING_MODULES:
            stack.enter_context(patched(importlib.import_module(name), "copy", fast))
        yield


def shared_interpreter_clients() -> contextlib.AbstractContextManager[None]:
    """moto's interpreter builds a new boto3 Lambda client for every Task it runs (about 10 ms,
    as much as scoring a 1,000-row batch). Its clients differ only by region and service (the
    credentials are fixed), so the local cloud builds each once; boto3 clients are thread-safe."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    build = lambda_eval_utils.boto_client_for
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        with lock:
            if (region, service) not in clients:
                clients[region, service] = build(region=region, service=service)
            return clients[region, service]

    return patched(lambda_eval_utils, "boto_client_for", client_for)


def serve_api_locally(translated: dict[str, Any], api_url: str) -> None:
    """Keep the RestApi resource, but serve its routes from the local HTTP server.

    moto's RestApi needs a ``Name`` (KeyError otherwise) and ignores the OpenAPI ``Body`` SAM
    generates, so its Deployment fails ("doesn't contain any methods"). The routes are served by
    ``mlstack.localcloud.api`` from the same template events, and ``ApiUrl`` points there.
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


@contextlib.contextmanager
def patched(owner: Any, attribute: str, replacement: Any) -> Iterator[None]:
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

    return patched(Rule, "send_to_targets", send_to_targets)


# EventBridge retries a failed delivery per the target's RetryPolicy (up to 185 times over a day),
# and Lambda's asynchronous invocation retries a function error twice; locally, a few at once.
LOCAL_DELIVERY_ATTEMPTS = 3


def _deliver_with_retries(function: Any, event: Any, target: dict[str, Any]) -> None:
    """Invoke a rule's Lambda target as EventBridge does: asynchronously, again after an error,
    and into the target's dead-letter queue when every attempt failed. A failing target never
    fails the call that put the event."""
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
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    original = BaseExecutionWorkerCommunication.terminated

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

    return patched(BaseExecutionWorkerCommunication, "terminated", terminated)


def map_result_files() -> contextlib.AbstractContextManager[None]:
    """Write a Distributed Map's result files as Step Functions' ResultWriter does.

    moto writes ``manifest.json`` with empty ``ResultFiles`` and drops the children's outputs (a
    TODO in its parser). Here they go to ``SUCCEEDED_0.json`` beside the manifest, in AWS's shape
    (a list of ``{"Input", "Output", "Status"}`` with JSON text), and the manifest lists it.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3 import (  # noqa: E501
        ResourceEvalS3,
    )

    original = ResourceEvalS3._handle_put_object

    def handle_put_object(env: Any, runtime_part: Any, credentials: Any) -> None:
        outputs = list(env.stack[-2])  # the iterations' outputs, under the writer's parameters
        original(env, runtime_part, credentials)
        details = env.stack[-1]["ResultWriterDetails"]
        s3 = ResourceEvalS3._get_s3_client(runtime_part, credentials)
        manifest = json.loads(
            s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read()
        )
        entries = [{"Status": "SUCCEEDED", "Output": json.dumps(output)} for output in outputs]
        body = json.dumps(entries).encode()
        key = details["Key"].rsplit("/", 1)[0] + "/SUCCEEDED_0.json"
        s3.put_object(Bucket=details["Bucket"], Key=key, Body=body)
        manifest["ResultFiles"]["SUCCEEDED"] = [{"Key": key, "Size": len(body)}]
        s3.put_object(Bucket=details["Bucket"], Key=details["Key"], Body=json.dumps(manifest))

    return patched(ResourceEvalS3, "_handle_put_object", staticmethod(handle_put_object))


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

    return patched(
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
    original = parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        return stand_ins.get(resource_type) or original(resource_type)

    return patched(parsing, "resource_class_from_type", resource_class_from_type)


def apply_bucket_configuration(
    translated: dict[str, Any], physical: dict[str, str], s3: Any
) -> None:
    """Versioning and EventBridge notifications, which moto's CloudFormation does not apply."""
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::S3::Bucket":
            continue
        properties = resource.get("Properties", {})
        bucket = physical.get(logical_id)
        if not bucket:  # its Condition is false: not created
            continue
        versioning = properties.get("VersioningConfiguration", {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning})
        notifications = properties.get("NotificationConfiguration", {})
        if notifications.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
