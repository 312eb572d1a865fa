"""The candidate catalogue: model families, their default parameters and default grids.

Pure data, no scikit-learn: Preprocess (which must not pay the scikit-learn import) validates the
spec's candidates against it and expands them into the Map's item list; Train's ``zoo.py`` maps each
family to its estimator. A test keeps the two and spec.schema.json in step.

Semantics of ``spec.candidates`` entries:
- ``"random_forest"`` (a bare name): the family's default grid.
- ``{"family": "random_forest"}``: one candidate with the family's default parameters.
- ``{"family": ..., "params": {...}, "grid": {"p": [v1, v2]}}``: defaults, overridden by ``params``,
  times the cartesian product of ``grid``.
- ``{"family": ..., "grid": {...}, "cv": 5}``: ONE candidate (one Map item) that grid-searches
  ``grid`` (the family's default grid if absent) by 5-fold cross-validation on the training split
  and exports the best point refitted on the whole split. Fewer Lambdas and a choice made on
  cross-validated scores rather than on the holdout, at the cost of (points x folds + 1) fits in
  one 15-minute Lambda.

Defaults bound tree depth and leaf size: fully grown forests are hundreds of MB as ONNX.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlstack_core.payloads import Candidate
from mlstack_core.tasks import CLASSIFICATION, REGRESSION, TASKS

# Every candidate is one Lambda invocation; a grid larger than this is almost always a typo.
MAX_CANDIDATES = 1000
# Up to this many candidates travel in the execution state (inline Map, 256 KB payloads); more
# are written to S3 and run as a Distributed Map.
INLINE_MAP_LIMIT = 40
# One cross-validated candidate's points x folds fits share one Lambda's 15 minutes.
MAX_CV_POINTS = 32
MIN_FOLDS, MAX_FOLDS = 2, 10
# Families whose pipeline turns a categorical column into one ordinal code rather than one-hot
# columns (Train's zoo builds them; the model card says so).
ORDINAL_CATEGORY_FAMILIES = frozenset({"hist_gradient_boosting"})
# Families whose one-hot columns reach the estimator as a sparse matrix; the others' are dense.
SPARSE_ONE_HOT_FAMILIES = frozenset({"logistic_regression", "ridge", "linear_regression"})

Scalar = float | int | str | bool | None


@dataclass(frozen=True)
class Family:
    name: str
    defaults: Mapping[str, Scalar]
    grid: Mapping[str, Sequence[Scalar]]
    # Estimator parameters a spec may set; random_state comes from spec.random_seed.
    allowed: frozenset[str] = field(default_factory=frozenset)


# Forests are bounded by a leaf budget rather than a depth: at most 51 x 1,023 nodes whatever the
# training size. Above ~80k nodes a 3-class forest serves slower in onnxruntime than in
# scikit-learn at 10,000 rows (its kernel walks every tree per block of rows and the nodes leave the
# cache); at this budget it is faster at every batch size and as accurate as the previous
# depth-10/100-tree default (benchmarks/tree_defaults.py, docs/performance.md).
_FOREST_DEFAULTS: dict[str, Scalar] = {
    # Odd: leaves are pure (min_samples_leaf 1), so each tree casts a whole vote, and an even count
    # ties two classes at exactly 0.5, which float32 sums in onnxruntime break either way.
    "n_estimators": 51,
    "max_leaf_nodes": 512,
    "max_depth": None,
    "min_samples_leaf": 1,
    "max_features": "sqrt",
}
_FOREST_GRID: dict[str, list[Scalar]] = {"max_leaf_nodes": [128, 512], "min_samples_leaf": [1, 5]}
_FOREST_ALLOWED = frozenset(
    {
        "n_estimators",
        "max_depth",
        "min_samples_leaf",
        "min_samples_split",
        "max_features",
        "max_leaf_nodes",
        "bootstrap",
        "max_samples",
        "criterion",
    }
)
_HGB_DEFAULTS: dict[str, Scalar] = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31}
_HGB_GRID: dict[str, list[Scalar]] = {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]}
_HGB_ALLOWED = frozenset(
    {
        "max_iter",
        "learning_rate",
        "max_leaf_nodes",
        "max_depth",
        "min_samples_leaf",
        "l2_regularization",
        "max_bins",
        "early_stopping",
        "validation_fraction",
        "n_iter_no_change",
    }
)
# 50 depth-4 stages: more accurate than 100 depth-3 ones and faster than scikit-learn at 10,000
# rows, which 100 depth-3 stages were not (1.05x); the grid keeps to 50 stages for the same reason.
_GB_DEFAULTS: dict[str, Scalar] = {"n_estimators": 50, "max_depth": 4, "learning_rate": 0.1}
_GB_GRID: dict[str, list[Scalar]] = {"max_depth": [3, 4], "learning_rate": [0.1, 0.2]}
_GB_ALLOWED = frozenset(
    {
        "n_estimators",
        "max_depth",
        "learning_rate",
        "subsample",
        "min_samples_leaf",
        "max_features",
        "max_leaf_nodes",
    }
)
_KNN_DEFAULTS: dict[str, Scalar] = {"n_neighbors": 15, "weights": "uniform"}
_KNN_GRID: dict[str, list[Scalar]] = {"n_neighbors": [5, 15, 31]}
_KNN_ALLOWED = frozenset({"n_neighbors", "weights", "p", "metric"})

CATALOG: dict[str, dict[str, Family]] = {
    CLASSIFICATION: {
        f.name: f
        for f in (
            Family(
                "logistic_regression",
                {"C": 1.0, "max_iter": 1000},
                {"C": [0.1, 1.0, 10.0]},
                frozenset(
                    {"C", "max_iter", "tol", "class_weight", "fit_intercept", "l1_ratio", "solver"}
                ),
            ),
            Family(
                "random_forest", _FOREST_DEFAULTS, _FOREST_GRID, _FOREST_ALLOWED | {"class_weight"}
            ),
            Family(
                "extra_trees", _FOREST_DEFAULTS, _FOREST_GRID, _FOREST_ALLOWED | {"class_weight"}
            ),
            Family(
                "hist_gradient_boosting", _HGB_DEFAULTS, _HGB_GRID, _HGB_ALLOWED | {"class_weight"}
            ),
            Family("gradient_boosting", _GB_DEFAULTS, _GB_GRID, _GB_ALLOWED),
            Family("knn", _KNN_DEFAULTS, _KNN_GRID, _KNN_ALLOWED),
        )
    },
    REGRESSION: {
        f.name: f
        for f in (
            Family(
                "ridge",
                {"alpha": 1.0},
                {"alpha": [0.1, 1.0, 10.0]},
                frozenset({"alpha", "fit_intercept", "solver", "tol"}),
            ),
            Family("linear_regression", {}, {}, frozenset({"fit_intercept", "positive"})),
            Family("random_forest", _FOREST_DEFAULTS, _FOREST_GRID, _FOREST_ALLOWED),
            Family("extra_trees", _FOREST_DEFAULTS, _FOREST_GRID, _FOREST_ALLOWED),
            Family("hist_gradient_boosting", _HGB_DEFAULTS, _HGB_GRID, _HGB_ALLOWED | {"loss"}),
            Family("gradient_boosting", _GB_DEFAULTS, _GB_GRID, _GB_ALLOWED | {"loss"}),
            Family("knn", _KNN_DEFAULTS, _KNN_GRID, _KNN_ALLOWED),
        )
    },
}

ALL_FAMILIES: tuple[str, ...] = tuple(
    sorted({name for families in CATALOG.values() for name in families})
)

# One grid point each, so the default run finishes in seconds.
DEFAULT_CANDIDATES: dict[str, list[dict[str, Any]]] = {
    CLASSIFICATION: [
        {"family": "logistic_regression"},
        {"family": "random_forest"},
        {"family": "hist_gradient_boosting"},
    ],
    REGRESSION: [
        {"family": "ridge"},
        {"family": "random_forest"},
        {"family": "hist_gradient_boosting"},
    ],
}


def _entry_parts(entry: str | Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(family, fixed params, grid) of one spec.candidates entry."""
    if isinstance(entry, str):
        return entry, {}, {}
    return entry["family"], dict(entry.get("params") or {}), dict(entry.get("grid") or {})


