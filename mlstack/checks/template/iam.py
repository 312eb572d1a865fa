"""Checks of the roles in the translated template, by evaluating their policy statements.

- ``check_permissions``: each role grants the actions its function or state machine needs, on
  the resources it needs them on (``Need``).
- ``check_grants_are_needed``: the other way round: each action a role grants, on each resource,
  is one of its needs, on a resource the need's pattern contains. Together with a need table
  checked against the code's calls, a role grants exactly what its code uses.
- ``check_wildcards``: no statement allows ``*`` or ``service:*`` actions, or a ``*`` resource
  where the actions support a narrower one; managed policies only from a reviewed list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlstack.checks.template.translated import Resolver

# Actions that have no resource-level permissions: "*" is the narrowest resource there is.
ACTIONS_WITHOUT_RESOURCES = frozenset(
    {
        "xray:puttracesegments",
        "xray:puttelemetryrecords",
        "xray:getsamplingrules",
        "xray:getsamplingtargets",
        "xray:getsamplingstatisticsummaries",
        "cloudwatch:putmetricdata",
        # The training tasks' registry login (their execution role); pulling is per repository.
        "ecr:getauthorizationtoken",
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
    "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs": (
        "the role API Gateway itself assumes to write the stage's access log (account setting)"
    ),
}


# ------------------------------------------------------------------------------------ needs
@dataclass(frozen=True)
class Need:
    """``action`` on ``resource``, an ``Fn::Sub`` text over the template (``${Bucket.Arn}/key``);
    ``*`` in it stands for any text, as in IAM (``${Bucket.Arn}/runs/*``)."""

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
    """IAM's answer for one request: an Allow matches and no Deny does. Conditions are not
    modelled: the template's only ones narrow an ``s3:ListBucket`` further, by prefix."""

    def matches(statement: Statement) -> bool:
        if "NotAction" in statement.source:
            return False
        action_ok = any(_glob(a, ignore_case=True).match(action) for a in statement.actions)
        return action_ok and any(_glob(r).match(resource) for r in statement.resources)

    if any(s.effect == "Deny" and matches(s) for s in statements):
        return False
    return any(s.effect == "Allow" and matches(s) for s in statements)


# The property naming the role a resource's code runs as, by type; a role is its own.
ROLE_PROPERTIES = {
    "AWS::Lambda::Function": "Role",
    "AWS::StepFunctions::StateMachine": "RoleArn",
    "AWS::ECS::TaskDefinition": "TaskRoleArn",
}


def role_of(translated: Mapping[str, Any], logical_id: str) -> str | None:
    """The role a function, state machine or ECS task (its task role) runs as; a role itself."""
    resource = translated["Resources"][logical_id]
    if resource["Type"] == "AWS::IAM::Role":
        return logical_id
    properties = resource["Properties"]
    role = properties.get(ROLE_PROPERTIES.get(resource["Type"], "Role"))
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        return str(role["Fn::GetAtt"][0])
    return None


def check_permissions(
    translated: Mapping[str, Any],
    needs: Mapping[str, Iterable[Need]],
    parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Each resource's role (function ``Role``, state machine ``RoleArn``, ECS task definition
    ``TaskRoleArn``, or the role itself) allows each need."""
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


def check_grants_are_needed(
    translated: Mapping[str, Any],
    needs: Mapping[str, Iterable[Need]],
    parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Each (action, resource) a role's statements allow is one of its needs: the same action,
    on a resource the need's pattern contains. Anything else is more than the code uses, for
    example an ``S3CrudPolicy``'s ``s3:PutLifecycleConfiguration`` or ``s3:PutObject`` on the
    whole bucket where the code writes one prefix."""
    resolver = Resolver(translated, parameters)
    problems = []
    for logical_id, wanted in needs.items():
        role = role_of(translated, logical_id) if logical_id in translated["Resources"] else None
        if role is None:
            continue  # check_permissions reports it
        patterns: dict[str, list[re.Pattern[str]]] = {}
        for need in wanted:
            patterns.setdefault(need.action.lower(), []).append(_glob(resolver.sub(need.resource)))
        statements, _ = role_statements(translated, role, resolver)
        for statement in statements:
            if statement.effect != "Allow":
                continue
            for action in statement.actions:
                for resource in statement.resources:
                    covering = patterns.get(action.lower(), [])
                    if not any(pattern.match(resource) for pattern in covering):
                        problems.append(
                            f"{logical_id}: {statement.source} grants {action} on {resource}, "
                            "which its code does not need"
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
