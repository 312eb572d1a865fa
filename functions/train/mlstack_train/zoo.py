"""The model zoo: one scikit-learn Pipeline per candidate, and its ONNX export.

Family names, default parameters and grids live in ``mlstack_core.candidates`` (pure data, so
Preprocess can expand them without importing scikit-learn); this module maps each family to its
estimator and preprocessing.

Every pipeline is ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])`` over one
table of columns ``[numeric..., categorical..., text...]`` with integer column indices
(``kinds.inputs.model_input``, a ``ModelInput``: typed blocks, indexed as an array). skl2onnx
maps integer indices positionally across the ONNX inputs ``numeric``, ``categorical`` and
``text`` (skl2onnx.common.utils.get_column_index), which gives the graph contract of
docs/internals.md.

A text column is already normalised (``kinds.text``: lower-cased words joined by single spaces)
when it reaches the pipeline, so its TF-IDF splits on spaces only, and the exported graph does
the same (``StringSplit`` on spaces, ``faster_text_branches``): the two tokenise identically
(docs/internals.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlstack_core.candidates import (
    CATALOG,
    ORDINAL_CATEGORY_FAMILIES,
    SPARSE_ONE_HOT_FAMILIES,
    expand_candidates,
)
from mlstack_core.tasks import CLASSIFICATION, REGRESSION

__all__ = [
    "ESTIMATORS",
    "build_pipeline",
    "expand_candidates",
    "export_onnx",
    "feature_importance",
    "grid_search",
]

# Opsets onnxruntime >= 1.20 (the serving layer's floor) runs.
TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}
CLASSIFIER_OUTPUTS = ("label", "probabilities")
MAX_IMPORTANCES = 20
REGRESSOR_OUTPUTS = ("variable",)

ESTIMATORS: dict[str, dict[str, Callable[..., Any]]] = {
    CLASSIFICATION: {
        "logistic_regression": LogisticRegression,
        "random_forest": RandomForestClassifier,
        "extra_trees": ExtraTreesClassifier,
        "hist_gradient_boosting": HistGradientBoostingClassifier,
        "gradient_boosting": GradientBoostingClassifier,
        "knn": KNeighborsClassifier,
    },
    REGRESSION: {
        "ridge": Ridge,
        "linear_regression": LinearRegression,
        "random_forest": RandomForestRegressor,
        "extra_trees": ExtraTreesRegressor,
        "hist_gradient_boosting": HistGradientBoostingRegressor,
        "gradient_boosting": GradientBoostingRegressor,
        "knn": KNeighborsRegressor,
    },
}
assert {t: set(f) for t, f in ESTIMATORS.items()} == {t: set(f) for t, f in CATALOG.items()}

# Distance- and gradient-based models need scaled inputs; trees do not.
_SCALED = frozenset({"logistic_regression", "ridge", "linear_regression", "knn"})
# HistGradientBoosting takes NaN natively. Imputing + scaling in front of it put values exactly on
# float32 bin thresholds and flipped labels against ONNX (docs/internals.md, Evaluate: parity).
_NATIVE_NAN = frozenset({"hist_gradient_boosting"})
# Families that take a categorical column as one ordinal code instead of one-hot columns. On a
# million rows a dense one-hot block (63 inputs instead of 9) made HistGradientBoosting's fit 8.5
# times slower and its memory 10 times larger (docs/large-path.md, "HistGradientBoosting's
# categorical encoding"). Its native categorical splits are not used: skl2onnx 1.20 writes every
# HistGradientBoosting node as BRANCH_LEQ on its numeric threshold (common/tree_ensemble.py,
# add_tree_to_attribute_pairs_hist_gradient_boosting) and ignores the categorical bitsets, so the
# graph would disagree with scikit-learn. The codes reach the trees as ordered numbers; an unseen
# or rare value encodes as NaN, which the trees route as missing (ORDINAL_CATEGORY_FAMILIES).
# Linear models keep one-hot columns, sparse: at 10 million rows a dense one-hot block of 57
# levels is 4.5 GB, its sparse form a tenth; the ColumnTransformer still returns a dense matrix
# when the whole is denser than its sparse_threshold (SPARSE_ONE_HOT_FAMILIES).


# Normalised texts hold words separated by single spaces and nothing else.
_SPACE_SEPARATED = r"[^ ]+"


def text_vectorizer(max_terms: int, ngrams: int) -> TfidfVectorizer:
    """TF-IDF of a normalised text column: its ``max_terms`` most frequent phrases of 1 to
    ``ngrams`` words. float32, as the graph computes it."""
    return TfidfVectorizer(
        lowercase=False,
        token_pattern=_SPACE_SEPARATED,
        ngram_range=(1, ngrams),
        max_features=max_terms,
        dtype=np.float32,
    )


# Categories kept per categorical feature. A one-hot encoding is dense (the forests' and linear
# models' estimators take a dense matrix), so a 300-level column on 300k rows took Train to 5 GB;
# rarer levels encode as an unseen value does (all zeros one-hot, missing as an ordinal code).
# skl2onnx cannot convert scikit-learn's own "infrequent" grouping.
MAX_ONE_HOT_LEVELS = 64


def frequent_categories(
    categorical: np.ndarray, limit: int = MAX_ONE_HOT_LEVELS
) -> list[list[str]]:
    """Per column, its ``limit`` most frequent values (ties by value), sorted."""
    kept = []
    for column in categorical.T:
        counts = Counter(column.tolist())
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
        kept.append(sorted(str(value) for value, _ in ranked))
    return kept


def build_pipeline(
    family: str,
    params: Mapping[str, Any],
    *,
    task: str,
    n_numeric: int,
    n_categorical: int,
    seed: int,
    categories: Sequence[Sequence[str]] | None = None,
    text: Sequence[Mapping[str, Any]] = (),
) -> Pipeline:
    """``text``: the schema's text feature entries (``max_terms``, ``ngrams``), in input order."""
    estimator = ESTIMATORS[task][family](**params)
    extra: dict[str, Any] = {}
    available = estimator.get_params()
    if "random_state" in available:
        extra["random_state"] = seed
    estimator.set_params(**extra)

    transformers: list[tuple[str, Any, list[int] | int]] = []
    if n_numeric:
        numeric: Any
        if family in _NATIVE_NAN:
            numeric = "passthrough"
        else:
            # keep_empty_features: a column all-missing in the training split keeps its slot.
            imputer = SimpleImputer(strategy="median", keep_empty_features=True)
            numeric = (
                Pipeline([("impute", imputer), ("scale", StandardScaler())])
                if family in _SCALED
                else imputer
            )
        transformers.append(("numeric", numeric, list(range(n_numeric))))
    if n_categorical:
        # "" is the missing category, a category like any other.
        kept = [list(c) for c in categories] if categories is not None else "auto"
        encoder: OneHotEncoder | OrdinalEncoder
        if family in ORDINAL_CATEGORY_FAMILIES:
            # float32, as the graph's codes are (skl2onnx casts a float encoder's output to
            # float32); the codes are small integers, exact either way.
            encoder = OrdinalEncoder(
                categories=kept,
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                dtype=np.float32,
            )
        else:
            # Unseen values encode as zeros.
            encoder = OneHotEncoder(
                categories=kept,
                handle_unknown="ignore",
                sparse_output=family in SPARSE_ONE_HOT_FAMILIES,
            )
        transformers.append(
            ("categorical", encoder, list(range(n_numeric, n_numeric + n_categorical)))
        )
    for j, entry in enumerate(text):
        # A scalar index hands the vectorizer the 1-D column of texts it expects.
        vectorizer = text_vectorizer(int(entry["max_terms"]), int(entry["ngrams"]))
        transformers.append((f"text_{j}", vectorizer, n_numeric + n_categorical + j))
    preprocess = ColumnTransformer(
        transformers,
        remainder="drop",
        sparse_threshold=0.3 if family in SPARSE_ONE_HOT_FAMILIES else 0.0,
    )
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


