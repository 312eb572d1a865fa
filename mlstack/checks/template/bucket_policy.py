"""Checks of the model bucket's resource policy, by evaluating its Deny statements for each role.

- ``check_protected_writes``: under each prefix of ``ONLY_WRITER`` (``models/``, ``map-runs/``),
  every role of the stack but the one named is denied ``s3:PutObject``; that one is not.
- ``check_configuration_denied``: every role of the stack is denied each bucket configuration
  action (``CONFIGURATION_ACTIONS``).

Only the conditions the template uses are modelled (``ArnEquals``/``ArnNotEquals`` on
``aws:PrincipalArn``, ``Bool`` on ``aws:SecureTransport``); a statement with any other condition
counts as not applying, so the check cannot pass on a condition it does not understand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mlstack.checks.template.translated import Resolver
from mlstack_core.storage_keys import MAP_RUNS_PREFIX, MODELS_PREFIX

# What no role of the stack may do to the model bucket: change how it keeps, expires, locks or
# shares data, or remove object versions.
CONFIGURATION_ACTIONS = (
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutReplicationConfiguration",
    "s3:PutBucketPublicAccessBlock",
    "s3:DeleteBucket",
    "s3:BypassGovernanceRetention",
    "s3:DeleteObjectVersion",
)
# Prefixes of the model bucket whose content a later step trusts, and the one role that writes each.
ONLY_WRITER = {MODELS_PREFIX: "RegisterFunctionRole", MAP_RUNS_PREFIX: "TrainingStateMachineRole"}


def _matches(pattern: str, text: str) -> bool:
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, text) is not None


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _condition_holds(condition: Mapping[str, Any], principal: str) -> bool | None:
    """Whether the condition holds for a TLS request by ``principal``; None if not modelled."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if operator in ("ArnEquals", "ArnNotEquals") and key == "aws:PrincipalArn":
                listed = any(_matches(p, principal) for p in _listed(expected))
                if listed != (operator == "ArnEquals"):
                    return False
            elif operator == "Bool" and key == "aws:SecureTransport":
                if str(expected).lower() != "true":
                    return False
            else:
                return None
    return True


def _bucket_policy(translated: Mapping[str, Any], bucket: str, resolver: Resolver) -> list[Any]:
    for resource in translated["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::S3::BucketPolicy" and properties["Bucket"] == {"Ref": bucket}:
            statements: list[Any] = resolver.value(properties["PolicyDocument"])["Statement"]
            return statements
    return []


def denied(
    translated: Mapping[str, Any], bucket: str, principal: str, action: str, resource: str
) -> bool:
    """Whether the bucket's policy denies ``action`` on ``resource`` to ``principal`` (an ARN)."""
    resolver = Resolver(translated)
    for statement in _bucket_policy(translated, bucket, resolver):
        if statement.get("Effect") != "Deny" or statement.get("Principal") not in (
            "*",
            {"AWS": "*"},
        ):
            continue
        if not any(_matches(a.lower(), action.lower()) for a in _listed(statement["Action"])):
            continue
        if not any(_matches(r, resource) for r in _listed(statement["Resource"])):
            continue
        if _condition_holds(statement.get("Condition", {}), principal):
            return True
    return False


# The services whose roles run the stack's code (functions, the state machine, ECS tasks).
WORKLOAD_SERVICES = ("lambda.amazonaws.com", "states.amazonaws.com", "ecs-tasks.amazonaws.com")


def stack_roles(translated: Mapping[str, Any]) -> list[str]:
    """The roles the stack's code runs as (API Gateway's logging role runs none)."""
    roles = []
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        trust = json.dumps(resource["Properties"].get("AssumeRolePolicyDocument", {}))
        if any(service in trust for service in WORKLOAD_SERVICES):
            roles.append(logical_id)
    return sorted(roles)


def check_protected_writes(translated: Mapping[str, Any], bucket: str = "ModelBucket") -> list[str]:
    resolver = Resolver(translated)
    problems = []
    for prefix, writer in ONLY_WRITER.items():
        key = f"{resolver.attribute(bucket, 'Arn')}/{prefix}m/1/x"
        for role in stack_roles(translated):
            arn = resolver.attribute(role, "Arn")
            is_denied = denied(translated, bucket, arn, "s3:PutObject", key)
            if role == writer and is_denied:
                problems.append(f"{bucket}'s policy denies {role} its writes under {prefix}")
            elif role != writer and not is_denied:
                problems.append(f"{bucket}'s policy lets {role} write under {prefix}")
    return problems


def check_configuration_denied(
    translated: Mapping[str, Any], bucket: str = "ModelBucket"
) -> list[str]:
    resolver = Resolver(translated)
    arn = resolver.attribute(bucket, "Arn")
    problems = []
    for role in stack_roles(translated):
        principal = resolver.attribute(role, "Arn")
        for action in CONFIGURATION_ACTIONS:
            target = f"{arn}/k" if action in ("s3:DeleteObjectVersion",) else arn
            if not denied(translated, bucket, principal, action, target):
                problems.append(f"{bucket}'s policy does not deny {action} to {role}")
    return problems
