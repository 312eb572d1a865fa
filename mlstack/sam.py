"""template.yaml as CloudFormation sees it: found, parsed and translated by aws-sam-translator
(the transform CloudFormation itself runs). Shared by the local cloud and the template checks.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any


class TemplateNotFound(FileNotFoundError):
    """No template.yaml where the local cloud looks for it."""


def project_root() -> Path:
    """The directory holding template.yaml: the working directory or this checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "template.yaml").is_file():
            return candidate
    raise TemplateNotFound(
        "template.yaml is not in the working directory: run this command from a checkout of "
        "the project (the local cloud deploys that template)"
    )


# ------------------------------------------------------------------------------------ template
def load_template(path: Path) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def translate(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    class _NoManagedPolicies:
        """The template only uses SAM policy templates, which need no IAM look-up."""

        def load(self) -> dict[str, str]:
            return {}

    translated: dict[str, Any] = transform(
        copy.deepcopy(template), parameters, _NoManagedPolicies()
    )
    return translated


def inline_substitution(value: Any) -> str:
    """A DefinitionSubstitutions value as Fn::Sub text: ``${Res}``, ``${Res.Attr}`` or a literal."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return "${" + resource + "." + attribute + "}"
    raise ValueError(f"unsupported DefinitionSubstitutions value: {value!r}")
