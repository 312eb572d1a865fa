"""samconfig.toml and the GitHub workflow agree with the template and with the project's CI."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack.sam import load_template

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github/workflows/ci.yml"


def _samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


def _overrides(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(text))


def test_samconfig_has_dev_and_prod_as_separate_stacks() -> None:
    config = _samconfig()
    names = {
        env: config[env]["global"]["parameters"]["stack_name"] for env in config if env != "version"
    }
    assert {"default", "dev", "prod"} <= set(names)
    assert len(set(names.values())) == len(names), names


@pytest.mark.parametrize("environment", ["default", "dev", "prod"])
def test_samconfig_parameters_are_valid_for_the_template(environment: str) -> None:
    parameters = load_template(ROOT / "template.yaml")["Parameters"]
    deploy = _samconfig()[environment]["deploy"]["parameters"]
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["resolve_s3"] is True
    for name, value in _overrides(deploy["parameter_overrides"]).items():
        assert name in parameters, f"{environment}: {name} is not a template parameter"
        spec = parameters[name]
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], (environment, name, value)
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (environment, name, value)
        if "MinValue" in spec:
            assert float(value) >= spec["MinValue"], (environment, name, value)


def _ci_make_targets() -> set[str]:
    return set(re.findall(r"^make (\S+)$", (ROOT / ".ci/run").read_text(), re.MULTILINE))


def test_workflow_runs_only_the_make_targets_ci_runs_and_sam_deploy() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert _ci_make_targets() == {"test", "build"}
    commands = [
        step["run"].strip()
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "run" in step
    ]
    for command in commands:
        make = re.fullmatch(r"make (\S+)", command)
        if make:
            assert make.group(1) in _ci_make_targets(), command
        else:
            assert command.startswith(".venv-sam/bin/sam deploy --config-env prod "), command
    assert "make test" in commands
    assert "make build" in commands


def test_workflow_deploys_only_from_main_with_oidc() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # PyYAML reads the key `on` as True
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test-and-build"
    assert "refs/heads/main" in deploy["if"]
    assert "vars.MLSTACK_DEPLOY_ROLE_ARN" in deploy["if"]  # off until a user enables it
    assert deploy["permissions"]["id-token"] == "write"
    credentials = next(
        s for s in deploy["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws")
    )
    assert credentials["with"]["role-to-assume"] == "${{ vars.MLSTACK_DEPLOY_ROLE_ARN }}"
    assert workflow["permissions"] == {"contents": "read"}


README = ROOT / "README.md"


def _readme_section(heading: str) -> str:
    text = README.read_text()
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_the_readme_parameter_table_lists_every_parameter_with_its_default() -> None:
    parameters = load_template(ROOT / "template.yaml")["Parameters"]
    rows = [
        line for line in _readme_section("### First deploy").splitlines() if line.startswith("| `")
    ]
    for name, declared in parameters.items():
        row = next((r for r in rows if f"`{name}`" in r), None)
        assert row is not None, f"README's parameter table lacks {name}"
        default = str(declared.get("Default", ""))
        cells = row.split("|")
        assert default in cells[2] or (default == "" and "empty" in cells[2]), (name, row)


def test_samconfig_names_every_parameter() -> None:
    comment = "\n".join(
        line for line in (ROOT / "samconfig.toml").read_text().splitlines() if line.startswith("#")
    )
    for name in load_template(ROOT / "template.yaml")["Parameters"]:
        assert name in comment, f"samconfig.toml's parameter list lacks {name}"


# The README's words for each AWS service whose resources the translated template creates.
SERVICE_WORDS = {
    "Lambda": "Lambda",
    "StepFunctions": "Step Functions",
    "S3": "S3",
    "DynamoDB": "DynamoDB",
    "SNS": "SNS",
    "SQS": "SQS",
    "Events": "EventBridge",
    "Logs": "Logs",
    "ApiGateway": "API Gateway",
    "KMS": "KMS",
    "CloudWatch": "CloudWatch",
    "CloudTrail": "CloudTrail",
    "IAM": "IAM role management",
}


def test_the_deploy_role_permissions_name_every_service_the_stack_uses() -> None:
    from mlstack.checks.template.translated import translate_offline

    translated = translate_offline(ROOT)
    services = {resource["Type"].split("::")[1] for resource in translated["Resources"].values()}
    section = _readme_section("### CI/CD")
    for service in services:
        assert service in SERVICE_WORDS, f"a new service in the template: {service}"
        assert SERVICE_WORDS[service] in section, f"the deploy role's list lacks {service}"


def test_the_readme_uses_the_region_variable_it_tells_users_to_set() -> None:
    text = README.read_text()
    assert "AWS_DEFAULT_REGION" in _readme_section("### First deploy")
    assert "$AWS_REGION" not in text
