"""Checks of the state machine definitions in the translated template.

- ``check_substitutions``: every ``${Placeholder}`` in a definition has a
  ``DefinitionSubstitutions`` entry, every entry is used, and every entry names a real resource.
- ``check_transitions``: every ``StartAt``/``Next``/``Default``/``Catch`` target exists in its
  scope (Map ItemProcessors and Parallel branches included), every non-terminal state goes
  somewhere, and every state is reachable.
- ``state_machine_needs``: what a state machine's role needs, derived from its ASL (Lambda tasks,
  SNS publishes, ECS tasks run to completion, Distributed Map reads, writes and child executions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from mlstack.checks.template.iam import Need
from mlstack.checks.template.translated import definition_text, state_machines
from mlstack.sam import inline_substitution

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
            elif task == "arn:aws:states:::ecs:runTask.sync":
                task_needs, task_unresolved = _run_task_needs(
                    translated["Resources"], substitutions, name, parameters
                )
                needs.extend(task_needs)
                unresolved.extend(task_unresolved)
            else:
                unresolved.append(f"{name}: integration {task} is not modelled")
        reader = state.get("ItemReader")
        if reader:
            bucket = reader.get("Parameters", {}).get("Bucket")
            if reader.get("Resource") == "arn:aws:states:::s3:getObject" and bucket:
                needs.append(
                    Need("s3:GetObject", f"arn:${{AWS::Partition}}:s3:::{sub_text(bucket)}/*", name)
                )
            else:
                unresolved.append(f"{name}: ItemReader {json.dumps(reader, sort_keys=True)}")
        writer = state.get("ResultWriter")
        if writer:
            bucket = writer.get("Parameters", {}).get("Bucket")
            prefix = writer.get("Parameters", {}).get("Prefix", "")
            if bucket:
                target = f"arn:${{AWS::Partition}}:s3:::{sub_text(bucket)}/{prefix}/*"
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
                "${" + machine + ".Name}/*"
            )
            needs.append(Need("states:StartExecution", own, f"{name} child executions"))
            needs.append(Need("states:DescribeExecution", executions, f"{name} child executions"))
            needs.append(Need("states:StopExecution", executions, f"{name} child executions"))
    return needs, unresolved


# The rule Step Functions creates and reads to learn that an ECS task it runs (.sync) stopped.
ECS_TASK_EVENTS_RULE = (
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
    "StepFunctionsGetEventsForECSTaskRule"
)


def _substituted_resource(
    resources: Mapping[str, Any], substitutions: Mapping[str, Any], text: Any, kind: str
) -> str | None:
    """The logical id of the ``kind`` resource a ``${Placeholder}`` stands for, or None (a
    literal, a JSONPath, or a substitution that names something else)."""
    match = PLACEHOLDER.fullmatch(text) if isinstance(text, str) else None
    value = substitutions.get(match.group(1)) if match else None
    if isinstance(value, dict) and "Ref" in value:
        target = value["Ref"]
    elif isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"][0]
    else:
        return None
    return str(target) if resources.get(target, {}).get("Type") == kind else None


def _run_task_needs(
    resources: Mapping[str, Any],
    substitutions: Mapping[str, Any],
    name: str,
    parameters: Mapping[str, Any],
) -> tuple[list[Need], list[str]]:
    """``ecs:runTask.sync``: run the task definition, watch and stop the cluster's tasks through
    Step Functions' managed rule, and pass the task's roles (AWS's documented policy for the
    integration, with the task definition and cluster of the template)."""
    needs: list[Need] = []
    unresolved: list[str] = []
    definition = _substituted_resource(
        resources, substitutions, parameters.get("TaskDefinition"), "AWS::ECS::TaskDefinition"
    )
    if definition is None:
        unresolved.append(f"{name}: TaskDefinition {json.dumps(parameters.get('TaskDefinition'))}")
    else:
        needs.append(Need("ecs:RunTask", "${" + definition + "}", name))
        properties = resources[definition].get("Properties", {})
        for key in ("TaskRoleArn", "ExecutionRoleArn"):
            role = properties.get(key)
            if isinstance(role, dict) and "Fn::GetAtt" in role:
                needs.append(Need("iam:PassRole", inline_substitution(role), f"{name} {key}"))
            elif role is not None:
                unresolved.append(f"{name}: {definition}.{key} {json.dumps(role)}")
    cluster = _substituted_resource(
        resources, substitutions, parameters.get("Cluster"), "AWS::ECS::Cluster"
    )
    if cluster is None:
        unresolved.append(f"{name}: Cluster {json.dumps(parameters.get('Cluster'))}")
    else:
        tasks = (
            "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${" + cluster + "}/*"
        )
        needs.append(Need("ecs:StopTask", tasks, f"{name} (.sync: stopped on timeout or abort)"))
        needs.append(Need("ecs:DescribeTasks", tasks, f"{name} (.sync: its outcome)"))
    needs.extend(
        Need(action, ECS_TASK_EVENTS_RULE, f"{name} (.sync: the task's stop event)")
        for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule")
    )
    return needs, unresolved
