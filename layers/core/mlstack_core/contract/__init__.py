"""The serving contract: request records → a version's ONNX inputs, and its outputs → the answer.

This is the one implementation of that mapping. The prediction function serves with it, the
training gate scores the holdout with it, and the gate's serving rehearsal replays holdout rows
through it as JSON before a version can be promoted: what is scored is what is served. A batch
job's CSV rows take the same path (``batch.score_rows``), a refused row at a time.

Needs numpy, onnxruntime and orjson (the serving layer); nothing here imports scikit-learn.
"""

from mlstack_core.contract.layout import FeatureLayout, row_getter
from mlstack_core.contract.outputs import encode_json, format_outputs
from mlstack_core.contract.request import Batch, parse_body
from mlstack_core.contract.session import (
    LoadedModel,
    check_graph,
    load_model,
    session_options,
    warm_up,
)
from mlstack_core.contract.tensors import build_inputs, categorical_tensor, numeric_tensor

__all__ = [
    "Batch",
    "FeatureLayout",
    "LoadedModel",
    "build_inputs",
    "categorical_tensor",
    "check_graph",
    "encode_json",
    "format_outputs",
    "load_model",
    "numeric_tensor",
    "parse_body",
    "row_getter",
    "session_options",
    "warm_up",
]
