"""``python -m mlstack.checks.template``: run the structural checks on ./template.yaml."""

from __future__ import annotations

from mlstack.checks.template.asl import check_substitutions, check_transitions
from mlstack.checks.template.iam import check_wildcards
from mlstack.checks.template.translated import translate_offline


def main() -> int:
    """``python -m mlstack.checks.template``: run the structural checks on ./template.yaml."""
    from mlstack.sam import project_root

    translated = translate_offline(project_root())
    problems = [
        *check_substitutions(translated),
        *check_transitions(translated),
        *check_wildcards(translated),
    ]
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
