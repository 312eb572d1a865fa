"""ONNX outputs → the prediction fields of a response, and the response's JSON encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from mlstack_core.contract.layout import LABEL_DTYPES, FeatureLayout
from mlstack_core.tasks import CLASSIFICATION


def format_outputs(layout: FeatureLayout, outputs: list[np.ndarray]) -> dict[str, Any]:
    """The prediction fields of the answer. Numeric arrays stay numpy: ``encode_json`` writes
    float32 values in their shortest text (3.4, not 3.4000000953674316) without a Python list."""
    if layout.task != CLASSIFICATION:
        return {"predictions": outputs[0].reshape(-1)}
    labels, probabilities = outputs
    if layout.label_type == "str" and labels.dtype == object:
        predictions: Any = labels.tolist()  # already str: the graph's labels are the schema's
    else:
        dtype = LABEL_DTYPES.get(layout.label_type)
        predictions = labels.astype(dtype) if dtype is not None else labels
        if predictions.dtype.kind in "OU":
            predictions = predictions.tolist()
    return {
        "predictions": predictions,
        "classes": layout.classes,
        "probabilities": probabilities,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):  # arrays orjson does not take natively
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(document: Any) -> str:
    """A response body. NaN (a regressor's output can be) becomes null, as orjson writes it."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY, default=_json_default).decode()
