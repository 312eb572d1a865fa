"""Tree-ensemble defaults against the target "no zoo model serves slower than scikit-learn".

    .venv/bin/python benchmarks/tree_defaults.py               # the pruned grid (~6 min)
    .venv/bin/python benchmarks/tree_defaults.py --quick       # previous vs chosen (~2 min)
    .venv/bin/python benchmarks/tree_defaults.py --full        # the whole grid (~35 min)
    .venv/bin/python benchmarks/tree_defaults.py --ort-checks  # only the onnxruntime checks below
    .venv/bin/python benchmarks/tree_defaults.py --train-rows 100000 --only "d10 l2 n100|mln512"

For each configuration one production Pipeline (``zoo.build_pipeline``) is fitted on 20,000 rows of
benchmarks/serving.py's mixed data (16 numeric + 4 categorical columns with missing values) and
exported with ``zoo.export_onnx``. Classification predicts serving.py's 3 classes; regression
predicts the latent score those classes are cut from (``latent_score``, checked against the labels).
Quality is measured on a separate 5,000-row holdout (accuracy, r2). Then, in one thread each and
interleaved (serving.interleaved: alternating blocks, medians), raw ``session.run`` (the serving
layer's session options) is timed against ``Pipeline.predict_proba`` (classification) or
``Pipeline.predict`` (regression) on the object matrix, at 1, 100, 1,000 and 10,000 rows.

The table reports ORT/scikit-learn time ratios: below 1 means onnxruntime is faster. A ratio
measured within ``--band`` of 1 is measured again (``--repeats`` more passes); the table shows the
median of the passes and, in brackets, their range. The verdict "ok" needs the median ratio below 1
at every batch size; "ok+" also needs every single pass below 1; "robust" also needs the tree
operator alone (column trees@10k: the graph's TreeEnsemble* node on the preprocessed matrix against
the fitted estimator alone, 10,000 rows) below 1, i.e. onnxruntime ahead without the help of its
cheaper preprocessing (about 4 ms against the ColumnTransformer's 15 ms at 10,000 rows here).

``--ort-checks`` (also part of ``--full``) answers two side questions: can skl2onnx emit the
``ai.onnx.ml`` opset-5 ``TreeEnsemble`` operator, and does onnxruntime run it faster (the forest is
converted by hand, see ``to_tree_ensemble_v5``); and does onnxruntime expose any session or run
configuration key for tree ensembles (searched in the shipped binaries).

Why one file of this size: a benchmark is run and read on its own, from one command.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy and scikit-learn size their thread pools
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np

# serving also puts functions/train and layers/core on sys.path (zoo, mlstack_core).
from serving import BATCHES, CLASSES, N_CATEGORICAL, N_NUMERIC, interleaved, make_data

from mlstack_core.tasks import CLASSIFICATION, REGRESSION

TRAIN_ROWS, HOLDOUT_ROWS = 20_000, 5_000
SEEDS = {"train": 1, "holdout": 2, "timing": 3}
FORESTS = ("random_forest", "extra_trees")
# Seconds of interleaved timing per batch size and pass (the 10,000-row ratio decides).
BUDGETS = {1: 0.15, 100: 0.2, 1_000: 0.4, 10_000: 1.2}
QUICK_BUDGETS = {1: 0.1, 100: 0.1, 1_000: 0.25, 10_000: 0.8}


# data ---------------------------------------------------------------------------------------------
def latent_score(n: int, seed: int) -> np.ndarray:
    """The noisy score serving.make_data(n, seed) cuts its 3 classes from: the same random draws
    in the same order, so row i is row i of make_data's matrix (checked in ``load_data``)."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, N_NUMERIC))
    codes = rng.integers(0, 4, (n, N_CATEGORICAL))  # make_data's category indices
    score = numeric[:, 0] + 0.5 * numeric[:, 1] ** 2 - numeric[:, 2] * numeric[:, 3]
    score += (codes[:, 0] == 1) * 1.0 + rng.normal(0, 0.7, n)  # codes 1 == "c0_1"
    return score


@dataclass
class Split:
    matrix: np.ndarray
    labels: np.ndarray
    score: np.ndarray

    def target(self, task: str) -> np.ndarray:
        return self.labels if task == CLASSIFICATION else self.score


