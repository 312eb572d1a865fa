"""The holdout: measuring an ONNX file on its rows as it will be served, and its parity with
scikit-learn.

The holdout reaches the model as JSON-like records through the serving contract
(``mlstack_core.contract``), with the serving session options; metrics are the numpy ones of
``mlstack_core.model_metrics``. Parity compares with the outputs Train stored for the holdout
(``sklearn_holdout.npz``): nothing here imports scikit-learn, which does not fit in one Lambda
with onnxruntime.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlstack_core import model_metrics
from mlstack_core.contract import FeatureLayout, LoadedModel, load_model
from mlstack_core.contract.records import table_feeds
from mlstack_core.evidence import Answers, bounded_log_loss_rows, squared_error_rows
from mlstack_core.settings import serving_settings
from mlstack_core.spec import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
)
from mlstack_core.tabular import (
    Table,
    target_vector,
)
from mlstack_core.tasks import CLASSIFICATION

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef


def load_as_served(body: bytes, document: Mapping[str, Any]) -> LoadedModel:
    """A session exactly as serving builds it: same options, graph checks and warm-up."""
    return load_model(body, document, serving_settings())


def run_outputs(loaded: LoadedModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's outputs by name."""
    return dict(zip(loaded.layout.output_names, loaded.run(feeds), strict=True))


def align_probabilities(
    probabilities: np.ndarray, model_classes: Sequence[Any], classes: Sequence[Any]
) -> np.ndarray:
    """Columns in ``classes`` order; a class the model never saw gets probability 0."""
    if list(model_classes) == list(classes):
        return np.asarray(probabilities, dtype=np.float64)
    position = {c: i for i, c in enumerate(model_classes)}
    out = np.zeros((probabilities.shape[0], len(classes)), dtype=np.float64)
    for j, label in enumerate(classes):
        if label in position:
            out[:, j] = probabilities[:, position[label]]
    return out


def reported_classification_metrics(
    y: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[Any]
) -> dict[str, float | None]:
    """Every classification metric the evaluation reports, JSON-safe; one that cannot be computed
    (roc_auc with a class absent from the holdout) is None."""
    computed = model_metrics.classification_metrics(y, labels, probabilities, list(classes))
    return _finite({name: computed.get(name) for name in CLASSIFICATION_METRICS})


def reported_regression_metrics(y: np.ndarray, values: np.ndarray) -> dict[str, float | None]:
    """Every regression metric the evaluation reports, JSON-safe."""
    computed = model_metrics.regression_metrics(y, values)
    return _finite({name: computed.get(name) for name in REGRESSION_METRICS})


def _finite(values: Mapping[str, Any]) -> dict[str, float | None]:
    """Plain floats; NaN/inf become None (Step Functions payloads must be valid JSON)."""
    out: dict[str, float | None] = {}
    for key, value in values.items():
        number = None if value is None else float(value)
        out[key] = number if number is not None and math.isfinite(number) else None
    return out


