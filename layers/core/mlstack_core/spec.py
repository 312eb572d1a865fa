"""The training spec, ``datasets/<model>/spec.json``: validation, defaults and task resolution.

spec.schema.json (draft-07, shipped next to this module) is the published contract and the single
source of the defaults: fastjsonschema, behind Powertools' ``validate``, fills them in. It stops at
the first error, so on failure jsonschema lists every problem (``iter_errors``) for one SpecError.
jsonschema is imported only then: the Preprocess function carries it (its requirements.txt), the
other functions that read this module never validate a spec.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.validation import validate
from aws_lambda_powertools.utilities.validation.exceptions import SchemaValidationError

from mlstack_core.candidates import (
    DEFAULT_CANDIDATES,
    candidate_problems,
)
from mlstack_core.errors import SpecError
from mlstack_core.kinds.numbers import parse_number
from mlstack_core.tasks import CLASSIFICATION, REGRESSION, TASKS

SPEC_SCHEMA_PATH = Path(__file__).with_name("spec.schema.json")

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("r2", "rmse", "mae")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
DEFAULT_METRIC = {CLASSIFICATION: "accuracy", REGRESSION: "r2"}
# A numeric target with more distinct values than this is treated as regression.
MAX_CLASSES_FOR_NUMERIC_TARGET = 20
_UNIT_INTERVAL_METRICS = frozenset({"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"})


@cache
def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SPEC_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def greater_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def metrics_for(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == CLASSIFICATION else REGRESSION_METRICS


def load_spec(raw: bytes | None) -> dict[str, Any]:
    """Parse, validate and fill defaults. ``task``, ``metric`` and ``candidates`` stay null when
    the spec leaves them to the data; ``resolve_task`` fills them once the target is read."""
    if raw is None:
        raise SpecError(
            'spec.json is missing: upload datasets/<model>/spec.json with at least {"target": '
            '"<column>"} before the CSV'
        )
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise SpecError(f"spec.json is not UTF-8: {error}") from error
    except json.JSONDecodeError as error:
        raise SpecError(f"spec.json is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise SpecError(f"spec.json must be a JSON object, got {type(document).__name__}")

    schema = spec_schema()
    problems: list[str] = []
    try:
        # fastjsonschema fills schema defaults into the document it validates.
        spec: dict[str, Any] = validate(event=copy.deepcopy(document), schema=schema)
    except SchemaValidationError:
        problems = spec_schema_problems(document, schema)
        spec = document
    problems += semantic_problems(spec)
    if problems:
        raise SpecError(_format(problems))
    return spec


def resolve_task(spec: Mapping[str, Any], target_values: Sequence[str]) -> dict[str, Any]:
    """A copy of ``spec`` with task, metric and candidates decided, given the target's non-missing
    raw values. Raises SpecError if the spec's choices do not fit the task."""
    resolved = copy.deepcopy(dict(spec))
    declared = (resolved.get("columns") or {}).get("types", {}).get(resolved.get("target"))
    if resolved.get("task") is None and declared == "categorical":
        resolved["task"] = CLASSIFICATION  # numeric codes the user says are labels
    elif resolved.get("task") is None:
        resolved["task"] = infer_task(target_values)
    task = resolved["task"]
    if resolved.get("metric") is None:
        resolved["metric"] = DEFAULT_METRIC[task]
    if resolved.get("candidates") is None:
        resolved["candidates"] = copy.deepcopy(DEFAULT_CANDIDATES[task])
    problems = semantic_problems(resolved)
    if problems:
        how = "given in the spec" if spec.get("task") else "inferred from the target column"
        raise SpecError(_format(problems, f" (task {task}, {how})"))
    return resolved


def infer_task(target_values: Sequence[str]) -> str:
    """Numbers with few distinct integer values are class labels; other numbers are a quantity."""
    numbers: set[float] = set()
    for value in target_values:
        number = parse_number(value)
        if number is None:
            return CLASSIFICATION
        numbers.add(number)
    if len(numbers) > MAX_CLASSES_FOR_NUMERIC_TARGET:
        return REGRESSION
    if any(not number.is_integer() for number in numbers):
        return REGRESSION
    return CLASSIFICATION


# -- problems ------------------------------------------------------------------------------------


