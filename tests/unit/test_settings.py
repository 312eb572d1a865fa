"""Settings: each function checks the ones it needs at its cold start, and flags read one way."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest

from mlstack.sam import load_template
from mlstack_core.settings import (
    FALSE_WORDS,
    TRUE_WORDS,
    ApprovalSettings,
    FunctionSettings,
    GuardSettings,
    MissingSetting,
    PowertoolsSettings,
    ServingSettings,
    flag,
    forget,
)
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import load_handler

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(
    path.name for path in (ROOT / "functions").iterdir() if (path / f"mlstack_{path.name}").is_dir()
)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every variable a function is given, set; the test removes the one it checks."""
    forget()
    for name in (
        "DATA_BUCKET",
        "MODEL_BUCKET",
        "REGISTRY_TABLE",
        "IDEMPOTENCY_TABLE",
        "APPROVALS_TABLE",
        "APPROVAL_ANSWERS_TABLE",
        "RUN_LOCK_TABLE",
        "ALERTS_TOPIC_ARN",
        "STATE_MACHINE_ARN",
        "SCORING_STATE_MACHINE_ARN",
    ):
        monkeypatch.setenv(name, f"set-{name.lower()}")
    yield monkeypatch
    forget()


def declared(function: str) -> FunctionSettings:
    settings: FunctionSettings = importlib.import_module(f"mlstack_{function}.app").SETTINGS
    return settings


@pytest.mark.parametrize(
    ("function", "variable"),
    [
        ("trigger", "SCORING_STATE_MACHINE_ARN"),
        ("trigger", "ALERTS_TOPIC_ARN"),
        ("runlock", "ALERTS_TOPIC_ARN"),
        ("runlock", "RUN_LOCK_TABLE"),
        ("monitor", "STATE_MACHINE_ARN"),
        ("register", "IDEMPOTENCY_TABLE"),
        ("approval", "APPROVALS_TABLE"),
        ("approval", "APPROVAL_ANSWERS_TABLE"),
        ("register", "APPROVAL_ANSWERS_TABLE"),
        ("predict", "MODEL_BUCKET"),
    ],
)
def test_a_missing_required_setting_fails_the_first_invocation_by_name(
    environment: pytest.MonkeyPatch, function: str, variable: str
) -> None:
    handler = load_handler(function)  # importing reads nothing: tests set the environment later
    environment.delenv(variable)
    with pytest.raises(MissingSetting, match=f"{variable} is not set for the {function} function"):
        handler({}, FakeLambdaContext())


def test_a_setting_only_other_functions_need_is_not_required(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.delenv("ALERTS_TOPIC_ARN")
    environment.delenv("STATE_MACHINE_ARN")
    environment.delenv("SCORING_STATE_MACHINE_ARN")
    for function in ("train", "evaluate", "score", "predict", "preprocess"):
        declared(function).check()


def test_settings_are_checked_again_in_a_new_environment(environment: pytest.MonkeyPatch) -> None:
    needs = declared("runlock")
    needs.check()
    environment.delenv("ALERTS_TOPIC_ARN")
    needs.check()  # once per environment: a warm container does not read it again
    forget()
    with pytest.raises(MissingSetting, match="ALERTS_TOPIC_ARN"):
        needs.check()


def test_every_function_declares_its_settings_and_the_template_gives_them() -> None:
    template = load_template(ROOT / "template.yaml")
    given_to_all = set(template["Globals"]["Function"]["Environment"]["Variables"])
    functions = {
        str(resource["Properties"]["CodeUri"]).strip("/").split("/")[-1]: resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert sorted(functions) == FUNCTIONS
    for function, properties in functions.items():
        own = set((properties.get("Environment") or {}).get("Variables") or {})
        needs = declared(function)
        assert needs.function == function
        assert set(needs.required) <= given_to_all | own, function
        assert {"MODEL_BUCKET", "REGISTRY_TABLE"} <= given_to_all  # StackSettings requires them


@pytest.mark.parametrize("word", sorted(TRUE_WORDS | FALSE_WORDS))
def test_every_flag_reads_one_way(monkeypatch: pytest.MonkeyPatch, word: str) -> None:
    expected = word in TRUE_WORDS
    for spelled in (word, word.upper(), f" {word} "):
        for name in (
            "AUTO_PROMOTE_INCOMPARABLE",
            "APPROVER_MUST_DIFFER",
            "DRIFT_SAMPLING",
            "POWERTOOLS_METRICS_DISABLED",
        ):
            monkeypatch.setenv(name, spelled)
        monkeypatch.setenv("APPROVALS_TABLE", "approvals")
        assert flag("AUTO_PROMOTE_INCOMPARABLE", not expected) is expected
        assert GuardSettings.from_env().auto_promote_incomparable is expected
        assert ApprovalSettings.from_env().distinct_approver is expected
        assert ServingSettings.from_env().drift_sampling is expected
        assert PowertoolsSettings.from_env().metrics_disabled is expected


def test_an_unset_flag_is_its_default_and_a_word_of_neither_kind_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFT_SAMPLING", raising=False)
    monkeypatch.setenv("AUTO_PROMOTE_INCOMPARABLE", "")
    assert ServingSettings.from_env().drift_sampling is True
    assert GuardSettings.from_env().auto_promote_incomparable is False
    monkeypatch.setenv("AUTO_PROMOTE_INCOMPARABLE", "maybe")
    with pytest.raises(ValueError, match="AUTO_PROMOTE_INCOMPARABLE must be true or false"):
        GuardSettings.from_env()


def test_the_template_passes_flags_as_true_or_false() -> None:
    template = load_template(ROOT / "template.yaml")
    for name in ("AutoPromoteIncomparable", "ApproverMustDiffer"):
        assert set(template["Parameters"][name]["AllowedValues"]) <= TRUE_WORDS | FALSE_WORDS


def test_only_the_settings_module_reads_the_environment_in_shipped_code() -> None:
    readers = []
    for path in [*(ROOT / "layers").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")) or (
                isinstance(node, ast.Name) and node.id in ("environ", "getenv")
            ):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []
