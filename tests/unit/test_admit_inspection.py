"""An imported ONNX file is read as data and refused by name (mlstack_admit.inspection): external
data, custom operator domains, too many bytes or nodes, IR versions and opsets the serving runtime
cannot load, bytes that are no model. A file the checks pass loads in the serving runtime."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlstack_admit.inspection import MAX_IR_VERSION, MAX_OPSETS, inspect_model
from mlstack_core.errors import (
    CustomOperatorRefused,
    ExternalDataRefused,
    ImportedModelTooLarge,
    ImportedModelUnreadable,
    ImportRefused,
    OpsetUnsupported,
)

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 1 << 20, "max_nodes": 50}


def scaled(
    opset: int = 17,
    ml_opset: int | None = None,
    ir_version: int = 8,
    nodes: int = 1,
    domain: str = "",
    op_type: str = "Mul",
) -> onnx.ModelProto:
    """x * w, ``nodes`` times over: a small graph to make hostile."""
    weight = numpy_helper.from_array(np.full((1, 2), 2.0, dtype=np.float32), "w")
    chain = []
    name = "x"
    for index in range(nodes):
        out = "y" if index == nodes - 1 else f"h{index}"
        chain.append(helper.make_node(op_type, [name, "w"], [out], domain=domain))
        name = out
    graph = helper.make_graph(
        chain,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [weight],
    )
    opsets = [helper.make_opsetid("", opset)]
    if ml_opset is not None:
        opsets.append(helper.make_opsetid("ai.onnx.ml", ml_opset))
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)


def with_external_weight(model: onnx.ModelProto) -> onnx.ModelProto:
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    return model


def in_a_subgraph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph's nodes moved into an If's branches."""
    branch = helper.make_graph(
        list(model.graph.node),
        "branch",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )
    condition = numpy_helper.from_array(np.array(True), "condition")
    node = helper.make_node("If", ["condition"], ["out"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph(
        [node],
        "outer",
        list(model.graph.input),
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 2])],
        [*model.graph.initializer, condition],
    )
    return helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=8)


def refused(data: bytes) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        inspect_model(data, **LIMITS)
    return caught.value


HOSTILE: dict[str, tuple[Callable[[], bytes], type[ImportRefused], str]] = {
    "external_data": (
        lambda: with_external_weight(scaled()).SerializeToString(),
        ExternalDataRefused,
        "'../../../etc/passwd'",
    ),
    "external_data_in_a_subgraph": (
        lambda: in_a_subgraph(with_external_weight(scaled())).SerializeToString(),
        ExternalDataRefused,
        "'w'",
    ),
    "custom_domain": (
        lambda: scaled(domain="com.attacker", op_type="Exfiltrate").SerializeToString(),
        CustomOperatorRefused,
        "com.attacker::Exfiltrate",
    ),
    "custom_domain_in_a_subgraph": (
        lambda: in_a_subgraph(scaled(domain="ai.custom", op_type="Op")).SerializeToString(),
        CustomOperatorRefused,
        "ai.custom::Op",
    ),
    "too_many_nodes": (
        lambda: scaled(nodes=LIMITS["max_nodes"] + 1).SerializeToString(),
        ImportedModelTooLarge,
        "MaxImportNodes",
    ),
    "too_many_bytes": (
        lambda: scaled().SerializeToString() + b"\x00" * LIMITS["max_bytes"],
        ImportedModelTooLarge,
        "MaxImportMiB",
    ),
    "opset_too_new": (
        lambda: scaled(opset=MAX_OPSETS[""] + 1).SerializeToString(),
        OpsetUnsupported,
        f"opset {MAX_OPSETS[''] + 1}",
    ),
    "ml_opset_too_new": (
        lambda: scaled(ml_opset=MAX_OPSETS["ai.onnx.ml"] + 1).SerializeToString(),
        OpsetUnsupported,
        "'ai.onnx.ml'",
    ),
    "ir_version_too_new": (
        lambda: scaled(ir_version=MAX_IR_VERSION + 1).SerializeToString(),
        OpsetUnsupported,
        f"IR version is {MAX_IR_VERSION + 1}",
    ),
    "not_a_model": (lambda: b"\x08\x07\x12\x00garbage\xff\xff", ImportedModelUnreadable, "not"),
    "a_pickle": (lambda: b"\x80\x04\x95\x10\x00\x00\x00", ImportedModelUnreadable, "not"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_file_is_refused_by_name(kind: str) -> None:
    make, error, names = HOSTILE[kind]
    found = refused(make())
    assert type(found) is error
    assert names in str(found)


def test_a_file_at_the_limits_passes_and_the_serving_runtime_loads_it() -> None:
    """The ceilings are what onnxruntime loads: a model at every maximum passes the checks and
    runs; one past them was refused above."""
    model = scaled(
        opset=MAX_OPSETS[""],
        ml_opset=MAX_OPSETS["ai.onnx.ml"],
        ir_version=MAX_IR_VERSION,
        nodes=LIMITS["max_nodes"],
    )
    data = model.SerializeToString()
    inspected = inspect_model(data, **LIMITS)
    assert inspected.graph.name == "g"
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.ones((1, 2), dtype=np.float32)})
    assert out.tolist() == [[2.0 ** LIMITS["max_nodes"]] * 2]