def load_data(timing_rows: int, train_rows: int = TRAIN_ROWS) -> dict[str, Split]:
    splits = {}
    for name, rows in (("train", train_rows), ("holdout", HOLDOUT_ROWS), ("timing", timing_rows)):
        _, matrix, labels = make_data(rows, SEEDS[name])
        score = latent_score(rows, SEEDS[name])
        cut = np.array(CLASSES, dtype=object)[np.digitize(score, [-0.3, 1.0])]
        if not np.array_equal(cut, labels):
            raise SystemExit("latent_score no longer matches serving.make_data; update it")
        splits[name] = Split(matrix, labels, score)
    return splits


def feeds_for(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """The ONNX inputs the serving contract builds (``build_inputs``): float32 with NaN, and
    object strings with "" for missing."""
    return {
        "numeric": np.ascontiguousarray(matrix[:, :N_NUMERIC].astype(np.float32)),
        "categorical": np.ascontiguousarray(matrix[:, N_NUMERIC:]),
    }


def session_for(model_bytes: bytes) -> Any:
    """A session with the serving contract's options (``session_options``)."""
    import onnxruntime as ort

    from mlstack_core.contract import session_options
    from mlstack_core.settings import ServingSettings

    options = session_options(ServingSettings.from_env())
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


# configurations -----------------------------------------------------------------------------------
@dataclass
class Config:
    family: str
    task: str
    params: dict[str, Any]
    passes: int = 1  # timing passes at every batch size, whatever the ratios

    @property
    def label(self) -> str:
        p = self.params
        if self.family in FORESTS:
            bound = (
                f"mln{p['max_leaf_nodes']}"
                if p.get("max_leaf_nodes")
                else f"d{p.get('max_depth') or '-'}"
            )
            return f"{bound} l{p.get('min_samples_leaf', 1)} n{p['n_estimators']}"
        if self.family == "gradient_boosting":
            return f"d{p['max_depth']} n{p['n_estimators']} lr{p['learning_rate']}"
        return "defaults"

    @property
    def key(self) -> str:
        """The parameters without the family and task, to compare a setting across groups."""
        return self.label


def forest(family: str, task: str, depth: int | None, leaf: int, trees: int = 100) -> Config:
    from mlstack_core.candidates import CATALOG

    params = {
        **CATALOG[task][family].defaults,
        "n_estimators": trees,
        "max_depth": depth,
        "min_samples_leaf": leaf,
        "max_leaf_nodes": None,
    }
    return Config(family, task, params)


def leaf_budget(family: str, task: str, leaves: int, trees: int = 100) -> Config:
    """A leaf budget instead of a depth bound: best-first growth, no depth limit, leaf size 1."""
    config = forest(family, task, None, 1, trees)
    config.params["max_leaf_nodes"] = leaves
    return config


def catalog_defaults(family: str, task: str, passes: int = 1) -> Config:
    from mlstack_core.candidates import CATALOG

    return Config(family, task, dict(CATALOG[task][family].defaults), passes)


def proposed(family: str, task: str) -> Config:
    """The chosen forest defaults (candidates._FOREST_DEFAULTS): a leaf budget (a hard cap of
    51 x 1,023 nodes, whatever the training size) instead of a depth bound, and 51 trees (odd, so
    two classes never tie; measured at 50 trees, the same speed)."""
    return catalog_defaults(family, task)


def gradient_boosting(depth: int, trees: int, rate: float = 0.1, passes: int = 1) -> Config:
    params = {"n_estimators": trees, "max_depth": depth, "learning_rate": rate}
    return Config("gradient_boosting", CLASSIFICATION, params, passes)


def configs(mode: str) -> list[Config]:
    out: list[Config] = []
    groups = [(f, t) for f in FORESTS for t in (CLASSIFICATION, REGRESSION)]
    if mode == "quick":
        for family, task in groups:
            out += [forest(family, task, 10, 2), proposed(family, task)]  # previous, chosen
        out.append(gradient_boosting(3, 100, passes=2))  # the previous default
        out.append(catalog_defaults("gradient_boosting", CLASSIFICATION, passes=2))
        out.append(catalog_defaults("hist_gradient_boosting", CLASSIFICATION))
        return out
    if mode == "full":
        for family, task in groups:
            for trees in (100, 50):
                for depth in (8, 10, 12, None):
                    for leaf in (1, 2, 5, 10):
                        out.append(forest(family, task, depth, leaf, trees))
            out += [leaf_budget(family, task, leaves) for leaves in (64, 128, 256, 512)]
            out += [leaf_budget(family, task, leaves, 50) for leaves in (512, 1024, 2048)]
        out.append(catalog_defaults("gradient_boosting", CLASSIFICATION, passes=3))
        out += [gradient_boosting(d, n) for d, n in ((2, 100), (3, 50), (4, 100), (2, 50), (4, 50))]
        out += [gradient_boosting(3, 50, 0.2), gradient_boosting(4, 50, 0.2)]
        out.append(catalog_defaults("gradient_boosting", REGRESSION, passes=2))
        out += [catalog_defaults("hist_gradient_boosting", t) for t in (CLASSIFICATION, REGRESSION)]
        return out
    # default (pruned): the previous default (d10 l2 n100); the leaf axis at depth 10 and 100 trees;
    # the depth axis at leaf 5 and 50 trees; 50 trees at the previous bounds; leaf budgets (the
    # chosen default: 512).
    for family, task in groups:
        out.append(forest(family, task, 10, 2))
        out += [forest(family, task, 10, leaf) for leaf in (1, 10)]
        out += [forest(family, task, depth, 5, 50) for depth in (8, 12, None)]
        out.append(forest(family, task, 10, 2, 50))
        out.append(proposed(family, task))
        out.append(leaf_budget(family, task, 1024 if task == CLASSIFICATION else 2048, 50))
    out.append(gradient_boosting(3, 100, passes=3))  # the previous default
    out += [catalog_defaults("gradient_boosting", CLASSIFICATION), gradient_boosting(3, 50, 0.2)]
    out += [catalog_defaults("hist_gradient_boosting", t) for t in (CLASSIFICATION, REGRESSION)]
    return out


# measurement --------------------------------------------------------------------------------------
@dataclass
class Result:
    config: Config
    onnx_mb: float
    nodes: int
    score: float
    onnx_score: float
    fit_s: float
    ort_ms: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    sklearn_ms: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    # the tree operator alone against the estimator alone, on the preprocessed 10,000 rows
    tree_ratios: list[float] = field(default_factory=list)

    def ratios(self, n: int) -> list[float]:
        return [o / s for o, s in zip(self.ort_ms[n], self.sklearn_ms[n], strict=True)]

    def ratio(self, n: int) -> float:
        return statistics.median(self.ratios(n))

    @property
    def ok(self) -> bool:
        return all(self.ratio(n) < 1 for n in self.ort_ms)

    @property
    def ok_every_pass(self) -> bool:
        return all(max(self.ratios(n)) < 1 for n in self.ort_ms)

    @property
    def tree_ratio(self) -> float:
        return statistics.median(self.tree_ratios) if self.tree_ratios else float("nan")

    @property
    def robust(self) -> bool:
        """No slower in every pass, and the tree part alone no slower either: then onnxruntime's
        lead in preprocessing is not what keeps it ahead."""
        return self.ok_every_pass and self.tree_ratio < 1

    @property
    def verdict(self) -> str:
        if self.robust:
            return "robust"
        return "ok+" if self.ok_every_pass else "ok" if self.ok else "SLOWER"


def tree_nodes(estimator: Any) -> int:
    if hasattr(estimator, "estimators_"):  # forests; gradient boosting: [stages, classes]
        return int(sum(t.tree_.node_count for t in np.ravel(estimator.estimators_)))
    if hasattr(estimator, "_predictors"):  # HistGradientBoosting
        return int(sum(len(p.nodes) for stage in estimator._predictors for p in stage))
    return 0


def measure(
    config: Config, data: dict[str, Split], budgets: dict[int, float], repeats: int, band: float
) -> Result:
    from sklearn.metrics import accuracy_score, r2_score

    from mlstack_train import zoo

    task = config.task
    started = time.perf_counter()
    pipeline = zoo.build_pipeline(
        config.family,
        config.params,
        task=task,
        n_numeric=N_NUMERIC,
        n_categorical=N_CATEGORICAL,
        seed=0,
    )
    pipeline.fit(data["train"].matrix, data["train"].target(task))
    fit_s = time.perf_counter() - started
    graph = zoo.export_onnx(pipeline, task=task, n_numeric=N_NUMERIC, n_categorical=N_CATEGORICAL)
    model = graph.SerializeToString()
    session = session_for(model)

    holdout = data["holdout"]
    outputs = session.run(None, feeds_for(holdout.matrix))
    if task == CLASSIFICATION:
        score = accuracy_score(holdout.labels, pipeline.predict(holdout.matrix))
        onnx_score = accuracy_score(holdout.labels, outputs[0])
    else:
        score = r2_score(holdout.score, pipeline.predict(holdout.matrix))
        onnx_score = r2_score(holdout.score, outputs[0].ravel())
    result = Result(config, len(model) / 1e6, tree_nodes(pipeline[-1]), score, onnx_score, fit_s)

    timing = data["timing"]
    method = pipeline.predict_proba if task == CLASSIFICATION else pipeline.predict

    def one_pass(n: int) -> None:
        feeds, part = feeds_for(timing.matrix[:n]), timing.matrix[:n]
        times = interleaved(
            {
                "ort": lambda: session.run(None, feeds),
                "sklearn": lambda: method(part),
            },
            budgets[n],
        )
        result.ort_ms[n].append(times["ort"] * 1e3)
        result.sklearn_ms[n].append(times["sklearn"] * 1e3)

    for n in BATCHES:
        for _ in range(config.passes):
            one_pass(n)
    for n in BATCHES:  # borderline ratios: measure again
        if config.passes == 1 and 1 / band <= result.ratio(n) <= band:
            for _ in range(repeats):
                one_pass(n)

    # The tree operator alone (the graph's TreeEnsemble* node on the preprocessed matrix) against
    # the estimator alone, at the largest batch: the model without the preprocessing, where
    # onnxruntime is ~4x faster than the ColumnTransformer on this data (see the report).
    tree = next(n for n in graph.graph.node if n.op_type.startswith("TreeEnsemble"))
    largest = max(BATCHES)
    dense = pipeline[0].transform(timing.matrix[:largest])
    tree_feeds = {"X": np.ascontiguousarray(dense.astype(np.float32))}
    tree_session = session_for(as_one_node(tree, dense.shape[1]).SerializeToString())
    estimator = pipeline[-1]
    tree_method = estimator.predict_proba if task == CLASSIFICATION else estimator.predict
    for _ in range(config.passes):
        times = interleaved(
            {
                "ort": lambda: tree_session.run(None, tree_feeds),
                "sklearn": lambda: tree_method(dense),
            },
            budgets[largest] * 0.7,
        )
        result.tree_ratios.append(times["ort"] / times["sklearn"])
    return result


# reporting ----------------------------------------------------------------------------------------
HEADER = (
    f"{'family':22} {'task':4} {'config':14} {'ONNX MB':>7} {'nodes':>8} {'score':>6}  "
    + "  ".join(f"{'ORT/skl @' + format(n, ','):>19}" for n in BATCHES)
    + f"  {'skl ms@10k':>10}  {'trees@10k':>9}  verdict"
)


def ratio_text(result: Result, n: int) -> str:
    values = result.ratios(n)
    text = f"{result.ratio(n):.2f}"
    if len(values) > 1:
        text += f" [{min(values):.2f}-{max(values):.2f}]"
    return f"{text:>19}"


def row_text(result: Result) -> str:
    c = result.config
    skl = statistics.median(result.sklearn_ms[10_000]) if 10_000 in result.sklearn_ms else 0.0
    text = (
        f"{c.family:22} {c.task[:4]:4} {c.label:14} {result.onnx_mb:7.2f} {result.nodes:8d} "
        f"{result.score:6.4f}  "
        + "  ".join(ratio_text(result, n) for n in BATCHES)
        + f"  {skl:10.1f}  {result.tree_ratio:9.2f}  {result.verdict}"
    )
    if abs(result.score - result.onnx_score) > 0.005:
        text += f"  (ONNX score {result.onnx_score:.4f})"
    return text


CRITERIA: dict[str, Callable[[Result], bool]] = {
    "ok (median ratio < 1 at every batch)": lambda r: r.ok,
    "ok+ (every pass < 1)": lambda r: r.ok_every_pass,
    "robust (ok+, and the tree operator alone < 1 at 10k)": lambda r: r.robust,
}


def recommend(results: Sequence[Result]) -> list[str]:
    """Per criterion: per family and task the best-scoring configuration that meets it, and the
    forest settings (same parameters) meeting it in every forest group, by least score lost."""
    lines = []
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in results:
        groups[(r.config.family, r.config.task)].append(r)
    forest_groups = [g for g in groups if g[0] in FORESTS]
    for criterion, meets in CRITERIA.items():
        lines.append(f"{criterion}:")
        losses: dict[str, list[float]] = defaultdict(list)
        for (family, task), rows in groups.items():
            best = max(r.score for r in rows)
            pick = max((r for r in rows if meets(r)), key=lambda r: r.score, default=None)
            text = f"  {family:22} {task[:4]:4} best score {best:.4f}; "
            if pick is None:
                text += "no configuration meets it"
            else:
                text += (
                    f"best meeting it: {pick.config.label} {pick.score:.4f} "
                    f"(-{best - pick.score:.4f}), 10k ratio {pick.ratio(10_000):.2f}, "
                    f"trees alone {pick.tree_ratio:.2f}"
                )
            lines.append(text)
            if (family, task) in forest_groups:
                for r in rows:
                    losses[r.config.key].append(best - r.score if meets(r) else float("inf"))
        shared = [
            (key, values)
            for key, values in losses.items()
            if len(values) == len(forest_groups) and all(v != float("inf") for v in values)
        ]
        if len(forest_groups) > 1:
            ranked = sorted(shared, key=lambda kv: sum(kv[1]))[:4]
            names = ", ".join(f"{f}/{t[:4]}" for f, t in forest_groups)
            lines.append(f"  one forest setting for {names}:")
            for key, values in ranked:
                lines.append(
                    f"    {key:14} score lost per group "
                    + " ".join(f"{v:.4f}" for v in values)
                    + f" (sum {sum(values):.4f})"
                )
            if not ranked:
                lines.append("    none meets it in every group")
    return lines


def compare(results: Sequence[Result]) -> list[str]:
    """The previous defaults against the chosen ones, per family and task."""
    pairs = {family: ("d10 l2 n100", "mln512 l1 n51") for family in FORESTS} | {
        "gradient_boosting": ("d3 n100 lr0.1", "d4 n50 lr0.1")
    }
    found = {(r.config.family, r.config.task, r.config.key): r for r in results}
    lines = []
    for family, task in dict.fromkeys((r.config.family, r.config.task) for r in results):
        if family not in pairs:
            continue
        previous, new = (found.get((family, task, key)) for key in pairs[family])
        if previous is None or new is None:
            continue
        lines.append(
            f"  {family:22} {task[:4]:4} score {previous.score:.4f} -> {new.score:.4f} "
            f"({new.score - previous.score:+.4f}); ORT/skl@10k {previous.ratio(10_000):.2f} -> "
            f"{new.ratio(10_000):.2f} (worst pass {max(new.ratios(10_000)):.2f}, trees alone "
            f"{new.tree_ratio:.2f}); nodes {previous.nodes} -> {new.nodes}; ONNX "
            f"{previous.onnx_mb:.1f} -> {new.onnx_mb:.1f} MB; "
            f"fit {previous.fit_s:.1f} -> {new.fit_s:.1f} s"
        )
    return lines


# onnxruntime checks -------------------------------------------------------------------------------
_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4}


