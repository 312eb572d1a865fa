"""One error family: every exception class the shipped code defines derives from MlstackError and
carries its HTTP status and its exit code; the names the state machines match are in it."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

from mlstack_core import errors
from mlstack_core.errors import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_RUN_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    MlstackError,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.unit

# Step Functions' own error names, which no class of ours defines.
AWS_ERROR_PREFIXES = ("States.", "Lambda.", "Sandbox.", "ECS.")


def _shipped_packages() -> list[Path]:
    """The core layer's package, each function's package (functions/<step>/mlstack_<step>) and
    each container image's (containers/<image>/mlstack_*)."""
    functions = sorted((ROOT / "functions").glob("*/mlstack_*"))
    images = sorted((ROOT / "containers").glob("*/mlstack_*"))
    return [ROOT / "layers" / "core" / "mlstack_core", *functions, *images]


def _shipped_modules() -> list[ModuleType]:
    modules = []
    for package_dir in _shipped_packages():
        package = importlib.import_module(package_dir.name)
        modules.append(package)
        for found in pkgutil.walk_packages([str(package_dir)], prefix=f"{package_dir.name}."):
            modules.append(importlib.import_module(found.name))
    return modules


def _shipped_exception_classes() -> list[type[BaseException]]:
    """Every exception class defined (not merely imported) in a shipped module."""
    return [
        value
        for module in _shipped_modules()
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]


def test_the_walk_finds_the_errors_of_the_core_and_of_the_functions() -> None:
    names = {cls.__name__ for cls in _shipped_exception_classes()}
    assert {"MlstackError", "PipelineError", "ModelNotFound", "HttpError"} <= names
    assert len(names) > 40, sorted(names)


def test_every_shipped_exception_derives_from_the_one_root() -> None:
    strays = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _shipped_exception_classes()
        if not issubclass(cls, MlstackError)
    ]
    assert not strays, f"exception classes outside the MlstackError family: {strays}"
    roots = [
        cls.__name__
        for cls in _shipped_exception_classes()
        if not any(issubclass(base, MlstackError) for base in cls.__bases__)
    ]
    assert roots == ["MlstackError"]
    assert MlstackError.__bases__ == (Exception,)


def test_every_shipped_exception_has_an_http_status_and_an_exit_code() -> None:
    for cls in _shipped_exception_classes():
        assert issubclass(cls, MlstackError)
        status = cls.http_status
        assert status is None or (isinstance(status, int) and 400 <= status <= 599), cls
        assert cls.exit_code in (EXIT_RUN_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE), cls


def test_the_exception_classes_live_in_errors_py() -> None:
    homes = {cls.__module__ for cls in _shipped_exception_classes()}
    assert homes == {"mlstack_core.errors"}


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("ModelNotFound", 404),
        ("RequestError", 400),
        ("PayloadTooLargeError", 413),
        ("ModelUnavailableError", 503),
        ("HttpError", 500),
        ("ApprovalRefused", 409),
        ("ApprovalForbidden", 403),
        ("ModelLoadError", None),
        ("AwsHttpError", None),
        ("PipelineError", None),
        ("AliasConflict", None),
        ("MissingSetting", None),
    ],
)
def test_the_http_statuses(name: str, status: int | None) -> None:
    assert getattr(errors, name).http_status == status


def test_the_exit_codes() -> None:
    from mlstack.cli.errors import CommandError
    from mlstack.cli.lifecycle import LifecycleError

    # README "Exit codes": one table, a code per kind of ending; 2 is argparse's usage error.
    codes = (EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE)
    assert codes == (0, 1, 2, 3, 4)
    assert errors.ModelNotFound.exit_code == EXIT_REFUSED
    assert errors.VersionNotServed.exit_code == EXIT_REFUSED
    assert errors.AliasConflict.exit_code == EXIT_REFUSED
    assert CommandError.exit_code == EXIT_USAGE
    assert LifecycleError.exit_code == EXIT_REFUSED
    assert issubclass(CommandError, MlstackError)
    assert issubclass(LifecycleError, MlstackError)


def test_every_error_name_a_state_machine_matches_is_in_the_family() -> None:
    names: set[str] = set()

    def collect(node: object) -> None:
        if isinstance(node, dict):
            names.update(node.get("ErrorEquals", []))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    for path in sorted((ROOT / "statemachine").glob("*.asl.json")):
        collect(json.loads(path.read_text()))
    ours = {name for name in names if not name.startswith(AWS_ERROR_PREFIXES)}
    assert ours, "the state machines match none of the stack's errors by name"
    for name in ours:
        assert issubclass(getattr(errors, name), MlstackError), name


def test_a_pipeline_error_message_is_cut_for_the_run_state() -> None:
    message = str(errors.SpecError("x" * 10_000))
    assert len(message) <= errors.MAX_MESSAGE_CHARS
    assert message.endswith("(10,000 characters in all)")
