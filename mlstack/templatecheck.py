"""Offline checks of template.yaml as CloudFormation will see it, after the SAM transform.

Each ``check_*`` function takes the translated template (``translate_offline``) and returns a list
of problems, empty when all is well, so the same functions serve the test of the real template and
the tests that mutate a copy of it and expect a problem.

- ``check_substitutions``: every ``${Placeholder}`` in a state machine definition has a
  ``DefinitionSubstitutions`` entry, every entry is used, and every entry names a real resource.
- ``check_transitions``: every ``StartAt``/``Next``/``Default``/``Catch`` target exists in its scope
  (Map ItemProcessors and Parallel branches included), every non-terminal state goes somewhere,
  and every state is reachable.
- ``check_permissions``: each role grants the actions its function or state machine needs, on the
  resources it needs them on (``Need``), by evaluating the role's policy statements.
- ``check_wildcards``: no statement allows ``*`` or ``service:*`` actions, or a ``*`` resource where
  the actions support a narrower one; managed policies only from a reviewed list.

``state_machine_needs`` derives a state machine's needs from its ASL (Lambda tasks, SNS publishes,
Distributed Map reads, writes and child executions); ``actions_in_code`` derives the AWS actions a
function's code calls from its source, so a table of needs can be checked against the code.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.localcloud import inline_substitution

PARTITION = "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "mlstack"

# Actions that have no resource-level permissions: "*" is the narrowest resource there is.
ACTIONS_WITHOUT_RESOURCES = frozenset(
    {
        "xray:puttracesegments",
        "xray:puttelemetryrecords",
        "xray:getsamplingrules",
        "xray:getsamplingtargets",
        "xray:getsamplingstatisticsummaries",
        "cloudwatch:putmetricdata",
    }
)

# Managed policies SAM attaches, reviewed: anything else attached to a role is a problem.
REVIEWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": (
        "SAM attaches it to every function role (logs:CreateLogStream and logs:PutLogEvents); "
        "it cannot be opted out of without hand-written roles"
    ),
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": (
        "Tracing: Active; X-Ray's write actions have no resource-level permissions"
    ),
}


# ------------------------------------------------------------------------------------ translate
def offline_package(template: dict[str, Any], root: Path) -> dict[str, Any]:
    """What ``sam package`` does, without uploading: code URIs become S3 URIs (the transform
    requires them), and each ``DefinitionUri`` is inlined from the file it names."""
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            uri = properties.get(key)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                properties[key] = f"s3://offline-package/{uri.strip('/')}.zip"
        definition_uri = properties.get("DefinitionUri")
        if isinstance(definition_uri, str) and not definition_uri.startswith("s3://"):
            properties["Definition"] = json.loads((root / definition_uri).read_text())
            del properties["DefinitionUri"]
    return packaged


def translate_offline(
    root: Path, parameters: Mapping[str, str] | None = None, template_name: str = "template.yaml"
) -> dict[str, Any]:
    """``root/template_name`` through aws-sam-translator's transform, as CloudFormation runs it."""
    from mlstack.localcloud import load_template, translate

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the transform asks boto3 for a region
    template = offline_package(load_template(root / template_name), root)
    return translate(template, dict(parameters or {}))


