"""template.yaml translated as CloudFormation sees it: the real project's, and a copy's after a
mutation of its template or its ASL (for the tests that a check reports each breakage)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from mlstack.checks.template.translated import translate_offline
from mlstack.sam import load_template
from tests.helpers import ROOT

ASL = "statemachine/training.asl.json"


@cache
def real() -> dict[str, Any]:
    return translate_offline(ROOT)


def copy_project(tmp_path: Path) -> Path:
    """template.yaml and the ASL, where mutations cannot reach the real files."""
    (tmp_path / "statemachine").mkdir()
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    for definition in (ROOT / "statemachine").glob("*.asl.json"):
        shutil.copy(definition, tmp_path / "statemachine" / definition.name)
    return tmp_path


def mutate(
    tmp_path: Path,
    template: Callable[[dict[str, Any]], None] | None = None,
    asl: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Translate a copy of the project after editing its template and/or its ASL."""
    root = copy_project(tmp_path)
    if template is not None:
        document = load_template(root / "template.yaml")
        template(document)
        # JSON is YAML, and intrinsics are already in their long form after load_template.
        (root / "template.yaml").write_text(json.dumps(document, indent=1))
    if asl is not None:
        definition = json.loads((root / ASL).read_text())
        asl(definition)
        (root / ASL).write_text(json.dumps(definition, indent=1))
    return translate_offline(root)
