"""Rewrites of the translated template (the stack moto's CloudFormation is given) where moto
cannot create it as written, and what moto's CloudFormation leaves out, applied afterwards.

Each is one named function, run by ``cloud.deploy``; the template and the checks keep the real
definitions. None of them touches moto itself (``moto_patches`` does):

- ``substitute_definitions``: moto ignores ``DefinitionSubstitutions``; they become an
  ``Fn::Sub``.
- ``take_item_batchers``: moto's parser refuses a Distributed Map's ItemBatcher (and Express child
  executions); it is taken out of the definitions moto gets, into ``ITEM_BATCHERS``, and
  ``moto_patches.batched_map_items`` applies it at run time.
- ``serve_api_locally``: moto's RestApi cannot be deployed from SAM's OpenAPI body; the API is
  served by ``api.LocalApi`` and ``ApiUrl`` points there.
- ``name_image_repositories``: moto names an ECR repository without ``RepositoryName`` after the
  stack and logical id as they are spelled, which ECR refuses (upper case); it gets the lower-case
  name CloudFormation generates for one.
- ``apply_bucket_configuration``: moto's CloudFormation does not apply a bucket's versioning or
  NotificationConfiguration, so both are applied after the stack is created.
"""

from __future__ import annotations

import json
from typing import Any

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


def name_image_repositories(translated: dict[str, Any], stack_name: str) -> None:
    """``RepositoryName`` for each ECR repository that has none, lower case as ECR requires (and
    CloudFormation's generated name is)."""
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::ECR::Repository":
            continue
        properties = resource.setdefault("Properties", {})
        properties.setdefault("RepositoryName", f"{stack_name}-{logical_id}".lower())


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
