"""The README's copy of the spec schema is the shipped schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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