def spec_families(spec: Mapping[str, Any]) -> set[str]:
    """The families a spec's candidates train; with no candidates, every task's defaults (the
    task may not be known yet)."""
    entries = spec.get("candidates") or [e for d in DEFAULT_CANDIDATES.values() for e in d]
    return {_entry_parts(entry)[0] for entry in entries}


def entry_folds(entry: str | Mapping[str, Any]) -> int | None:
    """The entry's cross-validation folds, or None when its grid points are separate candidates."""
    if isinstance(entry, str) or entry.get("cv") is None:
        return None
    return int(entry["cv"])


def _grid_points(grid: Mapping[str, Sequence[Any]]) -> int:
    points = 1
    for values in grid.values():
        points *= len(values)
    return points


def candidate_problems(entries: Sequence[str | Mapping[str, Any]], task: str | None) -> list[str]:
    """Everything wrong with spec.candidates for ``task`` (None: valid for either task)."""
    problems: list[str] = []
    tasks = [task] if task else list(TASKS)
    total = 0
    for index, entry in enumerate(entries):
        family, params, grid = _entry_parts(entry)
        where = f"candidates[{index}] ({family})"
        found = [CATALOG[t][family] for t in tasks if family in CATALOG[t]]
        if not found:
            if task and any(family in CATALOG[t] for t in TASKS):
                problems.append(f"{where}: family {family!r} is not available for {task}")
            else:
                problems.append(f"{where}: unknown family {family!r}")
            continue
        allowed = frozenset().union(*(f.allowed for f in found))
        for name in sorted((set(params) | set(grid)) - allowed):
            settable = ", ".join(sorted(allowed))
            problems.append(f"{where}: parameter {name!r} is not settable; allowed: {settable}")
        folds = entry_folds(entry)
        if folds is not None:
            # One Map item searching the grid (the family's default grid when none is given).
            points = _grid_points(grid or dict(found[0].grid))
            if points > MAX_CV_POINTS:
                problems.append(
                    f"{where}: cv grid has {points} points; the limit is {MAX_CV_POINTS}"
                )
            total += 1
            continue
        grid = grid or ({} if not isinstance(entry, str) else dict(found[0].grid))
        total += _grid_points(grid)
    if total > MAX_CANDIDATES:
        problems.append(f"candidates expand to {total} grid points; the limit is {MAX_CANDIDATES}")
    return problems


