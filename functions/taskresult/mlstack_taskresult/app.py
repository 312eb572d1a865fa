"""TaskResultFunction's handler (template.yaml): a placeholder until its step's code lands."""

from __future__ import annotations

from typing import Any

from mlstack_core.settings import FunctionSettings, stack_settings

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings("taskresult", required=(), reads=(stack_settings,))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError("TaskResultFunction's code is not written yet")
