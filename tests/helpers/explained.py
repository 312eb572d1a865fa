"""Fitted and exported models to explain: a generated table, a zoo pipeline fitted as Train fits
it, its ONNX export loaded as serving loads it, and background rows as stored records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlstack_core.contract import LoadedModel, load_model
from mlstack_core.contract.records import record_chunks
from mlstack_core.kinds.inputs import input_widths, model_input
from mlstack_core.settings import serving_settings
from mlstack_core.tabular import Table, feature_feeds, read_split, target_vector, write_split
from mlstack_train.zoo import build_pipeline, export_onnx
from tests.helpers.shapes import to_csv
from tests.helpers.tables import prepared_from

LEVELS = ["red", "green", "blue", "amber"]


def generated_csv(
    rows: int, numeric: int, categorical: int, task: str, seed: int = 0, missing: float = 0.0
) -> bytes:
    """``numeric`` and ``categorical`` columns and a target ``y`` that depends on all of them,
    with interactions: a regression value, or one of three classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, numeric))
    codes = rng.integers(0, len(LEVELS), size=(rows, categorical))
    signal = x @ rng.normal(size=numeric) if numeric else np.zeros(rows)
    if numeric > 1:
        signal += 0.5 * x[:, 0] * x[:, 1]
    if categorical:
        signal += (codes == 1).sum(axis=1) - 0.5 * (codes == 2).sum(axis=1)
    signal += rng.normal(scale=0.3, size=rows)
    header = [f"n{i}" for i in range(numeric)] + [f"c{i}" for i in range(categorical)] + ["y"]
    body = []
    for i in range(rows):
        cells = ["" if rng.random() < missing else f"{v:.4f}" for v in x[i]]
        cells += [LEVELS[c] for c in codes[i]]
        if task == "regression":
            cells.append(f"{signal[i]:.4f}")
        else:
            cells.append(["low", "mid", "high"][int(np.digitize(signal[i], [-0.5, 0.5]))])
        body.append(cells)
    return to_csv(header, body)


@dataclass
class Explained:
    """A served model, its scikit-learn original, and tables of records."""

    loaded: LoadedModel
    onnx: bytes
    pipeline: Any
    schema: Any  # the FeatureSchema
    train: Table
    holdout: Table

    def records(self, table: Table, rows: int) -> list[dict[str, Any]]:
        """The first ``rows`` rows of ``table`` as a client would send them."""
        out: list[dict[str, Any]] = []
        for chunk in record_chunks(table, self.loaded.layout):
            out.extend(chunk)
            if len(out) >= rows:
                break
        return out[:rows]

    def sklearn_outputs(self, table: Table) -> np.ndarray:
        """[rows, outputs]: the original's value, or each class's probability."""
        inputs = model_input(feature_feeds(table, self.schema))
        if self.schema["task"] == "classification":
            return np.asarray(self.pipeline.predict_proba(inputs), dtype=np.float64)
        return np.asarray(self.pipeline.predict(inputs), dtype=np.float64).reshape(-1, 1)


def explained_model(
    family: str, params: dict[str, Any], body: bytes, **spec_fields: Any
) -> Explained:
    prepared = prepared_from(body, **spec_fields)
    schema = prepared.schema
    train = read_split(write_split(prepared.table, schema, prepared.train_index))
    holdout = read_split(write_split(prepared.table, schema, prepared.holdout_index))
    widths = input_widths(schema)
    text = [f for f in schema["features"] if f["kind"] == "text"]
    pipeline = build_pipeline(
        family,
        params,
        task=schema["task"],
        n_numeric=widths.get("numeric", 0),
        n_categorical=widths.get("categorical", 0),
        seed=0,
        text=text,
    ).fit(model_input(feature_feeds(train, schema)), target_vector(train, schema))
    onnx = export_onnx(
        pipeline,
        task=schema["task"],
        n_numeric=widths.get("numeric", 0),
        n_categorical=widths.get("categorical", 0),
        n_text=widths.get("text", 0),
    ).SerializeToString()
    loaded = load_model(onnx, {"schema": schema}, serving_settings())
    return Explained(loaded, onnx, pipeline, schema, train, holdout)
