"""An imported model's graph, fitted to the serving contract.

The imported graph reads one input per column (``[N, 1]`` or ``[N]``, named as the column) or one
numeric matrix of the holdout's feature columns in order, and answers a label and probabilities
(a classifier) or a value (a regressor), under names of its own. The stack serves every version
through the same inputs (``numeric`` float ``[N, n]`` and ``categorical`` string ``[N, m]``, the
columns in file order, ``mlstack_core.contract.FeatureLayout``) and outputs (``label`` and
``probabilities``, or ``variable``). ``plan_columns`` reads which columns the graph takes and as
what kind; ``served_graph`` puts a few standard nodes in front of the graph (each column sliced
out of its group and cast to the type the graph declares) and behind it (the answers renamed,
probabilities and values as float), so the graph answers exactly what it answered before, now
through the stack's contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.compose import add_prefix

from mlstack_core.errors import ImportContractMismatch
from mlstack_core.kinds import CATEGORICAL, NUMERIC
from mlstack_core.kinds.inputs import CATEGORICAL_INPUT, NUMERIC_INPUT
from mlstack_core.tasks import CLASSIFICATION, CLASSIFIER_OUTPUTS, REGRESSION, REGRESSOR_OUTPUTS

NUMBER_TYPES: Final = frozenset(
    {
        TensorProto.FLOAT,
        TensorProto.DOUBLE,
        TensorProto.FLOAT16,
        TensorProto.INT64,
        TensorProto.INT32,
        TensorProto.BOOL,
    }
)
LABEL_TYPES: Final = frozenset({TensorProto.INT64, TensorProto.INT32, TensorProto.STRING})
# Slice takes its bounds as inputs from opset 10, the oldest the front nodes need (converters
# write the lowest opset a graph needs: a one-hot and a linear model are opset 11).
MIN_OPSET: Final = 10
PREFIX: Final = "imported/"


@dataclass(frozen=True)
class GraphInput:
    name: str
    elem_type: int
    shape: tuple[int | None, ...]  # None: a dimension without a fixed size


@dataclass(frozen=True)
class ColumnPlan:
    """Which holdout columns the graph reads, as what kind, and how they reach its inputs."""

    kinds: dict[str, str]  # column -> numeric or categorical, in file order
    dropped: list[str]  # feature columns of the holdout the graph does not read
    matrix: GraphInput | None = None  # one numeric input of every read column, in file order
    inputs: dict[str, GraphInput] = field(default_factory=dict)  # column -> its own input

    @property
    def numeric(self) -> list[str]:
        return [c for c, kind in self.kinds.items() if kind == NUMERIC]

    @property
    def categorical(self) -> list[str]:
        return [c for c, kind in self.kinds.items() if kind == CATEGORICAL]


def _type_name(elem_type: int) -> str:
    return str(TensorProto.DataType.Name(elem_type)).lower()


def graph_inputs(model: onnx.ModelProto) -> list[GraphInput]:
    """The graph's inputs that are not initializers (old exporters list both)."""
    initialized = {tensor.name for tensor in model.graph.initializer}
    found = []
    for value in model.graph.input:
        if value.name in initialized:
            continue
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise ImportContractMismatch(
                f"input {value.name!r} is a {kind}, not a tensor: the stack feeds tensors"
            )
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim
        )
        found.append(GraphInput(value.name, value.type.tensor_type.elem_type, dims))
    return found