def to_tree_ensemble_v5(node: Any, n_features: int) -> Any:
    """A TreeEnsembleClassifier/Regressor node as a one-node model with the ai.onnx.ml opset-5
    ``TreeEnsemble`` operator. Its leaves carry one target each, so a classifier's trees are
    repeated once per class (a random-forest leaf votes for every class)."""
    from onnx import TensorProto, helper, numpy_helper

    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    classifier = node.op_type == "TreeEnsembleClassifier"
    prefix = "class_" if classifier else "target_"
    classes = a.get("classlabels_strings") or a.get("classlabels_int64s") or []
    n_targets = len(classes) if classifier else int(a["n_targets"])
    index = {
        (t, i): k
        for k, (t, i) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"], strict=True))
    }
    weights: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
    for t, i, target, w in zip(
        a[prefix + "treeids"],
        a[prefix + "nodeids"],
        a[prefix + "ids"],
        a[prefix + "weights"],
        strict=True,
    ):
        weights[(t, i)][target] = weights[(t, i)].get(target, 0.0) + w
    modes = [m.decode() for m in a["nodes_modes"]]
    missing = a.get("nodes_missing_value_tracks_true") or [0] * len(modes)
    nodes: dict[str, list[Any]] = defaultdict(list)
    leaf_targets: list[int] = []
    leaf_weights: list[float] = []

    def build(tree: int, node_id: int, target: int) -> tuple[int, int]:
        """(index, is_leaf) of the subtree, appended depth-first without recursion limits."""
        k = index[(tree, node_id)]
        if modes[k] == "LEAF":
            leaf_targets.append(target)
            leaf_weights.append(weights[(tree, node_id)].get(target, 0.0))
            return len(leaf_targets) - 1, 1
        at = len(nodes["feature"])
        for name, value in (
            ("feature", a["nodes_featureids"][k]),
            ("split", a["nodes_values"][k]),
            ("mode", _MODES[modes[k]]),
            ("missing", missing[k]),
            ("true", 0),
            ("false", 0),
            ("true_leaf", 0),
            ("false_leaf", 0),
        ):
            nodes[name].append(value)
        nodes["true"][at], nodes["true_leaf"][at] = build(tree, a["nodes_truenodeids"][k], target)
        nodes["false"][at], nodes["false_leaf"][at] = build(
            tree, a["nodes_falsenodeids"][k], target
        )
        return at, 0

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
    roots = []
    for target in range(n_targets if classifier else 1):
        for tree in sorted(set(a["nodes_treeids"])):
            at, is_leaf = build(tree, 0, target)
            if is_leaf:
                raise ValueError("a tree that is a single leaf")
            roots.append(at)
    aggregate = a.get("aggregate_function", b"SUM")
    v5 = helper.make_node(
        "TreeEnsemble",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=n_targets,
        aggregate_function={"AVERAGE": 0, "SUM": 1}[aggregate.decode()],
        post_transform=0,
        tree_roots=roots,
        nodes_featureids=nodes["feature"],
        nodes_splits=numpy_helper.from_array(np.array(nodes["split"], np.float32), "splits"),
        nodes_modes=numpy_helper.from_array(np.array(nodes["mode"], np.uint8), "modes"),
        nodes_truenodeids=nodes["true"],
        nodes_falsenodeids=nodes["false"],
        nodes_trueleafs=nodes["true_leaf"],
        nodes_falseleafs=nodes["false_leaf"],
        nodes_missing_value_tracks_true=nodes["missing"],
        leaf_targetids=leaf_targets,
        leaf_weights=numpy_helper.from_array(np.array(leaf_weights, np.float32), "weights"),
    )
    return _one_node_model(v5, n_features, [("Y", TensorProto.FLOAT, n_targets)], ml_opset=5)