# scikit-learn scorer per spec metric. Lower-is-better metrics are negated by scikit-learn
# ("neg_..."); grid_search's caller flips them back so reported scores are in metric units.
SCORERS: dict[str, str] = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1_macro": "f1_macro",
    # mlstack_core.model_metrics.roc_auc is binary AUC or the unweighted one-vs-rest mean.
    "roc_auc": "roc_auc_ovr",
    "log_loss": "neg_log_loss",
    "r2": "r2",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
}
# Steps a search grid addresses: the estimator's parameters live under "model__".
_MODEL_STEP = "model"


def grid_search(
    pipeline: Pipeline,
    grid: Mapping[str, list[Any]],
    *,
    task: str,
    folds: int,
    metric: str,
    seed: int,
) -> GridSearchCV:
    """An unfitted search over the estimator's ``grid``, scored by the spec's metric on
    shuffled (stratified for classification) folds, refitting the best point on all rows.

    One job: a Lambda has at most a few vCPUs, and the local cloud runs Map iterations as
    threads of one process whose native pools are already limited to one thread.
    """
    splitter = (
        StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        if task == CLASSIFICATION
        else KFold(n_splits=folds, shuffle=True, random_state=seed)
    )
    return GridSearchCV(
        pipeline,
        param_grid={f"{_MODEL_STEP}__{name}": list(values) for name, values in grid.items()},
        scoring=SCORERS[metric],
        cv=splitter,
        refit=True,
        n_jobs=1,
        error_score=float("nan"),
    )