def plan_columns(
    model: onnx.ModelProto, header: Sequence[str], target: str, dropped: Sequence[str] = ()
) -> ColumnPlan:
    """How the holdout's columns (``header`` in file order, besides ``target`` and the spec's
    ``dropped`` ones) feed the graph; every mismatch at once in ``ImportContractMismatch``."""
    features = [c for c in header if c != target and c not in dropped]
    inputs = graph_inputs(model)
    problems: list[str] = [
        f"input {i.name!r} is the target column" for i in inputs if i.name == target
    ]
    if len(inputs) == 1 and inputs[0].name not in features and not problems:
        matrix = inputs[0]
        width = matrix.shape[1] if len(matrix.shape) == 2 else -1
        if matrix.elem_type not in NUMBER_TYPES or width not in (None, len(features)):
            raise ImportContractMismatch(
                f"its one input {matrix.name!r} ({_type_name(matrix.elem_type)} "
                f"{list(matrix.shape)}) is not a column of the holdout, nor a matrix of its "
                f"{len(features)} feature column(s) besides the target {target!r} (numbers "
                f"[None, {len(features)}], in the holdout's order): name one input per column "
                "as the column, or give the holdout the columns the model reads"
            )
        return ColumnPlan({c: NUMERIC for c in features}, [], matrix=matrix)
    by_name = {i.name: i for i in inputs}
    for graph_input in inputs:
        if graph_input.name == target:
            continue
        if graph_input.name not in features:
            problems.append(
                f"input {graph_input.name!r} names no feature column of the holdout "
                f"({', '.join(map(repr, features[:10]))}{'…' if len(features) > 10 else ''})"
            )
        elif graph_input.elem_type not in NUMBER_TYPES | {TensorProto.STRING}:
            problems.append(
                f"input {graph_input.name!r} is {_type_name(graph_input.elem_type)}: the stack "
                "feeds numbers or strings"
            )
        elif graph_input.shape not in ((None,), (None, 1)) and not (
            len(graph_input.shape) in (1, 2) and graph_input.shape[1:] in ((), (1,))
        ):
            problems.append(
                f"input {graph_input.name!r} has shape {list(graph_input.shape)}: a column's "
                "input is [None, 1] or [None]"
            )
    if problems:
        raise ImportContractMismatch("; ".join(problems))
    kinds = {
        c: (CATEGORICAL if by_name[c].elem_type == TensorProto.STRING else NUMERIC)
        for c in features
        if c in by_name
    }
    return ColumnPlan(kinds, [c for c in features if c not in by_name], inputs=by_name)


def model_task(model: onnx.ModelProto) -> str:
    """A classifier answers a label and probabilities (two outputs), a regressor one value."""
    outputs = list(model.graph.output)
    problems = []
    for value in outputs:
        if value.type.WhichOneof("value") != "tensor_type":
            problems.append(
                f"output {value.name!r} is a {value.type.WhichOneof('value')} (a ZipMap's list "
                "of dicts?): convert the classifier with options {'zipmap': False}"
            )
    if problems:
        raise ImportContractMismatch("; ".join(problems))
    types = [v.type.tensor_type.elem_type for v in outputs]
    if len(outputs) == 2 and types[0] in LABEL_TYPES and types[1] in NUMBER_TYPES:
        return CLASSIFICATION
    if len(outputs) == 1 and types[0] in NUMBER_TYPES - {TensorProto.BOOL}:
        return REGRESSION
    described = ", ".join(
        f"{v.name!r} ({_type_name(t)})" for v, t in zip(outputs, types, strict=True)
    )
    raise ImportContractMismatch(
        f"the graph answers {described}: the stack serves a classifier's label and "
        "probabilities, or a regressor's one value"
    )


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in value.type.tensor_type.shape.dim
    ]


