"""The serving rehearsal: before a version can be promoted, serve holdout rows to it as JSON
requests through the serving contract and check the answers against what the gate scored.

The gate scores arrays; serving turns a JSON body into those arrays and the outputs back into
JSON. The rehearsal runs that whole path (the version document as the registry will hold it,
the serving session options, graph checks and warm-up, body parsing, tensors, output formatting,
JSON encoding) for one row and for a batch in both body forms, so a version that would fail or
answer differently in production is stopped at the gate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from mlstack_core.contract.outputs import encode_json, format_outputs
from mlstack_core.contract.request import parse_body
from mlstack_core.contract.session import LoadedModel, load_model
from mlstack_core.documents import Rehearsal
from mlstack_core.errors import HttpError, ModelLoadError, ServingRehearsalFailed
from mlstack_core.settings import ServingSettings
from mlstack_core.tasks import CLASSIFICATION

# Rows of the rehearsal's batch requests, at most (and never more than the body limits allow).
BATCH_ROWS: Final = 1000


def rehearse(
    artifact: bytes,
    document: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    gate_outputs: Mapping[str, np.ndarray],
    tolerance: Mapping[str, float],
    *,
    scale: float,
    settings: ServingSettings,
    batch_rows: int = BATCH_ROWS,
) -> Rehearsal:
    """A report of the requests served; ServingRehearsalFailed naming the first difference.

    ``gate_outputs`` are the gate's outputs for ``records`` (``label`` and ``probabilities``, or
    ``variable``); ``tolerance`` and ``scale`` are the run's parity tolerance and the target's
    spread (regression differences are judged relative to it).
    """
    try:
        loaded = load_model(artifact, document, settings)
    except ModelLoadError as error:
        raise ServingRehearsalFailed(
            f"the version cannot be loaded for serving: {error}"
        ) from error
    requests = _requests(records, settings, batch_rows)
    report: list[dict[str, Any]] = []
    largest = 0.0
    for form, rows, body in requests:
        answer = _serve(loaded, body, settings, form, len(rows))
        largest = max(largest, _compare(loaded, answer, gate_outputs, rows, tolerance, scale, form))
        report.append({"form": form, "rows": len(rows)})
    return {"passed": True, "requests": report, "max_abs_diff": largest}


def _requests(
    records: Sequence[Mapping[str, Any]], settings: ServingSettings, batch_rows: int
) -> list[tuple[str, list[int], str]]:
    """(form, holdout rows, JSON body): the row with the most nulls alone, then an evenly spread
    batch as records and as a columnar table."""
    if not records:
        raise ServingRehearsalFailed("the holdout has no rows to rehearse with")
    nulls = [sum(value is None for value in record.values()) for record in records]
    single = [int(np.argmax(nulls))]
    size = min(len(records), batch_rows, settings.max_rows)
    while True:
        rows = np.unique(np.linspace(0, len(records) - 1, size).round().astype(int)).tolist()
        chosen = [records[i] for i in rows]
        as_records = _dumps({"instances": chosen})
        columns = list(chosen[0])
        as_columns = _dumps(
            {"columns": columns, "data": [[record[c] for c in columns] for record in chosen]}
        )
        if max(len(as_records), len(as_columns)) <= settings.max_body_bytes or size == 1:
            break
        size = max(1, size // 2)
    return [
        ("records", single, _dumps({"instances": [records[single[0]]]})),
        ("records", rows, as_records),
        ("columnar", rows, as_columns),
    ]


def _dumps(document: Any) -> str:
    # What a client's JSON library sends: no NaN (missing values are null), UTF-8 text as is.
    return json.dumps(document, allow_nan=False, ensure_ascii=False)


def _serve(
    loaded: LoadedModel, body: str, settings: ServingSettings, form: str, rows: int
) -> dict[str, Any]:
    try:
        _, outputs = loaded.run_request(parse_body(body, False, settings))
        answer: dict[str, Any] = json.loads(encode_json(format_outputs(loaded.layout, outputs)))
    except HttpError as error:
        raise ServingRehearsalFailed(
            f"a {rows}-row {form} request was refused with {error.http_status}: {error.message} "
            f"{error.details[:3]}"
        ) from error
    except Exception as error:
        raise ServingRehearsalFailed(
            f"a {rows}-row {form} request failed: {type(error).__name__}: {error}"
        ) from error
    return answer


def _compare(
    loaded: LoadedModel,
    answer: Mapping[str, Any],
    gate_outputs: Mapping[str, np.ndarray],
    rows: list[int],
    tolerance: Mapping[str, float],
    scale: float,
    form: str,
) -> float:
    """The largest difference found; ServingRehearsalFailed at the first one out of tolerance."""
    where = f"a {len(rows)}-row {form} request"
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(rows):
        raise ServingRehearsalFailed(
            f"{where} answered {predictions!r:.200} instead of a prediction per row"
        )
    if loaded.layout.task == CLASSIFICATION:
        return _compare_classifier(loaded, answer, gate_outputs, rows, tolerance, where)
    expected = np.asarray(gate_outputs["variable"], dtype=np.float64).reshape(-1)[rows]
    served = np.array([np.nan if v is None else v for v in predictions], dtype=np.float64)
    same_nan = np.isnan(expected) & np.isnan(served)
    gap = np.where(same_nan, 0.0, np.abs(served - expected))
    gap = np.where(np.isnan(gap), np.inf, gap)
    worst = int(np.argmax(gap))
    if gap[worst] / scale > tolerance["max_scaled_diff"]:
        raise ServingRehearsalFailed(
            f"{where} answered {served[worst]!r} for holdout row {rows[worst]}, the gate scored "
            f"{expected[worst]!r} (tolerance {tolerance['max_scaled_diff']} of the target's spread)"
        )
    return float(gap.max())


def _compare_classifier(
    loaded: LoadedModel,
    answer: Mapping[str, Any],
    gate_outputs: Mapping[str, np.ndarray],
    rows: list[int],
    tolerance: Mapping[str, float],
    where: str,
) -> float:
    classes = loaded.layout.classes
    if answer.get("classes") != classes:
        raise ServingRehearsalFailed(
            f"{where} answered classes {answer.get('classes')!r:.200}, the schema lists "
            f"{classes!r:.200}"
        )
    expected_labels = np.asarray(gate_outputs["label"]).reshape(-1)[rows].tolist()
    for position, (served, expected) in enumerate(
        zip(answer["predictions"], expected_labels, strict=True)
    ):
        if served != expected or type(served) is not type(expected):
            raise ServingRehearsalFailed(
                f"{where} answered {served!r} for holdout row {rows[position]}, the gate scored "
                f"{expected!r}"
            )
    try:
        served_probabilities = np.asarray(answer.get("probabilities"), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ServingRehearsalFailed(
            f"{where} answered unreadable probabilities: {error}"
        ) from error
    expected_probabilities = np.asarray(gate_outputs["probabilities"], dtype=np.float64)[rows]
    if served_probabilities.shape != expected_probabilities.shape:
        raise ServingRehearsalFailed(
            f"{where} answered probabilities of shape {served_probabilities.shape}, the gate "
            f"scored {expected_probabilities.shape}"
        )
    gap = np.abs(served_probabilities - expected_probabilities).max(axis=1)
    worst = int(np.argmax(gap))
    if not gap[worst] <= tolerance["max_abs_diff"]:
        raise ServingRehearsalFailed(
            f"{where} answered probabilities {served_probabilities[worst].tolist()} for holdout "
            f"row {rows[worst]}, the gate scored {expected_probabilities[worst].tolist()} "
            f"(tolerance {tolerance['max_abs_diff']})"
        )
    return float(gap.max())