def cv_fold_problems(
    entries: Sequence[str | Mapping[str, Any]], smallest_group: int, task: str
) -> list[str]:
    """Cross-validated entries asking for more folds than the training split can fill: every
    fold needs a row of each class (classification, ``smallest_group`` = rows of the rarest class
    in the training split) or a row at all (regression, ``smallest_group`` = training rows)."""
    problems: list[str] = []
    for index, entry in enumerate(entries):
        folds = entry_folds(entry)
        if folds is not None and folds > smallest_group:
            family, _, _ = _entry_parts(entry)
            what = "the rarest class has" if task == CLASSIFICATION else "the training split has"
            problems.append(
                f"candidates[{index}] ({family}): cv {folds} needs at least {folds} training "
                f"rows per fold, but {what} {smallest_group}; lower cv"
            )
    return problems


def expand_candidates(spec: Mapping[str, Any], task: str) -> list[Candidate]:
    """The Map's items: one dict per grid point, ids ``c00-<family>`` in spec order, duplicates
    removed. Params are complete (defaults merged) so the registry records what was fitted.

    A cross-validated entry is one item ``{"candidate_id", "family", "params", "grid", "cv"}``:
    ``params`` are the defaults merged with the entry's params, which the search overrides with
    the best grid point (Train reports the fitted params)."""
    entries = spec.get("candidates") or DEFAULT_CANDIDATES[task]
    seen: set[str] = set()
    out: list[Candidate] = []
    for entry in entries:
        family_name, fixed, grid = _entry_parts(entry)
        family = CATALOG[task][family_name]
        folds = entry_folds(entry)
        if folds is not None:
            params = {**family.defaults, **fixed}
            search = {name: list(values) for name, values in (grid or family.grid).items()}
            fingerprint = json.dumps([family_name, params, search, folds], sort_keys=True)
            if fingerprint not in seen:
                seen.add(fingerprint)
                out.append(
                    {
                        "candidate_id": f"c{len(out):02d}-{family_name}",
                        "family": family_name,
                        "params": params,
                        "grid": search,
                        "cv": folds,
                    }
                )
            continue
        if isinstance(entry, str):
            grid = dict(family.grid)
        names = list(grid)
        for combo in itertools.product(*(grid[n] for n in names)):
            params = {**family.defaults, **fixed, **dict(zip(names, combo, strict=True))}
            fingerprint = json.dumps([family_name, params], sort_keys=True)
            if fingerprint in seen:
                continue
            seen.add(fingerprint)
            out.append(
                {
                    "candidate_id": f"c{len(out):02d}-{family_name}",
                    "family": family_name,
                    "params": params,
                }
            )
    return out
