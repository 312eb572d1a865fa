"""template.yaml as CloudFormation will see it, offline: packaged, SAM-translated, and its
intrinsic functions resolved (``Resolver``) far enough for the checks to read names and ARNs.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARTITION = "aws"


REGION = "us-east-1"


ACCOUNT = "123456789012"


STACK = "mlstack"


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
    from mlstack.sam import load_template, translate

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
        if kind == "AWS::ECS::TaskDefinition":  # the ARN of its current revision
            return (
                f"arn:{PARTITION}:ecs:{REGION}:{ACCOUNT}:task-definition/{self.name(logical_id)}:1"
            )
        return self.name(logical_id)

    def attribute(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.name(logical_id)
        prefix = f"arn:{PARTITION}"
        if attribute in ("Name", "TopicName", "QueueName"):
            return name
        if kind == "AWS::ECR::Repository" and attribute == "RepositoryUri":
            return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}"
        if kind == "AWS::EC2::SecurityGroup" and attribute == "GroupId":
            return f"sg-{name}"
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
            "AWS::ECS::Cluster": f"{prefix}:ecs:{REGION}:{ACCOUNT}:cluster/{name}",
            "AWS::ECR::Repository": f"{prefix}:ecr:{REGION}:{ACCOUNT}:repository/{name}",
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
