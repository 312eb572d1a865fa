"""A model trained elsewhere, carried into ONNX on the user's machine for ``mlstack import``.

It takes an ONNX file as it is (the stack checks it when it arrives), or a file joblib wrote,
unpickled here, on the machine of the person who chose to import it, and never in the stack: a
scikit-learn estimator or pipeline whose steps skl2onnx converts, or a LightGBM or XGBoost model,
alone or as a pipeline's last step, through the converters onnxmltools registers with skl2onnx.

The graph takes one input per column the model reads, named as the column (``[None, 1]``: float
for numbers, string for the rest), or, for a model fitted on a bare matrix, one float input
``input`` ``[None, n]`` with the columns in the holdout's order. Classifiers answer ``label`` and
``probabilities`` (no ZipMap). The stack builds its serving inputs in front of that graph.

What skl2onnx cannot carry is refused before anything is converted, naming the step: a
transformer of the user's own, a ``FunctionTransformer`` that is not the identity, a
``SimpleImputer`` on string columns.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from mlstack.cli.errors import CommandError

if TYPE_CHECKING:
    import pandas as pd

# The opsets the stack's own exports use: onnxruntime >= 1.20 (the serving layer's floor) runs them.
TARGET_OPSET: Final = {"": 21, "ai.onnx.ml": 3}
MATRIX_INPUT: Final = "input"
# Modules whose estimators skl2onnx (or onnxmltools, registered below) converts.
CONVERTIBLE_MODULES: Final = ("sklearn.", "lightgbm.", "xgboost.")
BOOSTERS: Final = {"lightgbm": "lightgbm", "xgboost": "xgboost"}
SUFFIXES: Final = {".joblib": "joblib", ".pkl": "joblib", ".pickle": "joblib", ".onnx": "onnx"}


class ModelNotConvertible(CommandError):
    """The model file cannot be carried into ONNX as it is: the message names the step and what
    to do instead."""


@dataclass(frozen=True)
class Converted:
    """A model as the stack imports it: its ONNX bytes and where they came from."""

    onnx: bytes
    source: str  # "onnx", "scikit-learn", "lightgbm" or "xgboost"
    file_sha256: str  # of the file the user named
    libraries: dict[str, str] = field(default_factory=dict)  # what fitted and converted it
    original: Any = None  # the unpickled model (None for an ONNX file)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_model_file(path: Path) -> tuple[str, Any]:
    """``("onnx", bytes)`` or ``("joblib", the unpickled object)``."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CommandError(
            f"{path.name}: a model file ends in .joblib (or .pkl) or .onnx, not "
            f"{path.suffix or 'nothing'!r}"
        )
    if kind == "onnx":
        return kind, path.read_bytes()
    import joblib

    return kind, joblib.load(path)


