"""The test suite's own layout: test modules share code through tests/helpers only.

A helper imported from another test module or from a conftest.py ties the two together (pytest
may collect the same module twice, and one test file's edit breaks another); fixtures belong in
conftest.py, where pytest finds them without an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_test_modules_import_shared_code_from_tests_helpers_only() -> None:
    wrong = sorted(
        f"{path.relative_to(TESTS.parent).as_posix()}: {module}"
        for path in TESTS.rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith(".")
        or (module.startswith("tests.") and not module.startswith("tests.helpers"))
    )
    assert not wrong, (
        "these modules import from a test module or a conftest.py; move what they share into "
        "tests/helpers (fixtures into a conftest.py):\n" + "\n".join(f"  {w}" for w in wrong)
    )
