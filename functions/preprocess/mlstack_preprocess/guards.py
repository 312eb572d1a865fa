"""What Preprocess checks before it trusts its input.

Anyone allowed to start the state machine can hand it any event, and anyone allowed to write the
data bucket writes the spec: so the dataset must be one of this stack's, and neither the spec nor
the data may go past what the stack's parameters allow (``mlstack_core.settings.GuardSettings``).
Each refusal is a named error, which fails the run with an alert.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlstack_core.documents import DatasetRef, DataWarning
from mlstack_core.errors import (
    DatasetTooLarge,
    ForeignDataset,
    RunStateTooLarge,
    SpecOutsideStackLimits,
    TooManyClasses,
    TooManyColumns,
    TooManyRows,
)
from mlstack_core.settings import GuardSettings
from mlstack_core.spec import greater_is_better
from mlstack_core.storage_keys import DATASET_KEY, IMPORT_MANIFEST_KEY, model_name_problem


def check_own_input(
    model: str, dataset: DatasetRef, data_bucket: str, *, imported: bool = False
) -> None:
    """The run's dataset is ``datasets/<model>/<file>.csv`` in this stack's data bucket (an
    import's, ``imports/<model>/<upload>/manifest.json``)."""
    problem = model_name_problem(model)
    if problem:
        raise ForeignDataset(problem)
    if dataset.get("bucket") != data_bucket:
        raise ForeignDataset(
            f"the dataset is in bucket {str(dataset.get('bucket'))[:80]!r}, not this stack's "
            "data bucket"
        )
    pattern, expected = (
        (IMPORT_MANIFEST_KEY, f"imports/{model}/<upload>/manifest.json")
        if imported
        else (DATASET_KEY, f"datasets/{model}/<file>.csv")
    )
    match = pattern.match(str(dataset.get("key", "")))
    if match is None or match.group("model") != model:
        raise ForeignDataset(f"key {str(dataset.get('key'))[:200]!r} is not {expected}")


def gate_limit_problems(spec: dict[str, Any], guards: GuardSettings) -> list[str]:
    """How the spec's gate is looser than the stack allows."""
    problems = []
    asked = spec.get("gate_confidence")
    if asked is not None and float(asked) < guards.confidence:
        problems.append(
            f"gate_confidence {asked} is below the stack's {guards.confidence} (GateConfidence)"
        )
    if float(spec["min_improvement"]) < guards.min_improvement:
        problems.append(
            f"min_improvement {spec['min_improvement']} is below the stack's floor "
            f"{guards.min_improvement} (GateMinImprovement)"
        )
    tolerance = spec["parity_tolerance"]
    if float(tolerance["label_agreement"]) < guards.min_label_agreement:
        problems.append(
            f"parity_tolerance.label_agreement {tolerance['label_agreement']} is below the "
            f"stack's floor {guards.min_label_agreement} (GateMinLabelAgreement)"
        )
    for name in ("max_abs_diff", "max_scaled_diff"):
        if float(tolerance[name]) > guards.max_output_diff:
            problems.append(
                f"parity_tolerance.{name} {tolerance[name]} is above the stack's ceiling "
                f"{guards.max_output_diff} (GateMaxOutputDiff)"
            )
    return problems


def check_gate_limits(spec: dict[str, Any], guards: GuardSettings) -> None:
    problems = gate_limit_problems(spec, guards)
    if problems:
        lines = "\n".join(f"- {p}" for p in problems)
        raise SpecOutsideStackLimits(
            f"spec.json asks for a gate the stack does not allow:\n{lines}"
        )


def threshold_floor(spec: dict[str, Any], guards: GuardSettings) -> dict[str, Any]:
    """The resolved spec held to the stack's least ``threshold`` (GateMinThreshold), when the
    stack sets one: a spec without a threshold takes the floor; a lower threshold, or a
    lower-is-better metric (whose units the floor cannot be compared with), fails the run with
    SpecOutsideStackLimits."""
    floor = guards.min_threshold
    if floor is None:
        return spec
    metric, threshold = spec["metric"], spec.get("threshold")
    if not greater_is_better(metric):
        problem = (
            f"metric {metric} is lower-is-better, so the stack's floor {floor} on threshold "
            "(GateMinThreshold) cannot hold it: choose a higher-is-better metric"
        )
    elif threshold is None:
        return {**spec, "threshold": floor}
    elif float(threshold) < floor:
        problem = f"threshold {threshold} is below the stack's floor {floor} (GateMinThreshold)"
    else:
        return spec
    raise SpecOutsideStackLimits(
        f"spec.json asks for a gate the stack does not allow:\n- {problem}"
    )


def stack_approval(
    model: str, spec: dict[str, Any], guards: GuardSettings
) -> tuple[dict[str, Any], list[DataWarning]]:
    """The spec with ``approval`` forced to manual where the stack requires a person for the
    model (ManualApprovalModels), and the warning saying so."""
    if spec["approval"] == "manual" or not guards.requires_manual_approval(model):
        return spec, []
    warning: DataWarning = {
        "code": "ManualApprovalRequired",
        "column": None,
        "message": f"the stack requires a person to approve every version of {model!r} "
        "(ManualApprovalModels): the spec's approval 'auto' is overridden",
    }
    return {**spec, "approval": "manual"}, [warning]


def check_candidate_count(count: int, guards: GuardSettings) -> None:
    """Each candidate is one Train invocation of up to 15 minutes: the stack bounds how many."""
    if count > guards.max_candidates:
        raise SpecOutsideStackLimits(
            f"spec.json asks for more training than the stack allows: its candidates expand to "
            f"{count} grid points; this stack trains at most {guards.max_candidates} per run "
            "(MaxCandidates)"
        )


def check_size(size: int | None, guards: GuardSettings) -> None:
    if size is not None and size > guards.max_upload_bytes:
        raise DatasetTooLarge(
            f"the file has {size:,} bytes; this stack accepts at most "
            f"{guards.max_upload_bytes:,} (MaxUploadMiB)"
        )


def check_shape(rows: int, columns: int, guards: GuardSettings) -> None:
    if columns > guards.max_columns:
        raise TooManyColumns(
            f"the file has {columns:,} columns; this stack accepts at most "
            f"{guards.max_columns:,} (MaxDatasetColumns)"
        )
    if rows > guards.max_rows:
        raise TooManyRows(
            f"the file has {rows:,} rows; this stack accepts at most {guards.max_rows:,} "
            "(MaxDatasetRows)"
        )


def check_classes(classes: int, guards: GuardSettings) -> None:
    if classes > guards.max_classes:
        raise TooManyClasses(
            f"the target has {classes:,} classes; this stack accepts at most "
            f"{guards.max_classes:,} (MaxClasses)"
        )


# Step Functions carries at most 256 KB per state. The run is one part of the state; the
# candidates' results and the evaluation come later, so the run keeps to this share of it.
RUN_STATE_BUDGET_BYTES = 96 * 1024


def check_run_state_size(run: Mapping[str, Any]) -> None:
    """Column names, categories and warnings come from the user's file: bound what they add."""
    size = len(json.dumps(run, default=str).encode())
    if size <= RUN_STATE_BUDGET_BYTES:
        return
    parts = sorted(
        ((len(json.dumps(value, default=str).encode()), name) for name, value in run.items()),
        reverse=True,
    )
    largest = ", ".join(f"{name} {bytes_:,} bytes" for bytes_, name in parts[:3])
    raise RunStateTooLarge(
        f"this table's description takes {size:,} bytes of the run's state ({largest}); "
        f"a run carries at most {RUN_STATE_BUDGET_BYTES:,} (Step Functions allows 256 KB per "
        "state): shorten the column names, or drop columns with many long distinct values"
    )
