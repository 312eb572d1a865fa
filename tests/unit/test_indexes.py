"""The lists kept by hand agree with the tree: the module map in docs/internals.md, the test files
the code and docs cite, the first-party packages ruff's isort knows, the function folders on the
test and type-check paths, the packages setuptools installs and the folders the Makefile
type-checks.

Each failure names the entries missing from the list or naming nothing, so a rename or a new
module shows up here with what to write where.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INTERNALS = ROOT / "docs" / "internals.md"
# Folders that are not the project's own files: environments, caches, build output.
NOT_THE_PROJECT = {".git", ".aws-sam", "build", "node_modules", "__pycache__", ".hypothesis"}


@cache
def _all_project_files() -> list[Path]:
    """Every file of the project; pruned while walking, as a virtual environment may live inside."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [
            name
            for name in subfolders
            if name not in NOT_THE_PROJECT
            and not name.startswith((".venv", ".mypy", ".ruff", ".pytest"))
        ]
        found += [Path(folder) / name for name in files]
    return sorted(found)


def _project_files(pattern: str) -> list[Path]:
    return [path for path in _all_project_files() if fnmatch.fnmatch(path.name, pattern)]


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _function_folders() -> list[Path]:
    return sorted(p.parent.parent for p in (ROOT / "functions").glob("*/mlstack_*/__init__.py"))


def _function_packages() -> list[Path]:
    return [folder / f"mlstack_{folder.name}" for folder in _function_folders()]


def _image_packages() -> list[Path]:
    """The container images' entrypoint packages (containers/<image>/mlstack_*)."""
    return sorted(p.parent for p in (ROOT / "containers").glob("*/mlstack_*/__init__.py"))


def _mapped_modules() -> list[Path]:
    """The modules the module map must name: the core layer's, each function's, the user side's."""
    bases = [
        ROOT / "layers" / "core" / "mlstack_core",
        *_function_packages(),
        *_image_packages(),
        ROOT / "mlstack",
    ]
    return sorted(path for base in bases for path in base.rglob("*.py"))


@cache
def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        document: dict[str, Any] = tomllib.load(file)
    return document


def _difference(what: str, listed: list[str], expected: set[str]) -> str:
    """The message of a failed comparison: what is missing from the list and what is extra."""
    missing = sorted(expected - set(listed))
    extra = sorted(set(listed) - expected)
    repeated = sorted({entry for entry in listed if listed.count(entry) > 1})
    lines = [f"{what} does not match the tree:"]
    lines += [f"  missing: {entry}" for entry in missing]
    lines += [f"  naming nothing: {entry}" for entry in extra]
    lines += [f"  listed twice: {entry}" for entry in repeated]
    return "\n".join(lines)


# The module map ---------------------------------------------------------------------------------
RELATIVE_NAME = re.compile(r"^\w[\w-]*(\.\w+)+$|^\w+/$")  # spec.py, spec.schema.json, cli/
IDENTIFIER = re.compile(r"^\w+(\.\w+)*(\.py)?$")  # predictor, kinds.inference, request.py