def _constant(name: str, values: Sequence[int]) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def served_graph(model: onnx.ModelProto, plan: ColumnPlan) -> onnx.ModelProto:
    """The imported graph behind the stack's inputs and in front of its outputs."""
    default_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if default_opset < MIN_OPSET:
        raise ImportContractMismatch(
            f"the graph's default opset is {default_opset}; the stack adapts graphs of opset "
            f"{MIN_OPSET} or newer: convert with target_opset={MIN_OPSET} or newer"
        )
    task = model_task(model)
    inner = add_prefix(model, PREFIX, rename_functions=False)
    graph = inner.graph
    nodes: list[onnx.NodeProto] = []
    constants: list[TensorProto] = []
    groups = {
        NUMERIC: (NUMERIC_INPUT, plan.numeric),
        CATEGORICAL: (CATEGORICAL_INPUT, plan.categorical),
    }

    def cast(source: str, elem_type: int, target: str) -> None:
        """``source`` (float numbers or strings) as the graph's input ``target`` declares it."""
        if elem_type in (TensorProto.STRING, TensorProto.FLOAT):
            nodes.append(helper.make_node("Identity", [source], [target]))
        else:
            nodes.append(helper.make_node("Cast", [source], [target], to=elem_type))

    if plan.matrix is not None:
        columns = plan.numeric
        constants.append(_constant("mlstack/order", range(len(columns))))
        nodes.append(
            helper.make_node("Gather", [NUMERIC_INPUT, "mlstack/order"], ["mlstack/matrix"], axis=1)
        )
        cast("mlstack/matrix", plan.matrix.elem_type, PREFIX + plan.matrix.name)
    for column, graph_input in plan.inputs.items():
        group, members = groups[plan.kinds[column]]
        at = members.index(column)
        sliced = f"mlstack/column/{column}"
        constants += [
            _constant(f"{sliced}/start", [at]),
            _constant(f"{sliced}/end", [at + 1]),
            _constant(f"{sliced}/axis", [1]),
        ]
        nodes.append(
            helper.make_node(
                "Slice", [group, f"{sliced}/start", f"{sliced}/end", f"{sliced}/axis"], [sliced]
            )
        )
        shaped = sliced
        if len(graph_input.shape) == 1:
            shaped = f"{sliced}/flat"
            constants.append(_constant(f"{sliced}/flat_shape", [-1]))
            nodes.append(helper.make_node("Reshape", [sliced, f"{sliced}/flat_shape"], [shaped]))
        cast(shaped, graph_input.elem_type, PREFIX + graph_input.name)

    answers = [value.name for value in graph.output]
    tail: list[onnx.NodeProto] = []
    if task == CLASSIFICATION:
        label, probabilities = CLASSIFIER_OUTPUTS
        tail.append(helper.make_node("Identity", [answers[0]], [label]))
        tail.append(helper.make_node("Cast", [answers[1]], [probabilities], to=TensorProto.FLOAT))
        label_type = graph.output[0].type.tensor_type.elem_type
        # The graph's own shapes (a label [N] or [N, 1]) pass through unchanged.
        outputs = [
            helper.make_tensor_value_info(label, label_type, _dims(graph.output[0])),
            helper.make_tensor_value_info(probabilities, TensorProto.FLOAT, _dims(graph.output[1])),
        ]
    else:
        (variable,) = REGRESSOR_OUTPUTS
        constants.append(_constant("mlstack/column_shape", [-1, 1]))
        tail.append(helper.make_node("Cast", [answers[0]], ["mlstack/value"], to=TensorProto.FLOAT))
        tail.append(
            helper.make_node("Reshape", ["mlstack/value", "mlstack/column_shape"], [variable])
        )
        outputs = [helper.make_tensor_value_info(variable, TensorProto.FLOAT, [None, 1])]

    inputs = []
    if plan.numeric:
        inputs.append(
            helper.make_tensor_value_info(
                NUMERIC_INPUT, TensorProto.FLOAT, [None, len(plan.numeric)]
            )
        )
    if plan.categorical:
        inputs.append(
            helper.make_tensor_value_info(
                CATEGORICAL_INPUT, TensorProto.STRING, [None, len(plan.categorical)]
            )
        )
    initialized = {tensor.name for tensor in graph.initializer}
    kept_inputs = [value for value in graph.input if value.name in initialized]
    served = helper.make_graph(
        [*nodes, *graph.node, *tail],
        "mlstack-imported",
        [*inputs, *kept_inputs],
        outputs,
        [*constants, *graph.initializer],
        sparse_initializer=list(graph.sparse_initializer),
        value_info=list(graph.value_info),
    )
    result = helper.make_model(
        served,
        opset_imports=list(inner.opset_import),
        ir_version=inner.ir_version,
        producer_name="mlstack import",
    )
    result.functions.extend(inner.functions)
    onnx.checker.check_model(result)
    return result
