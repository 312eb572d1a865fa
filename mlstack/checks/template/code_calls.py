"""The AWS actions a function's code calls, read from its source (boto3 client and resource
calls, and the registry's), so a table of role needs can be checked against the code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

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
    # IAM authorises each item of a transaction by its own action; the registry's transactions
    # put and update items (no ConditionCheck or Delete items).
    "transact_write_items": ("dynamodb:PutItem", "dynamodb:UpdateItem"),
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