class ModuleMap:
    """docs/internals.md's "Module map" table, read as the paths it names.

    A row's first cell names paths: from the repository root (with a "/"), or a file name beside
    the previous path (`capture.py`, `ground_truth.py`). Its role cell names the modules of the
    row's folders in backticks: `predictor`, `request.py`, `kinds.inference`, or a whole path.
    """

    def __init__(self, text: str) -> None:
        self.named: dict[str, str] = {}  # repo-relative path -> the row that names it
        self.covered: set[str] = set()  # modules the map names, resolved to repo-relative paths
        for first, role in self._rows(text):
            folders = self._read_paths(first)
            for token in re.findall(r"`([^`]+)`", role):
                self._read_role_token(token, folders, first)

    @staticmethod
    def _rows(text: str) -> list[tuple[str, str]]:
        section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
        rows = []
        for line in section.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= {"-", ":"}:
                continue
            if cells[0] == "path":
                continue
            rows.append((cells[0], cells[-1]))
        return rows

    def _read_paths(self, cell: str) -> list[str]:
        folders: list[str] = []
        base = ""
        for token in re.findall(r"`([^`]+)`", cell):
            if " " in token:
                continue  # a command beside the path (`make lock`)
            if "/" in token.rstrip("/"):
                path = token
            elif base and RELATIVE_NAME.match(token):
                path = f"{base}/{token}"
            else:
                continue  # a bare suffix (`.txt`)
            path = path.rstrip("/")
            self.named.setdefault(path, cell)
            self.covered.add(path)
            base = path if token.endswith("/") else path.rsplit("/", 1)[0]
            folders.append(base)
        return folders

    def _read_role_token(self, token: str, folders: list[str], row: str) -> None:
        if " " in token or token.startswith(("-", "$", ".")):
            return
        top = token.split("/", 1)[0]
        if "/" in token.rstrip("/") and (ROOT / top).is_dir():
            self.named.setdefault(token.rstrip("/"), row)  # a path from the root
            self.covered.add(token.rstrip("/"))
            return
        if token.endswith(".py") and "/" not in token:
            for folder in folders[:1]:
                self.named.setdefault(f"{folder}/{token}", row)
            self.covered.update(f"{folder}/{token}" for folder in folders)
            return
        if IDENTIFIER.match(token):
            dotted = token.removesuffix(".py").split(".")
            # Relative to the row's folders (kinds.inference), or from a first-party package.
            starts = [(folder, dotted) for folder in folders]
            starts += [(folder, dotted[1:]) for folder in _package_folders(dotted[0])]
            for start, parts in starts:
                for end in range(len(parts), 0, -1):  # the rest may be an attribute
                    candidate = "/".join([start, *parts[:end]]) + ".py"
                    if (ROOT / candidate).is_file():
                        self.covered.add(candidate)
                        break


def _package_folders(name: str) -> list[str]:
    """Where a first-party top-level package lives (mlstack_core.kinds.inference)."""
    if name == "mlstack_core":
        return ["layers/core/mlstack_core"]
    if name == "mlstack":
        return ["mlstack"]
    step = name.removeprefix("mlstack_")
    if name.startswith("mlstack_") and (ROOT / "functions" / step / name).is_dir():
        return [f"functions/{step}/{name}"]
    return []


@cache
def _module_map() -> ModuleMap:
    return ModuleMap(INTERNALS.read_text())


def test_the_module_map_names_every_module() -> None:
    # A package's __init__ and __main__ are the package's own row.
    modules = {
        _relative(path)
        for path in _mapped_modules()
        if path.name not in {"__init__.py", "__main__.py"}
    }
    unnamed = sorted(modules - _module_map().covered)
    assert not unnamed, (
        "docs/internals.md's module map does not name these modules; name each in its package's "
        "row (`module` in the role, or its path in the first cell):\n"
        + "\n".join(f"  {path}" for path in unnamed)
    )


def test_every_path_the_module_map_names_exists() -> None:
    stale = sorted(
        f"{path}  (row: {row})"
        for path, row in _module_map().named.items()
        if not (ROOT / path).exists()
    )
    assert not stale, "docs/internals.md's module map names paths that do not exist:\n" + "\n".join(
        f"  {entry}" for entry in stale
    )


def test_the_module_map_reader_resolves_each_kind_of_name() -> None:
    text = """## Module map
| path | ships in | role |
|---|---|---|
| `layers/core/mlstack_core/capture.py`, `ground_truth.py` | core layer | captures |
| `functions/predict/mlstack_predict/` | PredictFunction | `app` (HTTP), `routing.py`, `nowhere` |
| `mlstack/` | never deployed | `localcloud/` (moto), `mlstack_core.kinds.inference.read` |

## Next section
| `mlstack/sam.py` | not in the map | |
"""
    read = ModuleMap(text)

    assert read.covered >= {
        "layers/core/mlstack_core/capture.py",
        "layers/core/mlstack_core/ground_truth.py",
        "functions/predict/mlstack_predict/app.py",
        "functions/predict/mlstack_predict/routing.py",
        "layers/core/mlstack_core/kinds/inference.py",
    }
    assert "mlstack/sam.py" not in read.covered
    assert "functions/predict/mlstack_predict/nowhere.py" not in read.covered


