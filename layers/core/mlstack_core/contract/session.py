"""A version's ONNX bytes → a session that has proven it serves the contract.

The same options and checks serve requests (the prediction function), score the holdout (the
gate) and rehearse serving before promotion, so what is scored is what is served. onnxruntime
runs on one thread by default: with two, exact 0.5/0.5 forest ties came out as 0.49999994 and
flipped labels, so the thread count is a parity setting, not a speed knob.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from mlstack_core.contract.layout import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    TEXT_INPUT,
    FeatureLayout,
)
from mlstack_core.contract.outputs import format_outputs
from mlstack_core.contract.request import Batch
from mlstack_core.contract.tensors import build_inputs
from mlstack_core.errors import ModelLoadError
from mlstack_core.settings import ServingSettings

# What a 503 tells the client about a version that will not load (the log has the details).
GRAPH_MISMATCH = "the model's graph does not match its version's schema"
WARM_UP_FAILED = "the model failed its warm-up prediction"


def session_options(settings: ServingSettings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings would print into every cold start
    return options


@dataclass(frozen=True)
class LoadedModel:
    """One registry version, ready to serve."""

    model: str
    version: int
    document: Mapping[str, Any]
    session: ort.InferenceSession
    layout: FeatureLayout
    artifact_bytes: int = 0

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs in ``layout.output_names`` order."""
        outputs: list[np.ndarray] = self.session.run(self.layout.output_names, feeds)
        return outputs

    def run_request(self, batch: Batch) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        """(feeds, outputs) of a parsed request: what serving answers from."""
        feeds = build_inputs(batch, self.layout)
        return feeds, self.run(feeds)


def check_graph(session: ort.InferenceSession, layout: FeatureLayout) -> None:
    """Refuse a graph that breaks the contract now, rather than failing every request later."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    for name in (NUMERIC_INPUT, CATEGORICAL_INPUT, TEXT_INPUT):
        width = layout.widths.get(name, 0)
        if width and name not in inputs:
            raise ModelLoadError(
                f"graph has no {name!r} input but the schema has {width} columns", GRAPH_MISMATCH
            )
        if not width and name in inputs:
            raise ModelLoadError(
                f"graph has a {name!r} input but the schema has no such columns", GRAPH_MISMATCH
            )
        shape = inputs.get(name)
        if shape and len(shape) == 2 and isinstance(shape[1], int) and shape[1] != width:
            raise ModelLoadError(
                f"{name!r} input is {shape[1]} wide, schema says {width}", GRAPH_MISMATCH
            )
    outputs = [o.name for o in session.get_outputs()]
    missing = [name for name in layout.output_names if name not in outputs]
    if missing:
        raise ModelLoadError(f"graph lacks outputs {missing} (has {outputs})", GRAPH_MISMATCH)


def warm_up(loaded: LoadedModel) -> None:
    """Score one all-missing row: proves the graph runs on contract inputs and its outputs fit the
    schema (class count, label type), and moves onnxruntime's first-run cost into the load."""
    layout = loaded.layout
    try:
        _, outputs = loaded.run_request(Batch.of_instances([dict.fromkeys(layout.required)]))
        format_outputs(layout, outputs)
    except Exception as error:  # onnxruntime's own exception types are not exported
        raise ModelLoadError(f"warm-up prediction failed: {error!r}", WARM_UP_FAILED) from error
    if layout.classes is not None and outputs[1].shape != (1, len(layout.classes)):
        raise ModelLoadError(
            f"probabilities have shape {outputs[1].shape}, schema lists {len(layout.classes)} "
            "classes",
            GRAPH_MISMATCH,
        )


def load_model(
    body: bytes,
    document: Mapping[str, Any],
    settings: ServingSettings,
    *,
    model: str = "",
    version: int = 0,
) -> LoadedModel:
    """Verified ONNX bytes and their version document → a warmed-up session, or ModelLoadError
    naming what is wrong (the document, the graph or the warm-up)."""
    try:
        layout = FeatureLayout.from_document(document)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelLoadError(
            f"version document is malformed: {error!r}", "the version's registry entry is malformed"
        ) from error
    try:
        session = ort.InferenceSession(
            body, sess_options=session_options(settings), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own (unexported) exception types
        raise ModelLoadError(
            f"onnxruntime refused the artifact: {error}", "onnxruntime could not load the model"
        ) from error
    check_graph(session, layout)
    loaded = LoadedModel(model, version, document, session, layout, len(body))
    warm_up(loaded)
    return loaded
