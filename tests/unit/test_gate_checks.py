"""The gate's parity and serving-rehearsal checks each stop what they are meant to stop.

Parity is exercised on constructed arrays; the rehearsal serves a real ONNX model (the fixtures
of ``tests.helpers.prediction``) and is handed "gate scores" that differ from what serving answers.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest

from mlstack_core.contract import Batch, build_inputs, load_model
from mlstack_core.contract.rehearsal import rehearse
from mlstack_core.documents import Rehearsal
from mlstack_core.errors import ServingRehearsalFailed
from mlstack_core.payloads import Run
from mlstack_core.registry import ServingFields, serving_fields
from mlstack_core.settings import serving_settings
from mlstack_evaluate.holdout import parity
from tests.helpers.prediction import ModelFixture, classifier, mixed_records, regressor

pytestmark = pytest.mark.unit

TOLERANCE = {"label_agreement": 0.99, "max_abs_diff": 1e-3, "max_scaled_diff": 1e-3}


# parity: label agreement --------------------------------------------------------------------------
CLASSES = ["a", "b", "c"]


def _classifier_outputs(rows: int, flipped: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """ONNX and scikit-learn outputs with identical probabilities, where ONNX answers "b"
    instead of "a" on the first ``flipped`` rows. "a" leads "b" by 0.5 on every row, so no flip
    is a tie within max_abs_diff: each counts against label agreement."""
    probabilities = np.tile([0.7, 0.2, 0.1], (rows, 1))
    sklearn_labels = np.array(["a"] * rows, dtype=object)
    onnx_labels = sklearn_labels.copy()
    onnx_labels[:flipped] = "b"
    onnx = {"label": onnx_labels, "probabilities": probabilities.copy()}
    sklearn = {"label": sklearn_labels, "probabilities": probabilities, "classes": CLASSES}
    return onnx, sklearn


def test_parity_fails_when_labels_flip_beyond_the_agreement_tolerance() -> None:
    onnx, sklearn = _classifier_outputs(rows=200, flipped=10)  # 95% agreement

    result = parity("classification", onnx, sklearn, TOLERANCE, scale=1.0)

    assert result["max_abs_diff"] <= TOLERANCE["max_abs_diff"]  # only the labels differ
    assert result["label_flips"] == 10
    assert result["tie_flips"] == 0
    assert result["label_agreement"] == pytest.approx(0.95)
    assert result["passed"] is False


def test_parity_passes_when_label_flips_stay_within_the_agreement_tolerance() -> None:
    onnx, sklearn = _classifier_outputs(rows=200, flipped=1)  # 99.5% agreement

    result = parity("classification", onnx, sklearn, TOLERANCE, scale=1.0)

    assert result["label_flips"] == 1
    assert result["tie_flips"] == 0
    assert result["passed"] is True


def test_parity_does_not_count_flips_between_tied_probabilities() -> None:
    onnx, sklearn = _classifier_outputs(rows=200, flipped=10)
    # "a" and "b" tied within max_abs_diff on the flipped rows: rounding, not another model.
    for outputs in (onnx, sklearn):
        outputs["probabilities"][:10] = [0.45, 0.45, 0.1]

    result = parity("classification", onnx, sklearn, TOLERANCE, scale=1.0)

    assert result["label_flips"] == 10
    assert result["tie_flips"] == 10
    assert result["passed"] is True


# serving rehearsal --------------------------------------------------------------------------------
def _gate_scores(fixture: ModelFixture, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The ONNX outputs for ``records`` as the gate computes them: serving's session, inputs
    built through the serving contract, the whole holdout in one run."""
    loaded = load_model(fixture.onnx, _document(fixture), serving_settings())
    outputs = loaded.run(build_inputs(Batch.of_instances(records), loaded.layout))
    return dict(zip(loaded.layout.output_names, outputs, strict=True))


def _document(fixture: ModelFixture) -> ServingFields:
    """The version document's serving fields, as Evaluate hands them to the rehearsal."""
    return serving_fields(cast(Run, {"task": fixture.schema["task"], "schema": fixture.schema}))


def _rehearse(
    fixture: ModelFixture,
    records: list[dict[str, Any]],
    scored: dict[str, np.ndarray],
    scale: float,
) -> Rehearsal:
    return rehearse(
        fixture.onnx,
        _document(fixture),
        records,
        scored,
        TOLERANCE,
        scale=scale,
        settings=serving_settings(),
    )


def test_rehearsal_passes_a_regressor_served_as_scored() -> None:
    records = mixed_records(60, seed=11)
    scored = _gate_scores(regressor(), records)
    scale = float(np.std(scored["variable"]))

    report = _rehearse(regressor(), records, scored, scale)

    assert report["passed"] is True
    assert [r["form"] for r in report["requests"]] == ["records", "records", "columnar"]
    assert report["max_abs_diff"] / scale <= TOLERANCE["max_scaled_diff"]


def test_rehearsal_fails_a_regressor_whose_served_values_differ_from_the_scored_ones() -> None:
    records = mixed_records(60, seed=11)
    scored = _gate_scores(regressor(), records)
    scale = float(np.std(scored["variable"]))
    # Same rows in the same order, every value off by ten times the tolerance: only the value
    # comparison can notice.
    shifted = {"variable": scored["variable"] + 10 * TOLERANCE["max_scaled_diff"] * scale}

    with pytest.raises(ServingRehearsalFailed, match="of the target's spread"):
        _rehearse(regressor(), records, shifted, scale)


def test_rehearsal_passes_a_classifier_served_as_scored() -> None:
    records = mixed_records(60, seed=12)
    scored = _gate_scores(classifier(), records)

    report = _rehearse(classifier(), records, scored, scale=1.0)

    assert report["passed"] is True
    assert report["max_abs_diff"] <= TOLERANCE["max_abs_diff"]


def test_rehearsal_fails_a_classifier_whose_served_probabilities_differ_from_scored() -> None:
    records = mixed_records(60, seed=12)
    scored = _gate_scores(classifier(), records)
    probabilities = np.asarray(scored["probabilities"], dtype=np.float64)
    # Mixed with the uniform distribution: still probabilities, each row's argmax (so the label)
    # unchanged, so only the probability comparison can notice.
    blurred = 0.9 * probabilities + 0.1 / probabilities.shape[1]
    assert (blurred.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert np.abs(blurred - probabilities).max() > TOLERANCE["max_abs_diff"]

    with pytest.raises(ServingRehearsalFailed, match="answered probabilities"):
        _rehearse(classifier(), records, {"label": scored["label"], "probabilities": blurred}, 1.0)
