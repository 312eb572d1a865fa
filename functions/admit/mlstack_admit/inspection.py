"""An imported ONNX file, read as data and refused by name before anything could run it.

The file arrives from outside the stack, so it is parsed as a protobuf message (``onnx``, no
runtime: this function has no onnxruntime) and walked, subgraphs and functions included:

- bytes and nodes within the stack's limits (``ImportedModelTooLarge``);
- every tensor's data inside the file (``ExternalDataRefused``): a reference to a path would make
  a serving process read a file of the attacker's choosing;
- every operator in a domain the serving runtime ships, as converters write them
  (``CustomOperatorRefused``): a custom domain needs a library the runtime would have to load;
- an IR version and opsets the serving layer's oldest onnxruntime (1.20) loads
  (``OpsetUnsupported``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import onnx
from google.protobuf.message import DecodeError

from mlstack_core.errors import (
    CustomOperatorRefused,
    ExternalDataRefused,
    ImportedModelTooLarge,
    ImportedModelUnreadable,
    OpsetUnsupported,
)

# The operator domains scikit-learn's, LightGBM's and XGBoost's converters write, which every
# onnxruntime build ships ("ai.onnx" is the default domain's other name).
SERVED_DOMAINS: Final = frozenset({"", "ai.onnx", "ai.onnx.ml"})
# What onnxruntime 1.20, the serving layer's floor (layers/serving/requirements.in), loads.
MAX_IR_VERSION: Final = 10
MAX_OPSETS: Final = {"": 21, "ai.onnx": 21, "ai.onnx.ml": 4}


def graphs_of(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph in its nodes' attributes (If, Loop, Scan bodies)."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from graphs_of(attribute.g)
            for subgraph in attribute.graphs:
                yield from graphs_of(subgraph)


def nodes_of(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    for graph in graphs_of(model.graph):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def tensors_of(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor the file holds: initializers (dense and sparse) and attribute values."""
    for graph in graphs_of(model.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
    for node in nodes_of(model):
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices


def parse(data: bytes, max_bytes: int) -> onnx.ModelProto:
    """The file as an ONNX model, or ``ImportedModelTooLarge`` / ``ImportedModelUnreadable``."""
    if len(data) > max_bytes:
        raise ImportedModelTooLarge(
            f"the ONNX file has {len(data):,} bytes; this stack imports at most {max_bytes:,} "
            "(MaxImportMiB)"
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError as error:
        raise ImportedModelUnreadable(f"the file is not an ONNX model: {error}") from error
    if not model.HasField("graph") or not model.graph.node:
        raise ImportedModelUnreadable("the file is not an ONNX model: it has no graph")
    return model


def inspect_model(data: bytes, *, max_bytes: int, max_nodes: int) -> onnx.ModelProto:
    """The parsed model when nothing in it is refused; else the named refusal, the first found."""
    model = parse(data, max_bytes)
    nodes = sum(1 for _ in nodes_of(model))
    if nodes > max_nodes:
        raise ImportedModelTooLarge(
            f"the ONNX graph has {nodes:,} nodes; this stack imports at most {max_nodes:,} "
            "(MaxImportNodes)"
        )
    for tensor in tensors_of(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            where = {entry.key: entry.value for entry in tensor.external_data}.get("location", "?")
            raise ExternalDataRefused(
                f"tensor {tensor.name!r} keeps its data outside the file ({where!r}); save the "
                "model with its data inside (onnx.save_model(..., save_as_external_data=False))"
            )
    domains = {entry.domain for entry in model.opset_import}
    domains |= {node.domain for node in nodes_of(model)}
    domains |= {function.domain for function in model.functions}
    foreign = sorted(domains - SERVED_DOMAINS)
    if foreign:
        operators = sorted(
            {f"{node.domain}::{node.op_type}" for node in nodes_of(model) if node.domain in foreign}
        )
        raise CustomOperatorRefused(
            f"the graph uses operator domain(s) {', '.join(map(repr, foreign))} "
            f"({', '.join(operators) or 'declared in opset_import'}), which the serving runtime "
            f"does not ship; it serves {', '.join(repr(d) for d in sorted(SERVED_DOMAINS))}"
        )
    if model.ir_version > MAX_IR_VERSION:
        raise OpsetUnsupported(
            f"the file's IR version is {model.ir_version}; the serving runtime loads up to "
            f"{MAX_IR_VERSION}: convert with an older onnx (or set model.ir_version)"
        )
    for entry in model.opset_import:
        ceiling = MAX_OPSETS[entry.domain]
        if entry.version > ceiling:
            raise OpsetUnsupported(
                f"the graph needs opset {entry.version} of {entry.domain or 'ai.onnx'!r}; the "
                f"serving runtime loads up to {ceiling}: convert with target_opset={ceiling} or "
                "lower"
            )
    return model