def state_machines(translated: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id → parsed ASL of every state machine in the translated template."""
    found = {}
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        found[logical_id] = json.loads(definition_text(resource))
    return found


def definition_text(resource: Mapping[str, Any]) -> str:
    definition = resource["Properties"]["DefinitionString"]
    if isinstance(definition, dict) and "Fn::Join" in definition:
        separator, parts = definition["Fn::Join"]
        return str(separator).join(parts)
    if isinstance(definition, str):
        return definition
    raise ValueError(f"unexpected DefinitionString: {definition!r}")


# ------------------------------------------------------------------------------------ resolving
class Resolver:
    """Evaluates intrinsic functions over the translated template with made-up physical names.

    Every resource gets the name ``<stack>-<LogicalId>`` unless its name property says otherwise,
    and ``Ref``/``Fn::GetAtt`` return what CloudFormation would for its type (names, ARNs, URLs).
    """

    NAME_PROPERTIES = (
        "AlarmName",
        "DashboardName",
        "BucketName",
        "TableName",
        "FunctionName",
        "TopicName",
        "QueueName",
        "StateMachineName",
        "LogGroupName",
        "RoleName",
        "Name",
    )

    def __init__(
        self, translated: Mapping[str, Any], parameters: Mapping[str, str] | None = None
    ) -> None:
        self.resources: Mapping[str, Any] = translated["Resources"]
        self.parameters = {
            name: str(spec.get("Default", ""))
            for name, spec in translated.get("Parameters", {}).items()
        }
        self.parameters.update(parameters or {})
        self.pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.conditions: Mapping[str, Any] = translated.get("Conditions", {})

    def name(self, logical_id: str) -> str:
        properties = self.resources[logical_id].get("Properties", {})
        for key in self.NAME_PROPERTIES:
            if key in properties and self.resources[logical_id]["Type"] != "AWS::Events::Rule":
                return str(self.value(properties[key]))
        return f"{STACK}-{logical_id}"

    def ref(self, logical_id: str) -> str:
        if logical_id in self.pseudo:
            return self.pseudo[logical_id]
        if logical_id in self.parameters:
            return self.parameters[logical_id]
        kind = self.resources[logical_id]["Type"]
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
            return self.attribute(logical_id, "Arn")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name(logical_id)}"
        return self.name(logical_id)

    def attribute(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.name(logical_id)
        prefix = f"arn:{PARTITION}"
        if attribute in ("Name", "TopicName", "QueueName"):
            return name
        arns = {
            "AWS::S3::Bucket": f"{prefix}:s3:::{name}",
            "AWS::DynamoDB::Table": f"{prefix}:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
            "AWS::Lambda::Function": f"{prefix}:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::SNS::Topic": f"{prefix}:sns:{REGION}:{ACCOUNT}:{name}",
            "AWS::SQS::Queue": f"{prefix}:sqs:{REGION}:{ACCOUNT}:{name}",
            "AWS::StepFunctions::StateMachine": (
                f"{prefix}:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
            ),
            "AWS::Events::Rule": f"{prefix}:events:{REGION}:{ACCOUNT}:rule/{name}",
            "AWS::IAM::Role": f"{prefix}:iam::{ACCOUNT}:role/{name}",
            "AWS::Logs::LogGroup": f"{prefix}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::KMS::Key": f"{prefix}:kms:{REGION}:{ACCOUNT}:key/{name}",
            "AWS::CloudWatch::Alarm": f"{prefix}:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        }
        if attribute in ("Arn", "TopicArn") and kind in arns:
            return arns[kind]
        raise ValueError(f"Fn::GetAtt {logical_id}.{attribute} ({kind}) is not modelled")

    def sub(self, text: str, variables: Mapping[str, str] | None = None) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if variables and name in variables:
                return variables[name]
            if "." in name and name.split(".", 1)[0] in self.resources:
                logical_id, attribute = name.split(".", 1)
                return self.attribute(logical_id, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def condition(self, name: str) -> bool:
        return bool(self.value(self.conditions[name]))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {key: self.value(item) for key, item in node.items()}
        (key, argument), *_ = node.items()
        if key == "Ref":
            return self.ref(argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = (
                argument.split(".", 1) if isinstance(argument, str) else argument
            )
            return self.attribute(logical_id, attribute)
        if key == "Fn::Sub":
            if isinstance(argument, str):
                return self.sub(argument)
            text, variables = argument
            return self.sub(text, {k: str(self.value(v)) for k, v in variables.items()})
        if key == "Fn::Join":
            separator, parts = argument
            return str(separator).join(str(p) for p in self.value(parts))
        if key == "Fn::If":
            name, when_true, when_false = argument
            return self.value(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = self.value(argument)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.value(argument[0])
        if key == "Fn::And":
            return all(self.value(argument))
        if key == "Fn::Or":
            return any(self.value(argument))
        if key == "Condition":
            return self.condition(argument)
        return {key: self.value(argument)}


# ------------------------------------------------------------------------------------ ASL
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def check_substitutions(translated: Mapping[str, Any]) -> list[str]:
    problems = []
    resources = translated["Resources"]
    parameters = translated.get("Parameters", {})
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        used = set(PLACEHOLDER.findall(definition_text(resource)))
        substitutions = resource["Properties"].get("DefinitionSubstitutions", {})
        for name in sorted(used - set(substitutions)):
            problems.append(f"{logical_id}: ${{{name}}} has no DefinitionSubstitutions entry")
        for name in sorted(set(substitutions) - used):
            problems.append(f"{logical_id}: DefinitionSubstitutions.{name} is not used")
        for name, value in sorted(substitutions.items()):
            for target in _referenced_ids(value):
                if target not in resources and target not in parameters:
                    problems.append(
                        f"{logical_id}: DefinitionSubstitutions.{name} names {target}, "
                        "which is not in the template"
                    )
    return problems


def _referenced_ids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, argument in node.items():
            if key == "Ref" and isinstance(argument, str) and not argument.startswith("AWS::"):
                yield argument
            elif key == "Fn::GetAtt":
                yield (argument.split(".", 1)[0] if isinstance(argument, str) else argument[0])
            else:
                yield from _referenced_ids(argument)
    elif isinstance(node, list):
        for item in node:
            yield from _referenced_ids(item)


def scopes(
    definition: Mapping[str, Any], path: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every ``{StartAt, States}`` scope: the top level, Map ItemProcessors, Parallel branches."""
    yield path or "(top level)", definition
    for name, state in definition.get("States", {}).items():
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from scopes(state[key], f"{path}{name}.{key}/")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from scopes(branch, f"{path}{name}.Branches[{index}]/")


def _targets(state: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if "Next" in state:
        yield "Next", state["Next"]
    if "Default" in state:
        yield "Default", state["Default"]
    for index, choice in enumerate(state.get("Choices", [])):
        yield f"Choices[{index}].Next", choice.get("Next", "")
    for index, catch in enumerate(state.get("Catch", [])):
        yield f"Catch[{index}].Next", catch.get("Next", "")


TERMINAL_TYPES = ("Succeed", "Fail", "Choice")


def check_transitions(translated: Mapping[str, Any]) -> list[str]:
    problems = []
    for machine, definition in state_machines(translated).items():
        for where, scope in scopes(definition):
            states = scope.get("States", {})
            start = scope.get("StartAt")
            if start not in states:
                problems.append(f"{machine} {where}: StartAt {start!r} is not a state")
            for name, state in states.items():
                for field_name, target in _targets(state):
                    if target not in states:
                        problems.append(
                            f"{machine} {where}{name}: {field_name} {target!r} is not a state "
                            "in its scope"
                        )
                if state.get("Type") not in TERMINAL_TYPES and not (
                    "Next" in state or state.get("End") is True
                ):
                    problems.append(f"{machine} {where}{name}: neither Next nor End")
            reachable: set[str] = set()
            pending: list[str] = [str(start)] if start in states else []
            while pending:
                current = pending.pop()
                if current in reachable or current not in states:
                    continue
                reachable.add(current)
                pending.extend(target for _, target in _targets(states[current]))
            for name in sorted(set(states) - reachable):
                problems.append(f"{machine} {where}{name}: not reachable from StartAt")
    return problems


# ------------------------------------------------------------------------------------ needs
@dataclass(frozen=True)
class Need:
    """``action`` on ``resource``, an ``Fn::Sub`` text over the template (``${Bucket.Arn}/key``)."""

    action: str
    resource: str
    why: str = ""


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    source: str


def _glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{expression}$", re.IGNORECASE if ignore_case else 0)


def role_statements(
    translated: Mapping[str, Any], role: str, resolver: Resolver
) -> tuple[list[Statement], list[str]]:
    """The role's inline and attached policy statements, resolved; and its managed policy ARNs."""
    resources = translated["Resources"]
    properties = resources[role]["Properties"]
    documents = [
        (f"{role}.{policy.get('PolicyName', '?')}", policy["PolicyDocument"])
        for policy in properties.get("Policies", [])
    ]
    for logical_id, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = resource["Properties"].get("Roles", [])
            if {"Ref": role} in roles:
                documents.append((logical_id, resource["Properties"]["PolicyDocument"]))
    statements = []
    for source, document in documents:
        raw = document.get("Statement", [])
        for statement in raw if isinstance(raw, list) else [raw]:
            actions = statement.get("Action", statement.get("NotAction", []))
            targets = resolver.value(statement.get("Resource", statement.get("NotResource", [])))
            negated = "NotAction" in statement or "NotResource" in statement
            statements.append(
                Statement(
                    effect=statement.get("Effect", "Allow"),
                    actions=tuple(actions if isinstance(actions, list) else [actions]),
                    resources=tuple(
                        str(t) for t in (targets if isinstance(targets, list) else [targets])
                    ),
                    source=f"{source} (NotAction/NotResource)" if negated else source,
                )
            )
    managed = [str(resolver.value(arn)) for arn in properties.get("ManagedPolicyArns", [])]
    return statements, managed


def allows(statements: Sequence[Statement], action: str, resource: str) -> bool:
    """IAM's answer for one request: an Allow matches and no Deny does (conditions not modelled;
    the template's roles have none)."""

    def matches(statement: Statement) -> bool:
        if "NotAction" in statement.source:
            return False
        action_ok = any(_glob(a, ignore_case=True).match(action) for a in statement.actions)
        return action_ok and any(_glob(r).match(resource) for r in statement.resources)

    if any(s.effect == "Deny" and matches(s) for s in statements):
        return False
    return any(s.effect == "Allow" and matches(s) for s in statements)


def role_of(translated: Mapping[str, Any], logical_id: str) -> str | None:
    properties = translated["Resources"][logical_id]["Properties"]
    role = properties.get("Role", properties.get("RoleArn"))
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        return str(role["Fn::GetAtt"][0])
    return None


def check_permissions(
    translated: Mapping[str, Any],
    needs: Mapping[str, Iterable[Need]],
    parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Each resource's role (function ``Role`` / state machine ``RoleArn``) allows each need."""
    resolver = Resolver(translated, parameters)
    problems = []
    for logical_id, wanted in needs.items():
        if logical_id not in translated["Resources"]:
            problems.append(f"{logical_id}: not in the translated template")
            continue
        role = role_of(translated, logical_id)
        if role is None:
            problems.append(f"{logical_id}: no role created by the template")
            continue
        statements, _ = role_statements(translated, role, resolver)
        for need in wanted:
            resource = resolver.sub(need.resource)
            if not allows(statements, need.action, resource):
                why = f" ({need.why})" if need.why else ""
                problems.append(
                    f"{logical_id}: {role} does not allow {need.action} on {resource}{why}"
                )
    return problems


def _wide_resource(resource: str) -> bool:
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return "*" in resource.split("/", 1)[0]
    _, _, service, region, account, rest = parts
    if "*" in region or "*" in account or rest.startswith("*"):
        return True
    # "table/*", "function:*", "stateMachine:*": every resource of a type. (For S3, "bucket/*" is
    # the objects of one bucket, which is narrow.)
    return service != "s3" and bool(re.fullmatch(r"[A-Za-z-]+[/:]\*", rest))


def check_wildcards(
    translated: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> list[str]:
    """No ``*``/``service:*`` action, no ``*`` resource unless its actions have no narrower one."""
    resolver = Resolver(translated, parameters)
    problems = []
    for role, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        statements, managed = role_statements(translated, role, resolver)
        for statement in statements:
            if statement.effect != "Allow":
                continue
            for action in statement.actions:
                if action == "*" or action.endswith(":*"):
                    problems.append(f"{statement.source}: allows every action ({action})")
            scoped = [a for a in statement.actions if a.lower() not in ACTIONS_WITHOUT_RESOURCES]
            for target in statement.resources:
                if _wide_resource(target) and scoped:
                    problems.append(
                        f"{statement.source}: {', '.join(scoped)} on {target}, "
                        "where a narrower resource exists"
                    )
        for arn in managed:
            if arn not in REVIEWED_MANAGED_POLICIES:
                problems.append(f"{role}: managed policy {arn} is not reviewed")
    return problems


# ------------------------------------------------------------------------------------ metrics
@dataclass(frozen=True)
class MetricReference:
    """A metric an alarm or a dashboard widget names: dimension name -> value (None: any)."""

    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str | None], ...]


_SEARCH = re.compile(r"SEARCH\(\s*'\{(?P<schema>[^}]*)\}(?P<terms>[^']*)'")
_TERM = re.compile(r'(?P<key>[A-Za-z_][\w.]*)\s*=\s*"(?P<value>[^"]*)"')


def _search_reference(where: str, expression: str) -> MetricReference | None:
    match = _SEARCH.search(expression)
    if match is None:
        return None
    namespace, *dimension_names = [p.strip() for p in match.group("schema").split(",")]
    terms = {m.group("key"): m.group("value") for m in _TERM.finditer(match.group("terms"))}
    return MetricReference(
        where,
        namespace,
        terms.get("MetricName", ""),
        tuple((d, terms.get(d)) for d in dimension_names),
    )


def metric_references(
    translated: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> list[MetricReference]:
    """Every metric named by an ``AWS::CloudWatch::Alarm`` (``MetricName`` or ``Metrics``) and by
    the metric widgets of every ``AWS::CloudWatch::Dashboard`` (plain entries, with ``"."``
    repeats, and ``SEARCH`` expressions)."""
    resolver = Resolver(translated, parameters)
    found: list[MetricReference] = []
    for logical_id, resource in translated["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            stats = [properties] if "MetricName" in properties else []
            stats += [
                q["MetricStat"]["Metric"]
                for q in properties.get("Metrics", [])
                if "MetricStat" in q
            ]
            for stat in stats:
                found.append(
                    MetricReference(
                        logical_id,
                        str(resolver.value(stat.get("Namespace"))),
                        str(resolver.value(stat.get("MetricName"))),
                        tuple(
                            (str(d["Name"]), str(resolver.value(d["Value"])))
                            for d in stat.get("Dimensions", [])
                        ),
                    )
                )
        elif resource["Type"] == "AWS::CloudWatch::Dashboard":
            body = json.loads(resolver.value(properties["DashboardBody"]))
            for index, widget in enumerate(body.get("widgets", [])):
                where = f"{logical_id} widget {index} ({widget.get('properties', {}).get('title')})"
                previous: list[Any] = []
                for entry in widget.get("properties", {}).get("metrics", []):
                    if entry and isinstance(entry[0], dict):
                        expression = entry[0].get("expression", "")
                        reference = _search_reference(where, expression)
                        if reference is not None:
                            found.append(reference)
                        continue
                    plain = [e for e in entry if not isinstance(e, dict)]
                    plain = [
                        previous[i] if e == "." and i < len(previous) else e
                        for i, e in enumerate(plain)
                    ]
                    previous = plain
                    namespace, name, *pairs = plain
                    found.append(
                        MetricReference(
                            where,
                            str(namespace),
                            str(name),
                            tuple(
                                (str(pairs[i]), str(pairs[i + 1]))
                                for i in range(0, len(pairs) - 1, 2)
                            ),
                        )
                    )
    return found


def check_metric_names(
    translated: Mapping[str, Any],
    catalogue: Sequence[Any],
    aws_metrics: Mapping[str, Mapping[str, Sequence[str]]],
    parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Each metric the alarms and dashboards name exists: in the stack's namespace, as a
    catalogued metric (``mlstack.catalogue.METRICS``) with that dimension set and emitted by the
    function the ``service`` dimension names; in an ``AWS/`` namespace, as a known AWS metric."""
    resolver = Resolver(translated, parameters)
    namespace = f"mlstack/{resolver.ref('AWS::StackName')}"
    problems = []
    references = metric_references(translated, parameters)
    if not references:
        return ["no alarm or dashboard names a metric: the scan is broken"]
    for ref in references:
        names = {d for d, _ in ref.dimensions}
        label = f"{ref.where}: {ref.namespace} {ref.name!r} [{', '.join(sorted(names))}]"
        if ref.namespace == namespace:
            matches = [m for m in catalogue if m.name == ref.name]
            if not matches:
                problems.append(f"{label}: no function emits a metric of that name")
                continue
            service = dict(ref.dimensions).get("service")
            fits = [
                m
                for m in matches
                if any(set(d) == names for d in m.dimensions)
                and (service is None or m.service == service)
            ]
            if not fits:
                emitted = "; ".join(f"{m.service} {list(m.dimensions)}" for m in matches)
                problems.append(f"{label}: emitted only as {emitted}")
        elif ref.namespace in aws_metrics:
            expected = aws_metrics[ref.namespace].get(ref.name)
            if expected is None:
                problems.append(f"{label}: not a catalogued {ref.namespace} metric")
            elif set(expected) != names:
                problems.append(f"{label}: {ref.namespace} publishes it by {list(expected)}")
        else:
            problems.append(f"{label}: unknown namespace (the stack's is {namespace})")
    return problems


# ------------------------------------------------------------------------------------ derived
def _all_states(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for _, scope in scopes(definition):
        yield from scope.get("States", {}).items()


def state_machine_needs(
    translated: Mapping[str, Any], machine: str
) -> tuple[list[Need], list[str]]:
    """What a state machine's role needs, read from its ASL; and what cannot be read from it
    (a resource chosen at run time), for a person to state as a ``Need``."""
    resource = translated["Resources"][machine]
    substitutions = resource["Properties"].get("DefinitionSubstitutions", {})
    definition = state_machines(translated)[machine]

    def sub_text(text: str) -> str:
        return PLACEHOLDER.sub(
            lambda m: (
                inline_substitution(substitutions[m.group(1)])
                if m.group(1) in substitutions
                else m[0]
            ),
            text,
        )

    needs: list[Need] = []
    unresolved: list[str] = []
    for name, state in _all_states(definition):
        task = state.get("Resource", "")
        parameters = state.get("Parameters", {})
        if state.get("Type") == "Task":
            if task.startswith("${"):
                needs.append(Need("lambda:InvokeFunction", sub_text(task), name))
            elif task.startswith("arn:aws:states:::lambda:invoke"):
                needs.append(
                    Need("lambda:InvokeFunction", sub_text(parameters["FunctionName"]), name)
                )
            elif task == "arn:aws:states:::sns:publish":
                needs.append(Need("sns:Publish", sub_text(parameters["TopicArn"]), name))
            else:
                unresolved.append(f"{name}: integration {task} is not modelled")
        reader = state.get("ItemReader")
        if reader:
            bucket = reader.get("Parameters", {}).get("Bucket")
            if reader.get("Resource") == "arn:aws:states:::s3:getObject" and bucket:
                needs.append(
                    Need("s3:GetObject", f"arn:${{AWS::Partition}}:s3:::{sub_text(bucket)}/x", name)
                )
            else:
                unresolved.append(f"{name}: ItemReader {json.dumps(reader, sort_keys=True)}")
        writer = state.get("ResultWriter")
        if writer:
            bucket = writer.get("Parameters", {}).get("Bucket")
            prefix = writer.get("Parameters", {}).get("Prefix", "")
            if bucket:
                target = f"arn:${{AWS::Partition}}:s3:::{sub_text(bucket)}/{prefix}/run/x.json"
                needs.extend(
                    Need(action, target, f"{name} ResultWriter")
                    for action in (
                        "s3:PutObject",
                        "s3:GetObject",
                        "s3:ListMultipartUploadParts",
                        "s3:AbortMultipartUpload",
                    )
                )
            else:
                unresolved.append(f"{name}: ResultWriter {json.dumps(writer, sort_keys=True)}")
        processor = state.get("ItemProcessor", {}).get("ProcessorConfig", {})
        if processor.get("Mode") == "DISTRIBUTED":
            own = "${" + machine + "}"
            executions = (
                "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:"
                "${" + machine + ".Name}/child"
            )
            needs.append(Need("states:StartExecution", own, f"{name} child executions"))
            needs.append(Need("states:DescribeExecution", executions, f"{name} child executions"))
            needs.append(Need("states:StopExecution", executions, f"{name} child executions"))
    return needs, unresolved


BOTO3_ACTIONS: dict[str, tuple[str, ...]] = {
    "get_object": ("s3:GetObject",),
    "head_object": ("s3:GetObject",),
    "put_object": ("s3:PutObject",),
    "upload_fileobj": ("s3:PutObject",),
    "download_fileobj": ("s3:GetObject",),
    "copy_object": ("s3:GetObject", "s3:PutObject"),
    "delete_object": ("s3:DeleteObject",),
    "delete_objects": ("s3:DeleteObject",),
    "list_objects_v2": ("s3:ListBucket",),
    "list_object_versions": ("s3:ListBucketVersions",),
    "get_item": ("dynamodb:GetItem",),
    "put_item": ("dynamodb:PutItem",),
    "update_item": ("dynamodb:UpdateItem",),
    "delete_item": ("dynamodb:DeleteItem",),
    "query": ("dynamodb:Query",),
    "scan": ("dynamodb:Scan",),
    "batch_get_item": ("dynamodb:BatchGetItem",),
    "batch_write_item": ("dynamodb:BatchWriteItem",),
    "transact_write_items": ("dynamodb:ConditionCheckItem",),
    "start_execution": ("states:StartExecution",),
    "describe_execution": ("states:DescribeExecution",),
    "send_task_success": ("states:SendTaskSuccess",),
    "send_task_failure": ("states:SendTaskFailure",),
    "send_task_heartbeat": ("states:SendTaskHeartbeat",),
    "publish": ("sns:Publish",),
    "send_message": ("sqs:SendMessage",),
    "put_metric_data": ("cloudwatch:PutMetricData",),
}


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def _call_actions(call: ast.Call) -> set[str]:
    assert isinstance(call.func, ast.Attribute)
    actions = set(BOTO3_ACTIONS.get(call.func.attr, ()))
    if (
        call.func.attr == "get_paginator"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        actions |= set(BOTO3_ACTIONS.get(call.args[0].value, ()))
    if call.func.attr == "get_object" and any(k.arg in (None, "VersionId") for k in call.keywords):
        actions.add("s3:GetObjectVersion")  # VersionId, or **request that may carry one
    return actions


def registry_actions(registry_source: Path) -> dict[str, set[str]]:
    """Each public ``Registry`` method → the DynamoDB actions it calls, through its helpers."""
    tree = ast.parse(registry_source.read_text())
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Registry":
            for method in node.body:
                if not isinstance(method, ast.FunctionDef):
                    continue
                direct[method.name] = set()
                calls[method.name] = set()
                for call in _calls(method):
                    assert isinstance(call.func, ast.Attribute)
                    owner = call.func.value
                    if isinstance(owner, ast.Name) and owner.id == "self":
                        calls[method.name].add(str(call.func.attr))
                    else:
                        direct[method.name] |= _call_actions(call)
    resolved: dict[str, set[str]] = {}

    def closure(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        actions = set(direct.get(name, set()))
        for callee in calls.get(name, set()) - seen:
            actions |= closure(callee, seen | {name})
        return actions

    for name in direct:
        if not name.startswith("_"):
            resolved[name] = closure(name)
    return resolved


def actions_in_code(sources: Iterable[Path], registry: Mapping[str, set[str]]) -> set[str]:
    """AWS actions the given modules call: boto3 operations, and Registry methods' actions."""
    actions: set[str] = set()
    for source in sources:
        for call in _calls(ast.parse(source.read_text())):
            assert isinstance(call.func, ast.Attribute)
            actions |= _call_actions(call)
            actions |= registry.get(call.func.attr, set())
    return actions


def main() -> int:
    """``python -m mlstack.templatecheck``: run the structural checks on ./template.yaml."""
    from mlstack.localcloud import project_root

    translated = translate_offline(project_root())
    problems = [
        *check_substitutions(translated),
        *check_transitions(translated),
        *check_wildcards(translated),
    ]
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
