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


def _workflow() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return workflow


def _commands(job: dict[str, Any]) -> list[str]:
    return [" ".join(step["run"].split()) for step in job["steps"] if "run" in step]


def test_the_workflow_tests_what_ci_tests_and_deploys_without_running_project_code() -> None:
    jobs = _workflow()["jobs"]
    assert _ci_make_targets() == {"test", "build"}
    tested = _commands(jobs["test-and-build"])
    assert tested[:2] == ["make build", "make test"]  # .ci/run's order
    deployed = _commands(jobs["deploy"])
    # No make, no sam build, nothing from the checkout executed: the artifact, a pinned SAM CLI
    # and samconfig.toml.
    assert not any(c.startswith("make") or "sam build" in c for c in deployed), deployed
    assert deployed[-1].startswith("sam deploy --config-env prod ")
    assert "--template-file" not in deployed[-1]  # the built template, .aws-sam/build
    (install,) = [c for c in deployed if "pip install" in c]
    assert "--require-hashes" in install
    assert "-r .github/sam-cli.txt" in install


def test_the_deploy_job_deploys_exactly_the_tested_build() -> None:
    jobs = _workflow()["jobs"]
    build, deploy = jobs["test-and-build"], jobs["deploy"]
    (upload,) = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-")]
    (download,) = [s for s in deploy["steps"] if s.get("uses", "").startswith("actions/download")]
    assert download["with"]["name"] == upload["with"]["name"]
    package = next(s for s in build["steps"] if s.get("id") == "package")
    assert ".aws-sam" in package["run"]
    assert upload["with"]["path"] in package["run"]
    assert build["outputs"]["digest"] == "${{ steps.package.outputs.digest }}"
    (check,) = [c for c in _commands(deploy) if "sha256sum --check" in c]
    assert "${{ needs.test-and-build.outputs.digest }}" in check
    names = [s.get("uses") or s.get("run") for s in deploy["steps"]]
    assert names.index(download["uses"]) < names.index(next(s for s in names if "sha256sum" in s))


def test_the_deploy_job_pushes_the_tested_training_image_and_deploys_with_its_tag() -> None:
    """The image is built where no credentials are, travels in the checked archive, and the last
    deploy names the tag the deploy job pushed (the commit's SHA)."""
    jobs = _workflow()["jobs"]
    tested, deployed = _commands(jobs["test-and-build"]), _commands(jobs["deploy"])
    (build,) = [c for c in tested if c.startswith("docker build")]
    assert "-f containers/training/Dockerfile" in build
    assert build.split("&&")[0].rstrip().endswith(" .")  # context: the repository root
    package = next(s for s in jobs["test-and-build"]["steps"] if s.get("id") == "package")
    assert "training-image.tar" in package["run"]
    assert not any("docker build" in c for c in deployed)
    (push,) = [c for c in deployed if "docker push" in c]
    assert "docker load -i .aws-sam/training-image.tar" in push
    assert push.endswith('docker push "$URI:${{ github.sha }}"')
    assert deployed[-1].endswith('TrainingImageTag=${{ github.sha }}"')
    assert "TrainingImageTag" in load_template(ROOT / "template.yaml")["Parameters"]


def test_every_action_is_pinned_to_a_commit() -> None:
    uses = [
        step["uses"]
        for job in _workflow()["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    ]
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def test_only_the_deploy_job_can_request_cloud_credentials() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # type: ignore[index]  # PyYAML reads the key `on` as True
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        if name != "deploy":
            assert job.get("permissions") == {"contents": "read"}, name
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test-and-build"
    assert "refs/heads/main" in deploy["if"]
    assert "vars.MLSTACK_DEPLOY_ROLE_ARN" in deploy["if"]  # off until a user enables it
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    credentials = next(
        s for s in deploy["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws")
    )
    assert credentials["with"]["role-to-assume"] == "${{ vars.MLSTACK_DEPLOY_ROLE_ARN }}"


def _locked_requirements() -> list[Path]:
    """Every requirements file sam build installs: each layer's (BuildMethod: makefile, through
    build_layer.sh) and each function's (SAM's pip builder)."""
    template = load_template(ROOT / "template.yaml")
    found = []
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        uri = properties.get("ContentUri") or properties.get("CodeUri")
        if isinstance(uri, str) and (ROOT / uri / "requirements.in").exists():
            found.append(ROOT / uri / "requirements.txt")
    return found


def _pins(locked: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a hash-locked requirements file."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, int]] = {}
    entries = re.split(r"\n(?=[A-Za-z])", locked.read_text())
    for entry in entries:
        requirement = re.match(r"([A-Za-z0-9_.\[\]-]+)==([^\s;\\]+)", entry)
        if requirement is None:
            assert entry.lstrip().startswith("#") or not entry.strip(), entry
            continue
        name = canonicalize_name(requirement.group(1).split("[")[0])
        pins[name] = (requirement.group(2), len(re.findall(r"--hash=sha256:[0-9a-f]{64}", entry)))
    return pins


def test_layers_and_functions_install_only_hash_locked_files() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    assert "--require-hashes" in (ROOT / "layers/build_layer.sh").read_text()
    locked_files = _locked_requirements()
    assert {p.parent.name for p in locked_files} >= {"core", "serving", "training", "preprocess"}
    for locked in [*locked_files, ROOT / ".github/sam-cli.txt"]:
        pins = _pins(locked)
        assert pins, locked
        for name, (_, hashes) in pins.items():
            assert hashes >= 1, (locked, name)
        # The lock satisfies what requirements.in asks for: re-run `make lock` after editing it.
        wanted = locked.with_suffix(".in").read_text().splitlines()
        for line in wanted:
            if line.strip() and not line.lstrip().startswith("#"):
                requirement = Requirement(line.split("#")[0].strip())
                version, _ = pins[canonicalize_name(requirement.name)]
                assert requirement.specifier.contains(version, prereleases=True), (locked, line)


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
    "ECS": "ECS",
    "ECR": "ECR",
    "EC2": "EC2",
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