def semantic_problems(spec: Mapping[str, Any]) -> list[str]:
    """Rules JSON Schema cannot express. Defensive about types: it also runs on invalid specs."""
    problems: list[str] = []
    task, metric = spec.get("task"), spec.get("metric")
    if task in TASKS and isinstance(metric, str) and metric not in metrics_for(task):
        problems.append(
            f"metric: {metric!r} does not apply to {task}; "
            f"use one of {', '.join(metrics_for(task))}"
        )
    threshold = spec.get("threshold")
    if isinstance(threshold, int | float) and isinstance(metric, str):
        if metric in _UNIT_INTERVAL_METRICS and not 0.0 <= threshold <= 1.0:
            problems.append(f"threshold: {metric} lies in [0, 1], so {threshold} can never be met")
        elif metric in LOWER_IS_BETTER and threshold < 0:
            problems.append(f"threshold: {metric} is never negative, so {threshold} can't be met")
        elif metric == "r2" and threshold > 1:
            problems.append(f"threshold: r2 is at most 1, so {threshold} can never be met")
    candidates = spec.get("candidates")
    if isinstance(candidates, list) and all(_well_formed_entry(e) for e in candidates):
        task_or_none = task if task in TASKS else None
        problems += candidate_problems(candidates, task_or_none)
    columns = spec.get("columns")
    target = spec.get("target")
    drop = columns.get("drop") if isinstance(columns, dict) else None
    if isinstance(drop, list) and isinstance(target, str) and target in drop:
        problems.append(f"columns.drop: lists the target {target!r}")
    if spec.get("delimiter") in ('"', "\n", "\r"):
        problems.append(f"delimiter: {spec['delimiter']!r} cannot separate CSV cells")
    return problems


def _well_formed_entry(entry: Any) -> bool:
    if isinstance(entry, str):
        return True
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("family"), str)
        and isinstance(entry.get("params", {}), dict)
        and isinstance(entry.get("grid", {}), dict)
        and all(isinstance(v, list) for v in entry.get("grid", {}).values())
        and (entry.get("cv") is None or type(entry["cv"]) is int)
    )


# jsonschema quotes the offending value; a problem line keeps to this many characters.
MAX_PROBLEM_CHARS = 300


def spec_schema_problems(document: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every schema violation in ``document``, one line each, prefixed with its path."""
    from jsonschema import Draft7Validator

    errors = Draft7Validator(schema).iter_errors(document)
    definitions = schema.get("definitions", {})
    problems: list[str] = []
    for error in sorted(errors, key=lambda e: [str(part) for part in e.absolute_path]):
        problems += _describe(error, definitions)
    return problems


def _describe(error: Any, definitions: Mapping[str, Any]) -> list[str]:
    """jsonschema's error as lines of ``path: problem``. For a oneOf/anyOf, the problems of the one
    branch whose JSON type the value has (a string family name, or a candidate object), else the
    branch jsonschema's ``best_match`` judges closest."""
    from jsonschema.exceptions import best_match

    if error.validator in ("oneOf", "anyOf") and error.context:
        branches = [_deref(branch, definitions) for branch in error.validator_value]
        typed = [i for i, branch in enumerate(branches) if _type_matches(error.instance, branch)]
        if len(typed) == 1:
            inside = [e for e in error.context if e.relative_schema_path[0] == typed[0]]
            return [line for e in inside for line in _describe(e, definitions)]
        return _describe(best_match(error.context), definitions)
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        lines = []
        for key in error.instance:
            if key in known:
                continue
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{_path([*path, key])}: unknown field{suggestion}")
        return lines
    if error.validator == "required" and isinstance(error.instance, dict):
        return [
            f"{_path([*path, name])}: is required"
            for name in error.validator_value
            if name not in error.instance
        ]
    if error.validator in ("maxLength", "maxItems", "maxProperties"):
        # Never the value itself: it may be megabytes, and the message travels in the run's state.
        unit = {"maxLength": "characters", "maxItems": "items", "maxProperties": "fields"}
        size = len(error.instance)
        limit = error.validator_value
        return [f"{_path(path)}: is {size:,} {unit[error.validator]} long; at most {limit:,}"]
    message = error.message
    if len(message) > MAX_PROBLEM_CHARS:
        message = message[: MAX_PROBLEM_CHARS - 1] + "…"
    return [f"{_path(path)}: {message}"]


def _deref(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        target: Mapping[str, Any] = definitions[ref.removeprefix("#/definitions/")]
        return target
    return schema


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_matches(value: Any, schema: Mapping[str, Any]) -> bool:
    if "enum" in schema:
        return any(type(value) is type(option) for option in schema["enum"])
    declared = schema.get("type")
    if declared is None:
        return True
    names = declared if isinstance(declared, list) else [declared]
    if isinstance(value, bool):
        return "boolean" in names
    return any(isinstance(value, _JSON_TYPES[name]) for name in names)


def _path(parts: Sequence[Any]) -> str:
    """``candidates[1].grid.n_neighbors`` for ["candidates", 1, "grid", "n_neighbors"]."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "spec"


def _format(problems: list[str], context: str = "") -> str:
    noun = "problem" if len(problems) == 1 else "problems"
    lines = "\n".join(f"- {p}" for p in problems)
    return f"spec.json has {len(problems)} {noun}{context}:\n{lines}"