def _one_node_model(
    node: Any, n_features: int, outputs: Iterable[tuple[str, int, int | None]], ml_opset: int
) -> Any:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [node],
        "tree",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info(name, kind, [None] if width is None else [None, width])
            for name, kind, width in outputs
        ],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", ml_opset)],
    )


def as_one_node(node: Any, n_features: int) -> Any:
    """The zoo's tree node alone, reading the preprocessed float matrix."""
    from onnx import TensorProto, helper

    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    if node.op_type == "TreeEnsembleClassifier":
        kind = TensorProto.STRING if a.get("classlabels_strings") else TensorProto.INT64
        width = len(a.get("classlabels_strings") or a.get("classlabels_int64s") or [])
        outputs = [("label", kind, None), ("Y", TensorProto.FLOAT, width)]
    else:
        outputs = [("Y", TensorProto.FLOAT, int(a["n_targets"]))]
    copy = helper.make_node(node.op_type, ["X"], [o[0] for o in outputs], domain="ai.onnx.ml")
    copy.attribute.extend(node.attribute)
    return _one_node_model(copy, n_features, outputs, ml_opset=3)


def ort_checks(data: dict[str, Split], budget: float) -> list[str]:
    import onnxruntime as ort

    from mlstack_train import zoo

    lines = [f"onnxruntime {ort.__version__}"]
    # (a) opset 5 from skl2onnx, and the TreeEnsemble operator's speed
    for task in (CLASSIFICATION, REGRESSION):
        config = forest("random_forest", task, 10, 2)
        pipeline = zoo.build_pipeline(
            "random_forest", config.params, task=task, n_numeric=N_NUMERIC,
            n_categorical=N_CATEGORICAL, seed=0,
        )  # fmt: skip
        pipeline.fit(data["train"].matrix, data["train"].target(task))
        saved = zoo.TARGET_OPSET
        try:
            zoo.TARGET_OPSET = {"": saved[""], "ai.onnx.ml": 5}
            model = zoo.export_onnx(
                pipeline, task=task, n_numeric=N_NUMERIC, n_categorical=N_CATEGORICAL
            )
        finally:
            zoo.TARGET_OPSET = saved
        tree = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
        opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        lines.append(
            f"(a) {task}: skl2onnx with target_opset ai.onnx.ml=5 emits {tree.op_type}, "
            f"model opsets {opsets}"
        )
        x = np.ascontiguousarray(pipeline[0].transform(data["timing"].matrix).astype(np.float32))
        v3 = session_for(as_one_node(tree, x.shape[1]).SerializeToString())
        v5_model = to_tree_ensemble_v5(tree, x.shape[1]).SerializeToString()
        v5 = session_for(v5_model)
        same = float(np.abs(v3.run(None, {"X": x})[-1] - v5.run(None, {"X": x})[0]).max())
        times = interleaved(
            {
                "v3": functools.partial(v3.run, None, {"X": x}),
                "v5": functools.partial(v5.run, None, {"X": x}),
            },
            budget,
        )
        lines.append(
            f"    hand-converted to TreeEnsemble (opset 5): max |diff| {same:.1e}, "
            f"{len(v5_model) / 1e6:.1f} MB vs {len(as_one_node(tree, x.shape[1]).SerializeToString()) / 1e6:.1f} MB; "  # noqa: E501
            f"tree operator alone at {len(x):,} rows: {tree.op_type} {times['v3'] * 1e3:.1f} ms, "
            f"TreeEnsemble {times['v5'] * 1e3:.1f} ms (x{times['v5'] / times['v3']:.2f})"
        )
    # (b) configuration keys in the shipped binaries
    capi = Path(ort.__file__).parent / "capi"
    keys: set[str] = set()
    pattern = re.compile(rb"(?:session|ep|optimization|mlas|kernel|run)\.[A-Za-z0-9_.]{3,80}")
    for path in capi.glob("*.so*"):
        keys.update(m.decode() for m in pattern.findall(path.read_bytes()))
    treeish = sorted(k for k in keys if re.search("tree|ensemble|ml\\.", k, re.IGNORECASE))
    lines.append(
        f"(b) {len(keys)} config-key-like strings in {capi.name}/*.so; about trees: "
        f"{treeish or 'none'}"
    )
    return lines