# Test files cited -------------------------------------------------------------------------------
# A test file's path in prose, code or config (tests/<folder>/<name>.py).
CITED_TEST_FILE = re.compile(r"(?<![\w/.-])tests/[\w/]+\.py\b")
CITING = ["*.py", "*.md", "*.toml", "*.yaml", "*.yml", "*.json", "*.sh", "*.txt", "Makefile"]


def test_every_cited_test_file_exists() -> None:
    missing = sorted(
        f"{_relative(path)}:{number}: {cited}"
        for pattern in CITING
        for path in _project_files(pattern)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        for cited in CITED_TEST_FILE.findall(line)
        if not (ROOT / cited).is_file()
    )
    assert not missing, "these lines cite test files that do not exist:\n" + "\n".join(
        f"  {entry}" for entry in missing
    )


# pyproject.toml and the Makefile ------------------------------------------------------------------
def test_isort_knows_every_first_party_package() -> None:
    # ruff finds the packages at the root by itself (mlstack, tests, benchmarks); the core layer's
    # and the functions' packages live deeper, so isort must be told they are first-party.
    # mlstack is listed too: it is the package the project installs.
    listed = _pyproject()["tool"]["ruff"]["lint"]["isort"]["known-first-party"]
    expected = {"mlstack", "mlstack_core"} | {
        p.name for p in [*_function_packages(), *_image_packages()]
    }
    assert sorted(listed) == sorted(expected), _difference(
        "[tool.ruff.lint.isort] known-first-party in pyproject.toml", listed, expected
    )


def _import_roots() -> set[str]:
    """The folders the handlers' packages are imported from: the core layer, each function, each
    container image."""
    images = {_relative(package.parent) for package in _image_packages()}
    return {"layers/core"} | images | {_relative(folder) for folder in _function_folders()}


def test_pytest_imports_from_every_function_folder() -> None:
    listed = _pyproject()["tool"]["pytest"]["ini_options"]["pythonpath"]
    assert sorted(listed) == sorted(_import_roots()), _difference(
        "[tool.pytest.ini_options] pythonpath in pyproject.toml", listed, _import_roots()
    )


def test_mypy_imports_from_every_function_folder() -> None:
    listed = _pyproject()["tool"]["mypy"]["mypy_path"].split(":")
    assert sorted(listed) == sorted(_import_roots()), _difference(
        "[tool.mypy] mypy_path in pyproject.toml", listed, _import_roots()
    )


def test_setuptools_installs_every_package_of_the_cli_and_the_core_layer() -> None:
    listed = _pyproject()["tool"]["setuptools"]["packages"]
    package_dirs = _pyproject()["tool"]["setuptools"]["package-dir"]
    expected = {
        ".".join([name, *init.parent.relative_to(ROOT / folder).parts])
        for name, folder in package_dirs.items()
        for init in (ROOT / folder).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert sorted(listed) == sorted(expected), _difference(
        "[tool.setuptools] packages in pyproject.toml", listed, expected
    )


# Not type-checked by `make lint`: the benchmarks are scripts, run by `make bench*`.
NOT_LINTED = {"benchmarks"}


def test_the_makefile_type_checks_every_python_folder() -> None:
    line = next(
        line.strip()
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.strip().startswith("$(BIN)/mypy ")
    )
    checked = [
        match for argument in shlex.split(line)[1:] for match in ROOT.glob(argument) if argument
    ]
    unchecked = sorted(
        _relative(path)
        for path in _project_files("*.py")
        if path.relative_to(ROOT).parts[0] not in NOT_LINTED
        and not any(path == folder or folder in path.parents for folder in checked)
    )
    assert not unchecked, (
        f"the Makefile's type check ({line}) misses these files; add their folder to it:\n"
        + "\n".join(f"  {path}" for path in unchecked)
    )