def search_params(search_params: Mapping[str, Any]) -> dict[str, Any]:
    """A GridSearchCV params dict ("model__max_depth") as estimator params ("max_depth")."""
    prefix = f"{_MODEL_STEP}__"
    return {name.removeprefix(prefix): value for name, value in search_params.items()}


def float32_thresholds(pipeline: Pipeline) -> int:
    """Move each HistGradientBoosting split threshold down to the largest float32 not above it,
    in place; returns how many moved.

    HistGradientBoosting compares float64 inputs with float64 thresholds, often midpoints of two
    neighbouring float32 values; skl2onnx rounds each threshold to the nearest float32 for this
    family (common/tree_ensemble.py passes no adjustment), so a value equal to the rounded-up
    threshold goes left in the graph and right in scikit-learn. On 20,000 rows of 200
    neighbouring float32 values half the rows differed; on a 10,000,000-row table the export
    failed parity. Every input the estimator sees is float32-exact (the graph's numeric input is
    float32, ordinal codes are small integers), and for such x, ``x <= t`` exactly when ``x`` is
    at most the largest float32 not above ``t``: the moved thresholds change no scikit-learn
    answer and make the graph's exact."""
    predictors = getattr(pipeline.named_steps[_MODEL_STEP], "_predictors", None)
    moved = 0
    for per_iteration in predictors or []:
        for predictor in per_iteration:
            thresholds = predictor.nodes["num_threshold"]
            lowered = thresholds.astype(np.float32)
            above = lowered.astype(np.float64) > thresholds
            lowered[above] = np.nextafter(lowered[above], np.float32(-np.inf))
            moved += int(np.count_nonzero(lowered.astype(np.float64) != thresholds))
            predictor.nodes["num_threshold"] = lowered.astype(np.float64)
    return moved