def steps_of(model: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every estimator in ``model``, depth first, with the path a person would name it by
    (``preprocess/categorical/impute``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    yield path or type(model).__name__, model
    children: Sequence[tuple[str, Any]] = ()
    if isinstance(model, Pipeline):
        children = [(name, step) for name, step in model.steps]
    elif isinstance(model, ColumnTransformer):
        fitted = getattr(model, "transformers_", model.transformers)
        children = [(name, step) for name, step, _ in fitted]
    elif isinstance(model, FeatureUnion):
        children = list(model.transformer_list)
    for name, child in children:
        if child in ("drop", "passthrough") or child is None:
            continue
        yield from steps_of(child, f"{path}/{name}" if path else name)


def refuse_unconvertible(model: Any, frame: pd.DataFrame) -> None:
    """Raise ``ModelNotConvertible`` naming the first step skl2onnx cannot carry."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer

    for where, step in steps_of(model):
        module = type(step).__module__ + "."
        if not module.startswith(CONVERTIBLE_MODULES):
            raise ModelNotConvertible(
                f"step {where!r} is {type(step).__name__} from {type(step).__module__}, which "
                "no ONNX converter knows: replace it with scikit-learn transformers, or export "
                "the model to ONNX yourself (with a converter for it) and import the .onnx file"
            )
        if isinstance(step, FunctionTransformer) and step.func is not None:
            function = getattr(step.func, "__name__", step.func)
            raise ModelNotConvertible(
                f"step {where!r} is FunctionTransformer(func={function}), "
                "arbitrary Python that ONNX cannot carry: compute that column before the "
                "pipeline (in the CSV the stack receives), or replace it with a scikit-learn "
                "transformer"
            )
    for where, step in steps_of(model):
        if not isinstance(step, ColumnTransformer):
            continue
        fitted = getattr(step, "transformers_", step.transformers)
        for name, transformer, columns in fitted:
            fitted_on = [str(c) for c in getattr(step, "feature_names_in_", frame.columns)]
            strings = [
                c for c in _column_names(columns, fitted_on) if c in frame and _is_text(frame[c])
            ]
            if not strings:
                continue
            for inner, found in steps_of(transformer, f"{where}/{name}"):
                if isinstance(found, SimpleImputer):
                    raise ModelNotConvertible(
                        f"step {inner!r} is a SimpleImputer on string columns "
                        f"({', '.join(strings)}), which skl2onnx refuses: drop it and let "
                        "OneHotEncoder(handle_unknown='ignore') take missing values as unknown "
                        "(the stack sends a missing category as an empty string), or fill them "
                        "before the pipeline"
                    )


def _column_names(columns: Any, names: Sequence[str]) -> list[str]:
    """A fitted ColumnTransformer's selection (names, indices or a boolean mask into ``names``,
    the columns it was fitted on) as names."""
    if isinstance(columns, str):
        return [columns]
    selection = np.atleast_1d(np.asarray(columns))
    if selection.dtype == bool:
        return [name for name, keep in zip(names, selection.tolist(), strict=False) if keep]
    return [names[c] if isinstance(c, int) else str(c) for c in selection.tolist()]


def _is_text(series: pd.Series) -> bool:
    from pandas.api.types import is_numeric_dtype

    return not is_numeric_dtype(series.dtype)


def model_columns(model: Any, frame: pd.DataFrame) -> list[str] | None:
    """The columns the model reads by name (``feature_names_in_``), or None when it was fitted
    on a bare matrix."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    missing = [str(n) for n in names if str(n) not in frame.columns]
    if missing:
        raise ModelNotConvertible(
            f"the model reads column(s) {', '.join(map(repr, missing))}, which the holdout "
            "lacks: give a holdout with every column the model was fitted on"
        )
    return [str(n) for n in names]


def register_booster_converters() -> None:
    """LightGBM's and XGBoost's scikit-learn estimators, converted by onnxmltools inside a
    skl2onnx conversion (as skl2onnx's documentation registers them)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        pass
    else:
        update_registered_converter(
            lightgbm.LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=classifier_options,
        )
        update_registered_converter(
            lightgbm.LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
    try:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    except ImportError:
        pass
    else:
        update_registered_converter(
            xgboost.XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            xgboost.XGBRegressor,
            "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )


def source_of(model: Any) -> str:
    """ "lightgbm" or "xgboost" when the model (or its last step) is one, else "scikit-learn"."""
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    root = type(last).__module__.split(".")[0]
    return BOOSTERS.get(root, "scikit-learn")


def is_classifier(model: Any) -> bool:
    return hasattr(model, "predict_proba") and hasattr(model, "classes_")


def convert_model(model: Any, frame: pd.DataFrame, features: Sequence[str]) -> bytes:
    """The fitted model as ONNX: one input per column it reads by name, else one matrix of the
    holdout's ``features`` in order."""
    refuse_unconvertible(model, frame)
    register_booster_converters()
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    columns = model_columns(model, frame)
    by_name = columns is not None and _selects_columns(model)
    if columns is not None and not by_name:
        features = columns  # fitted on a DataFrame, read as one matrix in its columns' order
    if not by_name:
        texts = [c for c in features if _is_text(frame[c])]
        if texts:
            raise ModelNotConvertible(
                f"the model was fitted on a bare matrix, but column(s) {', '.join(texts)} hold "
                "strings: fit it on a DataFrame (so it reads columns by name) or encode them "
                "inside the pipeline"
            )
        if getattr(model, "n_features_in_", len(features)) != len(features):
            raise ModelNotConvertible(
                f"the model reads {model.n_features_in_} columns, the holdout has "
                f"{len(features)} besides the target: give the holdout the columns it was "
                "fitted on, in that order"
            )
        initial_types: list[tuple[str, Any]] = [
            (MATRIX_INPUT, FloatTensorType([None, len(features)]))
        ]
    else:
        initial_types = [
            (c, StringTensorType([None, 1]) if _is_text(frame[c]) else FloatTensorType([None, 1]))
            for c in columns or []
        ]
    options: dict[int, dict[str, Any]] = {}
    if is_classifier(model):
        last = model.steps[-1][1] if hasattr(model, "steps") else model
        options[id(last)] = {"zipmap": False}
        if last is not model:
            options[id(model)] = {"zipmap": False}
    try:
        converted = convert_sklearn(
            model,
            name="imported",
            initial_types=initial_types,
            options=options,
            target_opset=TARGET_OPSET,
        )
    except (MissingConverter, MissingShapeCalculator) as error:
        raise ModelNotConvertible(
            f"skl2onnx has no converter for a step of this model: {str(error).splitlines()[0]}; "
            "export the model to ONNX yourself and import the .onnx file"
        ) from error
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as error:
        raise ModelNotConvertible(
            f"skl2onnx could not convert the model: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    names = [name for name, _ in initial_types]
    for graph_input, name in zip(list(converted.graph.input), names, strict=False):
        if graph_input.name != name:  # skl2onnx makes names identifiers: "tenure (mois)" -> ...
            rename_input(converted.graph, graph_input.name, name)
    if columns is not None and not by_name:
        columns_into_matrix(converted.graph, columns)
    return bytes(converted.SerializeToString())


def _selects_columns(model: Any) -> bool:
    """Whether skl2onnx can give the model one input per column: a ColumnTransformer picks them
    by name (first, or as the pipeline's first step); any other estimator reads one matrix."""
    from sklearn.compose import ColumnTransformer

    first = model.steps[0][1] if hasattr(model, "steps") else model
    return isinstance(first, ColumnTransformer)


def columns_into_matrix(graph: Any, columns: Sequence[str]) -> None:
    """A graph reading one matrix made to read one input per column, named as the columns (in
    the order the model was fitted on): they are concatenated into the matrix it reads."""
    from onnx import TensorProto, helper

    (matrix,) = graph.input
    per_column = [
        helper.make_tensor_value_info(column, TensorProto.FLOAT, [None, 1]) for column in columns
    ]
    graph.node.insert(
        0, helper.make_node("Concat", list(columns), [matrix.name], axis=1, name="columns")
    )
    del graph.input[:]
    graph.input.extend(per_column)


def rename_input(graph: Any, old: str, new: str) -> None:
    """The graph input ``old`` named ``new``, and every node that reads it."""
    for value in graph.input:
        if value.name == old:
            value.name = new
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name == old:
                node.input[position] = new


def libraries(source: str) -> dict[str, str]:
    names = ["scikit-learn", "skl2onnx", "onnx"]
    if source in BOOSTERS:
        names += [source if source == "lightgbm" else "xgboost", "onnxmltools"]
    found = {name: _version(name) for name in names}
    if source == "xgboost" and found.get("xgboost") is None:
        found["xgboost"] = _version("xgboost-cpu")
    return {name: version for name, version in found.items() if version}


def convert_file(path: Path, frame: pd.DataFrame, features: Sequence[str]) -> Converted:
    """The named file as the stack imports it."""
    kind, loaded = load_model_file(path)
    digest = sha256_of(path)
    if kind == "onnx":
        return Converted(onnx=loaded, source="onnx", file_sha256=digest)
    source = source_of(loaded)
    onnx_bytes = convert_model(loaded, frame, features)
    return Converted(
        onnx=onnx_bytes,
        source=source,
        file_sha256=digest,
        libraries=libraries(source),
        original=loaded,
    )


def original_answers(model: Any, frame: pd.DataFrame, features: Sequence[str]) -> dict[str, Any]:
    """The original's answers on the holdout, for the stack's parity check: a classifier's
    ``classes``, ``labels`` and ``probabilities``, a regressor's ``values``."""
    inputs = (
        frame[list(features)]
        if model_columns(model, frame) is not None
        else (frame[list(features)].to_numpy(dtype=np.float32))
    )
    if is_classifier(model):
        return {
            "classes": np.asarray(model.classes_).tolist(),
            "labels": np.asarray(model.predict(inputs)).tolist(),
            "probabilities": np.asarray(model.predict_proba(inputs), dtype=float).tolist(),
        }
    return {"values": np.asarray(model.predict(inputs), dtype=float).ravel().tolist()}


def read_holdout(path: Path) -> pd.DataFrame:
    """The holdout as pandas reads it, the way the model most likely saw its training data."""
    import pandas as pd

    return pd.read_csv(io.BytesIO(path.read_bytes()))