def load_sklearn_outputs(body: bytes, task: str, rows: int) -> dict[str, Any]:
    """Train's ``sklearn_holdout.npz`` in the shapes ``parity`` compares: classifiers ``label``
    (int64, or str objects like onnxruntime's string outputs), ``probabilities`` float64 [N, C]
    and ``classes`` (a list); regressors ``variable`` float64 [N]."""
    with np.load(io.BytesIO(body), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    out: dict[str, Any]
    if task == CLASSIFICATION:
        label = arrays["label"]
        out = {
            "label": label.astype(object) if label.dtype.kind == "U" else label,
            "probabilities": np.asarray(arrays["probabilities"], dtype=np.float64),
            "classes": arrays["classes"].tolist(),
        }
        if out["probabilities"].shape != (rows, len(out["classes"])):
            raise ValueError(
                f"stored probabilities have shape {out['probabilities'].shape}, expected "
                f"({rows}, {len(out['classes'])})"
            )
    else:
        out = {"variable": np.asarray(arrays["variable"], dtype=np.float64).ravel()}
    first = out["label" if task == CLASSIFICATION else "variable"]
    if first.shape != (rows,):
        raise ValueError(f"stored outputs cover {first.shape[0]} rows, the holdout has {rows}")
    # A run judged by cross-validation: the out-of-fold answers, [repeats, rows, ...].
    for name in ("oof_label", "oof_probabilities", "oof_variable"):
        if name in arrays:
            value = arrays[name]
            out[name] = value.astype(object) if value.dtype.kind == "U" else value
            if value.shape[1] != rows:
                raise ValueError(f"stored {name} covers {value.shape[1]} rows, not {rows}")
    return out


def parity(
    task: str,
    onnx_out: Mapping[str, np.ndarray],
    sklearn_out: Mapping[str, np.ndarray],
    tolerance: Mapping[str, float],
    scale: float,
) -> dict[str, Any]:
    """How closely the ONNX export reproduces scikit-learn on the holdout."""
    if task == CLASSIFICATION:
        diff = np.abs(onnx_out["probabilities"] - sklearn_out["probabilities"]).max(axis=1)
        same = onnx_out["label"] == sklearn_out["label"]
        # A flip between classes whose ONNX probabilities tie within tolerance is rounding, not
        # a different model.
        proba, classes = onnx_out["probabilities"], list(sklearn_out["classes"])
        ties = 0
        for row in np.flatnonzero(~same).tolist():
            a = classes.index(onnx_out["label"][row])
            b = classes.index(sklearn_out["label"][row])
            ties += int(abs(proba[row, a] - proba[row, b]) <= tolerance["max_abs_diff"])
        agreement = float(same.mean())
        max_abs = float(diff.max())
        passed = (
            max_abs <= tolerance["max_abs_diff"]
            and (agreement + ties / same.size) >= tolerance["label_agreement"]
        )
        return {
            "label_agreement": agreement,
            "label_flips": int((~same).sum()),
            "tie_flips": ties,
            "max_abs_diff": max_abs,
            "p99_abs_diff": float(np.percentile(diff, 99)),
            "passed": bool(passed),
        }
    diff = np.abs(onnx_out["variable"] - sklearn_out["variable"])
    max_abs = float(diff.max())
    scaled = max_abs / scale
    return {
        "label_agreement": None,
        "max_abs_diff": max_abs,
        "p99_abs_diff": float(np.percentile(diff, 99)),
        "max_scaled_diff": scaled,
        "passed": bool(scaled <= tolerance["max_scaled_diff"]),
    }


class Holdout:
    """The holdout split, its target and, per feature layout, its model inputs as served."""

    def __init__(self, table: Table, schema: Mapping[str, Any]) -> None:
        self.table = table
        self.schema = schema
        self.layout = FeatureLayout.from_document({"schema": schema})
        self.y = target_vector(table, schema)
        self.classes: list[Any] = list(schema.get("classes") or [])
        # Regression parity is judged relative to the target's spread.
        spread = float(np.std(self.y)) if schema["task"] != CLASSIFICATION else 1.0
        self.scale = spread if spread > 0 else 1.0
        self._feeds: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, np.ndarray]] = {}

    def feeds(self, feature_layout: FeatureLayout) -> dict[str, np.ndarray]:
        """The holdout rows as requests would carry them, through the serving contract; built
        once per layout (every candidate shares the run's)."""
        key = (feature_layout.numeric, feature_layout.categorical)
        if key not in self._feeds:
            self._feeds[key] = table_feeds(self.table, feature_layout)
        return self._feeds[key]

    def sample(self, rows: int) -> list[int]:
        """At most ``rows`` holdout rows, spread evenly: the serving rehearsal's rows."""
        count = min(rows, int(self.y.size))
        return np.unique(np.linspace(0, self.y.size - 1, count).round().astype(int)).tolist()

    def answers(
        self, outputs: Mapping[str, np.ndarray], model_classes: Sequence[Any] | None = None
    ) -> Answers:
        """A model's outputs on these rows, probabilities in the holdout's class order."""
        if self.schema["task"] == CLASSIFICATION:
            probabilities = align_probabilities(
                outputs["probabilities"], model_classes or self.classes, self.classes
            )
            return Answers(labels=np.asarray(outputs["label"]), probabilities=probabilities)
        return Answers(values=np.asarray(outputs["variable"], dtype=np.float64).ravel())

    def metric_values(self, answers: Answers) -> dict[str, float | None]:
        if answers.probabilities is not None and answers.labels is not None:
            return reported_classification_metrics(
                self.y, answers.labels, answers.probabilities, self.classes
            )
        return reported_regression_metrics(self.y, np.asarray(answers.values))

    def losses(self, answers: Answers) -> np.ndarray:
        """Per-row losses the gate judges evidence on (mlstack_core.evidence)."""
        if answers.probabilities is not None:
            return bounded_log_loss_rows(self.y, answers.probabilities, self.classes)
        return squared_error_rows(self.y, np.asarray(answers.values))


def read_object(s3: S3Client, bucket: str, key: str, version_id: str | None = None) -> bytes:
    request: GetObjectRequestTypeDef = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    body: bytes = s3.get_object(**request)["Body"].read()
    return body
