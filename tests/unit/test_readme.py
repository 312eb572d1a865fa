"""The README's copies of what the stack ships: the spec schema, the spec table, the column kinds,
the example prediction's response; and that the commands it shows run after `make demo`."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.prediction import CATEGORICAL, NUMERIC, Stack, classifier, invoke

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_readme_shows_the_published_spec_schema() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- spec-schema:start -->.*?```json\n(.*?)```.*?<!-- spec-schema:end -->", readme, re.S
    )
    assert block, "README lost its spec schema block"
    shipped = json.loads((ROOT / "layers/core/mlstack_core/spec.schema.json").read_text())
    assert json.loads(block.group(1)) == shipped


def _spec_table(readme: str) -> dict[str, str]:
    """The README's spec table: field → the rest of its row."""
    section = readme.split("## Training spec", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.*)$", section, flags=re.M)
    return dict(rows)


def test_the_spec_table_documents_every_column_setting_and_kind() -> None:
    readme = (ROOT / "README.md").read_text()
    shipped = json.loads((ROOT / "layers/core/mlstack_core/spec.schema.json").read_text())
    table = _spec_table(readme)
    columns = shipped["properties"]["columns"]["properties"]
    for name in columns:
        assert f"columns.{name}" in table, f"the spec table lacks columns.{name}"
    for kind in columns["types"]["additionalProperties"]["enum"]:
        assert f"`{kind}`" in table["columns.types"], kind
    for form in columns["date_formats"]["additionalProperties"]["enum"]:
        assert f"`{form}`" in table["columns.date_formats"], form
    defaults = columns["text"]["default"]
    assert json.dumps(defaults) in table["columns.text"].replace("`", "")


def test_the_column_kinds_section_names_every_kind_format_and_part() -> None:
    from mlstack_core.kinds import KINDS, datetimes, inference
    from mlstack_core.kinds import text as text_kind

    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Column kinds\n", 1)[1].split("\n## ", 1)[0]
    for kind in KINDS:
        assert f"| {kind} |" in section, kind
    for form in datetimes.FORMATS:
        assert f"| `{form}` |" in section, form
    for part in (*datetimes.DATE_PARTS, datetimes.HOUR, datetimes.INSTANT):
        assert f"`{part}`" in section, part
    # The thresholds the rules quote are the ones inference applies.
    assert f"At least {inference.DATE_SHARE:.0%}".replace("%", " %") in section
    assert f"the {inference.DATE_SAMPLE:,} most frequent" in section
    assert f"at least {inference.MIN_IDENTIFIER_ROWS} whole numbers" in section
    assert f"at least {inference.TEXT_WORDS:g} words a value" in section
    assert f"at least {inference.LONG_TEXT_WORDS:g} words a value" in section
    assert f"more than {inference.HIGH_CARDINALITY_COUNT:,}" in section
    assert f"the first {text_kind.MAX_WORDS:,} of a value" in section


def _readme_prediction_example(readme: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The README's example prediction: the request body it sends and the response it shows."""
    block = re.search(
        r"curl -s -X POST \"\$API/models/penguins/predict\".*?-d '(.*?)'\n((?:# [^\n]*\n)+)",
        readme,
        re.S,
    )
    assert block, "README lost its example prediction"
    response = "".join(line[2:] for line in block.group(2).splitlines())
    return json.loads(block.group(1)), json.loads(response)


def test_the_example_prediction_response_is_what_the_api_answers(serving: Stack) -> None:
    readme = (ROOT / "README.md").read_text()
    request, shown = _readme_prediction_example(readme)
    serving.publish("penguins", classifier())
    # The test's penguins model was fitted on fewer measurements than the demo's.
    instances = [
        {column: row[column] for column in (*NUMERIC, *CATEGORICAL)} for row in request["instances"]
    ]

    answer = invoke("POST", "/models/penguins/predict", {"instances": instances})

    assert answer.status == 200, answer.body
    assert list(shown) == list(answer.body)
    endpoints = re.search(r"^\| `POST /models/\{model\}/predict.*?\| `\{(.*?)\}`", readme, re.M)
    assert endpoints, "README lost the predict endpoint's row"
    assert re.findall(r'"(\w+)"', endpoints.group(1)) == list(answer.body)
    for field in ("model", "version", "variant", "classes"):
        assert shown[field] == answer.body[field], field
    assert len(shown["predictions"]) == len(answer.body["predictions"])
    assert len(shown["probabilities"][0]) == len(answer.body["probabilities"][0])


def _makefile_targets() -> dict[str, list[str]]:
    """The Makefile's targets → their prerequisites."""
    rules = re.findall(r"^([a-z][a-z-]*):(?!=)(.*)$", (ROOT / "Makefile").read_text(), re.M)
    return {target: prerequisites.split() for target, prerequisites in rules}


def _readme_shell() -> str:
    """Every shell block of the README, joined."""
    return "\n".join(re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S))


def test_every_make_target_the_readme_names_exists() -> None:
    targets = _makefile_targets()
    readme = (ROOT / "README.md").read_text()
    # In shell blocks and code spans, where `make` is the command, not the verb.
    code = _readme_shell() + "\n".join(re.findall(r"`([^`\n]+)`", readme))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", code))
    assert named, "README names no make target"
    assert not named - set(targets), f"README names make targets the Makefile lacks: {named}"


def test_the_readme_runs_from_the_venv_only_what_every_install_provides() -> None:
    # `make demo` installs the demo extra only: the project's own command. Test and lint tools
    # (pytest, ruff, ...) come from the dev extra, so the README reaches them through make targets
    # that install it first.
    scripts = {"python", *_pyproject_scripts()}
    run = set(re.findall(r"\.venv/bin/([\w-]+)", _readme_shell()))
    assert run <= scripts, f"README runs tools `make demo` does not install: {run - scripts}"


def test_the_longer_shape_search_installs_the_test_tools_first() -> None:
    assert "make shape-search" in _readme_shell()
    assert "install" in _makefile_targets()["shape-search"]


def _pyproject_scripts() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