def export_onnx(
    pipeline: Pipeline,
    *,
    task: str,
    n_numeric: int,
    n_categorical: int,
    n_text: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> onnx.ModelProto:
    """The fitted pipeline as ONNX with the contract's input and output names."""
    initial_types: list[tuple[str, Any]] = []
    if n_numeric:
        initial_types.append(("numeric", FloatTensorType([None, n_numeric])))
    if n_categorical:
        initial_types.append(("categorical", StringTensorType([None, n_categorical])))
    if n_text:
        initial_types.append(("text", StringTensorType([None, n_text])))
    estimator = pipeline.named_steps["model"]
    options: dict[int, dict[str, Any]] = {
        # The texts are normalised already: split on spaces, exactly as the pipeline did.
        id(vectorizer): {"separators": [" "]}
        for vectorizer in pipeline.named_steps["preprocess"].named_transformers_.values()
        if isinstance(vectorizer, TfidfVectorizer)
    }
    model_options: dict[str, Any] = {}
    if task == CLASSIFICATION:
        model_options["zipmap"] = False
    if isinstance(estimator, KNeighborsClassifier | KNeighborsRegressor):
        # The default export computes distances with generic ops: 5-10x slower than
        # scikit-learn (docs/performance.md); the CDist kernel is faster at every batch size.
        model_options["optim"] = "cdist"
    if model_options:
        options[id(estimator)] = model_options
    model = convert_sklearn(
        pipeline,
        name="mlstack",
        initial_types=initial_types,
        options=options,
        target_opset=TARGET_OPSET,
    )
    expected = CLASSIFIER_OUTPUTS if task == CLASSIFICATION else REGRESSOR_OUTPUTS
    outputs = [o.name for o in model.graph.output]
    if len(outputs) != len(expected):
        raise ValueError(f"ONNX graph has outputs {outputs}, expected {list(expected)}")
    for old, new in zip(outputs, expected, strict=True):
        if old != new:
            _rename(model.graph, old, new)
    faster_text_branches(model)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


# StringSplit is in the standard opset from version 20 on.
_STRING_SPLIT_OPSET = 20


def faster_text_branches(model: onnx.ModelProto) -> int:
    """Rewrite, in place, each text column's branch of an exported graph with standard operators
    that compute the same TF-IDF rows faster; returns the number of nodes replaced.

    skl2onnx writes a text column as ``Tokenizer`` → ``Flatten`` → ``TfIdfVectorizer`` (counts)
    → ``Mul`` (idf weights) → ``Normalizer`` (L2). On 1,000 normalised notes of 20 words
    (onnxruntime, one thread; docs/performance.md, "Datetime and text columns") that branch took
    7 ms, four times the rest of a logistic regression's request; rewritten, 2.4 ms. Two of its
    nodes were slow for what they do:

    - ``Tokenizer`` (com.microsoft, 2.2 ms) treats its separators as regular expressions.
      ``StringSplit`` without a delimiter splits on runs of spaces, as the vectorizer's
      ``token_pattern`` ``[^ ]+`` does (0.4 ms). Both pad a row's shorter lists (``#`` and
      ``""``), which no term of the vocabulary is: normalised words have two or more word
      characters.
    - ``Normalizer`` (ai.onnx.ml, 3.1 ms) for the L2 norm. ``LpNormalization(p=2, axis=1)``
      took 1.0 ms, and ``ReduceSumSquare`` or ``ReduceL2`` 0.8 ms for the norms alone; ``Mul``
      (the rows by themselves) → ``ReduceSum`` over each row → ``Sqrt``, and ``Div`` of the rows
      by the norm take 0.45 ms in all. A row without a known word has norm 0 and stays all
      zeros, as in scikit-learn: the divisor is ``Max(norm, smallest normal float32)``, and any
      other row's norm is at least 1 (its largest entry, a count times an idf weight, both at
      least 1).

    The ``Mul`` by the idf weights stays (0.2 ms): ``TfIdfVectorizer``'s TFIDF mode could apply
    them itself, but onnxruntime changed which index its ``weights`` follow (1.20 weighs each
    output column, 1.32 each pool entry: the same only when the two orders agree), and the stack
    runs on both.

    Only nodes of a branch that starts at a ``TfIdfVectorizer`` and has exactly this shape are
    replaced; anything else is left as skl2onnx wrote it. The gate's parity check (Evaluate
    scores the export against scikit-learn on the holdout) proves every model, and
    tests/unit/test_text_graph.py the rewrite on any text.
    """
    reduce_axes_opset = 13  # ReduceSum reads its axes from an input from version 13 on
    graph = model.graph
    nodes = list(graph.node)
    producer = {name: at for at, node in enumerate(nodes) for name in node.output}
    consumers: dict[str, list[int]] = {}
    for at, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(at)

    def only_consumer(name: str, op_type: str) -> int | None:
        found = consumers.get(name, [])
        return found[0] if len(found) == 1 and nodes[found[0]].op_type == op_type else None

    def producer_of(name: str, op_type: str) -> int | None:
        at = producer.get(name)
        return at if at is not None and nodes[at].op_type == op_type else None

    taken = (
        {node.name for node in nodes}
        | {name for node in nodes for name in node.output}
        | {tensor.name for tensor in graph.initializer}
        | {value.name for value in graph.input}
    )

    def unique(name: str) -> str:
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    constants: dict[str, str] = {}  # the norm's constants, added once: role → initializer name

    def constant(role: str, value: np.ndarray) -> str:
        if role not in constants:
            constants[role] = unique(f"text_norm_{role}")
            graph.initializer.append(onnx.numpy_helper.from_array(value, constants[role]))
        return constants[role]

    replaced: dict[int, list[onnx.NodeProto]] = {}  # position in the graph → the nodes there
    for vectorizer in nodes:
        if vectorizer.op_type != "TfIdfVectorizer" or vectorizer.domain not in ("", "ai.onnx"):
            continue
        flatten = producer_of(vectorizer.input[0], "Flatten")
        tokenizer = (
            producer_of(nodes[flatten].input[0], "Tokenizer") if flatten is not None else None
        )
        if (
            tokenizer is not None
            and opset >= _STRING_SPLIT_OPSET
            and _splits_on_spaces_only(nodes[tokenizer])
            and only_consumer(nodes[tokenizer].output[0], "Flatten") == flatten
        ):
            old = nodes[tokenizer]
            replaced[tokenizer] = [
                onnx.helper.make_node(
                    "StringSplit",
                    [old.input[0]],
                    [old.output[0], unique(f"{old.output[0]}_counts")],
                    name=unique(f"StringSplit_{old.name}"),
                )
            ]
        weighting = only_consumer(vectorizer.output[0], "Mul")
        normalizer = (
            only_consumer(nodes[weighting].output[0], "Normalizer")
            if weighting is not None
            else None
        )
        if (
            normalizer is None
            or _attribute(nodes[normalizer], "norm") != b"L2"
            or opset < reduce_axes_opset
        ):
            continue
        old = nodes[normalizer]
        (rows,), (normalised,) = old.input, old.output
        axes = constant("axes", np.array([1], dtype=np.int64))
        smallest = constant("smallest", np.array(np.finfo(np.float32).tiny, dtype=np.float32))
        squares, sums, norms, divisors = (
            unique(f"{normalised}_{step}") for step in ("squares", "sums", "norms", "divisors")
        )
        replaced[normalizer] = [
            onnx.helper.make_node(
                "Mul", [rows, rows], [squares], name=unique(f"Square_{old.name}")
            ),
            onnx.helper.make_node(
                "ReduceSum", [squares, axes], [sums], name=unique(f"Sum_{old.name}"), keepdims=1
            ),
            onnx.helper.make_node("Sqrt", [sums], [norms], name=unique(f"Sqrt_{old.name}")),
            onnx.helper.make_node(
                "Max", [norms, smallest], [divisors], name=unique(f"Max_{old.name}")
            ),
            onnx.helper.make_node(
                "Div", [rows, divisors], [normalised], name=unique(f"Div_{old.name}")
            ),
        ]
    # The new nodes stand where the node they replace stood: the graph stays sorted.
    if replaced:
        rewritten = [new for at, node in enumerate(nodes) for new in replaced.get(at, [node])]
        del graph.node[:]
        graph.node.extend(rewritten)
    # Without its Tokenizers the graph may no longer need onnxruntime's own operators.
    used = {node.domain for node in graph.node} | {"", "ai.onnx"}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return len(replaced)


def _attribute(node: onnx.NodeProto, name: str) -> Any:
    """The value of ``node``'s attribute ``name``, or None."""
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return None


def _splits_on_spaces_only(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is a com.microsoft ``Tokenizer`` that splits on single spaces and keeps
    every piece: what ``export_onnx`` asks of a text column."""
    return (
        node.op_type == "Tokenizer"
        and node.domain == "com.microsoft"
        and _attribute(node, "separators") == [b" "]
        and _attribute(node, "tokenexp") is None
        and _attribute(node, "mark") in (None, 0)
        and _attribute(node, "mincharnum") in (None, 1)
    )


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it is produced or consumed."""
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]
    for value in [*graph.output, *graph.value_info]:
        if value.name == old:
            value.name = new


def feature_importance(
    pipeline: Pipeline, numeric: list[str], categorical: list[str], text: Sequence[str] = ()
) -> dict[str, Any] | None:
    """The family's own importance per original column, or None when it has none (knn,
    HistGradientBoosting). Trees: impurity importance; linear models: the absolute coefficient
    on the standardised input (averaged over classes). A one-hot encoded column gets the sum of
    its categories' importances (an ordinal-encoded one is a single input), a text column the sum
    of its terms', and ``numeric`` names the column each numeric input belongs to (a datetime
    column's parts all name it). Normalised to sum to 1."""
    import numpy as np

    estimator = pipeline.named_steps[_MODEL_STEP]
    if hasattr(estimator, "feature_importances_"):
        kind, raw = "impurity", np.asarray(estimator.feature_importances_, dtype=float)
    elif hasattr(estimator, "coef_"):
        coef = np.abs(np.atleast_2d(np.asarray(estimator.coef_, dtype=float)))
        kind, raw = "coefficient", coef.mean(axis=0)
    else:
        return None
    widths = [1] * len(numeric)
    fitted = pipeline.named_steps["preprocess"].named_transformers_
    if categorical:
        encoder = fitted["categorical"]
        if isinstance(encoder, OrdinalEncoder):
            widths += [1] * len(encoder.categories_)
        else:
            widths += [len(c) for c in encoder.categories_]
    widths += [len(fitted[f"text_{j}"].vocabulary_) for j in range(len(text))]
    if sum(widths) != raw.size:
        return None
    per_column: dict[str, float] = {}
    start = 0
    for name, width in zip([*numeric, *categorical, *text], widths, strict=True):
        per_column[name] = per_column.get(name, 0.0) + float(raw[start : start + width].sum())
        start += width
    total = sum(per_column.values()) or 1.0
    ranked = sorted(per_column.items(), key=lambda item: -item[1])
    # The top MAX_IMPORTANCES only: every candidate's result travels in the execution state.
    return {
        "kind": kind,
        "features": [
            {"name": n, "importance": round(v / total, 6)} for n, v in ranked[:MAX_IMPORTANCES]
        ],
        "features_total": len(ranked),
    }