# main ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few configurations, short timings")
    mode.add_argument("--full", action="store_true", help="the whole grid (~40 min)")
    mode.add_argument("--ort-checks", action="store_true", help="only the onnxruntime checks")
    parser.add_argument("--repeats", type=int, help="extra passes for borderline ratios")
    parser.add_argument("--band", type=float, default=1.2, help="borderline: ratio within x/÷")
    parser.add_argument("--only", help="regular expression on 'family task config'")
    parser.add_argument("--train-rows", type=int, default=TRAIN_ROWS, help="training rows")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    chosen = "quick" if args.quick else "full" if args.full else "default"
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 2)

    data = load_data(max(BATCHES), args.train_rows)
    print(f"data ready in {time.perf_counter() - started:.1f} s", flush=True)
    if args.ort_checks:
        print("\n".join(ort_checks(data, 2.0)))
        print(f"wall time {time.perf_counter() - started:.0f} s")
        return 0
    todo = configs(chosen)
    if args.only:
        todo = [c for c in todo if re.search(args.only, f"{c.family} {c.task} {c.label}")]
    print(f"{len(todo)} configurations ({chosen}); ratio = ORT / scikit-learn time, <1: ORT faster")
    print(HEADER, flush=True)
    results = []
    for config in todo:
        results.append(measure(config, data, budgets, repeats, args.band))
        print(row_text(results[-1]), flush=True)

    print("\nsorted by family, task, score:")
    print(HEADER)
    for r in sorted(results, key=lambda r: (r.config.family, r.config.task, -r.score)):
        print(row_text(r))
    print("\nrecommendation inputs:")
    print("\n".join(recommend(results)))
    lines = compare(results)
    if lines:
        print("\nprevious defaults -> chosen (forests: mln512 l1 n51; gradient boosting: d4 n50):")
        print("\n".join(lines))
    if args.full:
        print("\nonnxruntime checks:")
        print("\n".join(ort_checks(data, 2.0)))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
