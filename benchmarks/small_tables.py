"""Small tables: choose and judge candidates on one 80/20 holdout, or by repeated cross-validation?

    .venv/bin/python benchmarks/small_tables.py --write docs/small-tables.md --quick  # a look
    .venv/bin/python benchmarks/small_tables.py --write docs/small-tables.md  # the measurement
    .venv/bin/python benchmarks/small_tables.py --json /tmp/small.json  # also keep every result
    .venv/bin/python benchmarks/small_tables.py --render /tmp/small.json --write doc.md  # again

For every dataset and upload size, over many repetitions, an EXTERNAL test set is split off first
and never seen by either procedure; the rest is "the upload" of n rows:

- **A (one holdout)**: the upload is split 80/20 by the stack's own ``split_indices``
  (stratified for classification, plain for regression, test_size 0.2); the default candidates
  (``DEFAULT_CANDIDATES`` expanded by ``expand_candidates``, built by ``zoo.build_pipeline`` on the
  ``model_input`` matrix, numeric columns first, categorical as strings) are fitted on the 80 %,
  the best by the default selection metric (accuracy / r2) on the 20 % is chosen (ties: smaller
  ONNX file, then candidate id, as Evaluate's ``pick_best``), and the model fitted on the 80 % is
  the one shipped.
- **B**: repeated K-fold cross-validation (stratified for classification; K=5, R=1, 3 and 5
  repeats: R=1 and R=3 are the first repeats of R=5) on all n rows; the candidate with the best
  mean fold metric is chosen and refitted on all n rows, which is the model shipped.
- **A+refit** (for the decomposition only): A's choice refitted on all n rows, which separates
  "a fifth of the rows thrown away" from "the winner picked by luck".

Recorded per repetition: each shipped model's metric on the external set; whether the procedure
chose the candidate that is actually best there (every candidate refitted on all n rows and scored
on the external set; a tie counts as right); fits and seconds (fit + scoring of the folds or the
holdout, one thread; the two worker processes share two cores with whatever else runs).

Datasets: scikit-learn's bundled load_diabetes (regression), load_wine, load_iris,
load_breast_cancer, and Palmer penguins (species from mixed columns with missing values, parsed by
the stack's own read_csv/prepare); their external set is 30 % of the rows (stratified for
classification), re-drawn per repetition, so their intervals are conditional on the one published
table. Generated tables (6 numeric columns, two with 10 % missing, 3 categorical columns with 5 %
missing; a mostly linear signal with an interaction, a step and categorical effects; weak and
moderate signal; binary classification and regression) at 150 to 5,000 rows, with a fresh
5,000-row external set per repetition.

Why one file of this size: a benchmark is run and read on its own, from one command.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy and scikit-learn size their thread pools
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT / "functions" / "train")]

import numpy as np  # noqa: E402
from measured import machine, write_measured  # noqa: E402

from mlstack_core.candidates import DEFAULT_CANDIDATES, expand_candidates  # noqa: E402
from mlstack_core.kinds.inputs import model_input  # noqa: E402
from mlstack_core.spec import DEFAULT_METRIC  # noqa: E402
from mlstack_core.tabular import split_indices  # noqa: E402
from mlstack_core.tasks import CLASSIFICATION, REGRESSION  # noqa: E402

TEST_SIZE = 0.2  # spec.test_size's default
EXTERNAL_SHARE = 0.3  # of a published table
EXTERNAL_ROWS = 5_000  # of a generated table (fresh rows)
K = 5
REPEATS = (1, 3, 5)
SIZES = (150, 300, 600, 1200, 2500, 5000)
QUICK_SIZES = (150, 600)
# Repetitions per upload size: smaller uploads vary more and cost less. R=1 and R=3 run on every
# repetition; R=5 on every other one up to R5_MAX_ROWS rows (its columns compare on those).
REPS = {150: 60, 300: 50, 600: 40, 1200: 24, 2500: 12, 5000: 8}
REAL_REPS = {"diabetes": 100}  # the table of the symptom
OTHER_REAL_REPS = 50
QUICK_REPS = 4
R5_MAX_ROWS = 600
# A shipped model this far below the best candidate (refitted on all rows) is a blunder.
BLUNDER = 0.05
# "Clearly better": the paired difference's 95 % interval above zero AND a mean gain of at least
# this much (metric units: accuracy or R²).
MARGIN = 0.005

REAL = {
    "diabetes": REGRESSION,
    "wine": CLASSIFICATION,
    "iris": CLASSIFICATION,
    "breast_cancer": CLASSIFICATION,
    "penguins": CLASSIFICATION,
}
GENERATED = {
    "binary-weak": (CLASSIFICATION, 2.0),  # label = [f + N(0, 2²) > 0]: Bayes accuracy ~0.65
    "binary-moderate": (CLASSIFICATION, 0.75),  # Bayes accuracy ~0.80
    "regression-weak": (REGRESSION, math.sqrt(1 / 0.15 - 1)),  # best possible R² 0.15
    "regression-moderate": (REGRESSION, 1.0),  # best possible R² 0.5
}


# ----------------------------------------------------------------------------- data
class Data:
    """A model_input matrix ([numeric..., categorical...] objects) and its target."""

    def __init__(self, x: np.ndarray, y: np.ndarray, n_numeric: int, task: str) -> None:
        self.x, self.y, self.n_numeric, self.task = x, y, n_numeric, task

    @property
    def n_categorical(self) -> int:
        return int(self.x.shape[1] - self.n_numeric)

    def take(self, index: np.ndarray) -> Data:
        return Data(self.x[index], self.y[index], self.n_numeric, self.task)


def _no_categorical(n: int) -> np.ndarray:
    return np.empty((n, 0), dtype=object)


@cache
def real_data(name: str) -> Data:
    from sklearn import datasets

    if name == "penguins":
        return penguins()
    loader = {
        "diabetes": datasets.load_diabetes,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
        "breast_cancer": datasets.load_breast_cancer,
    }[name]
    bunch = loader()
    numeric = np.asarray(bunch.data, dtype=np.float32)  # as feature_feeds reads a CSV
    task = REAL[name]
    y = bunch.target.astype(np.float64 if task == REGRESSION else np.int64)
    feeds = {"numeric": numeric, "categorical": _no_categorical(len(y))}
    return Data(model_input(feeds), y, numeric.shape[1], task)


def penguins() -> Data:
    """The demo's dataset through the stack's own parsing: schema inference, missing values."""
    from mlstack_core.spec import load_spec, resolve_task
    from mlstack_core.tabular import (
        feature_feeds,
        prepare,
        read_csv,
        target_values,
        target_vector,
    )

    raw = resources.files("palmerpenguins").joinpath("data/penguins.csv").read_bytes()
    spec = load_spec(json.dumps({"target": "species"}).encode())
    table = read_csv(io.BytesIO(raw), delimiter=spec["delimiter"], na_values=spec["na_values"])
    spec = resolve_task(spec, target_values(table, "species"))
    prepared = prepare(table, spec)
    feeds = feature_feeds(prepared.table, prepared.schema)
    y = target_vector(prepared.table, prepared.schema)
    return Data(model_input(feeds), y, feeds["numeric"].shape[1], CLASSIFICATION)


C0_EFFECT = np.array([0.0, 0.6, -0.6, 1.2])
C1_EFFECT = np.linspace(-0.3, 0.3, 8)


def _signal(x: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    f = 1.0 * x[:, 0] + 0.6 * x[:, 1] - 0.5 * x[:, 2] + 0.6 * x[:, 3] * x[:, 4]
    return f + 0.8 * (x[:, 2] > 0.5) + C0_EFFECT[c0] + C1_EFFECT[c1]


def _population_signal(m: int = 400_000) -> np.ndarray:
    rng = np.random.default_rng(12345)
    return _signal(rng.normal(size=(m, 5)), rng.integers(0, 4, m), rng.integers(0, 8, m))


_F = _population_signal()
F_MEAN, F_SD = float(_F.mean()), float(_F.std())


def generated(kind: str, n: int, rng: np.random.Generator) -> Data:
    """n rows: f = linear part + x3*x4 interaction + a step in x2 + categorical effects, scaled
    to unit variance (the population's constants); regression y = f + N(0, s²), binary
    y = [f + N(0, s²) > 0]. x5 is correlated with x0 but has no effect of its own; c2 is noise."""
    task, noise = GENERATED[kind]
    x = rng.normal(size=(n, 6))
    x[:, 5] = 0.7 * x[:, 0] + math.sqrt(1 - 0.49) * x[:, 5]
    c0 = rng.integers(0, 4, n)
    c1 = rng.integers(0, 8, n)
    c2 = rng.integers(0, 3, n)
    f = (_signal(x, c0, c1) - F_MEAN) / F_SD
    target = f + rng.normal(0, noise, n)
    numeric = x.astype(np.float32)
    for column in (1, 4):
        numeric[rng.random(n) < 0.1, column] = np.nan
    categorical = np.empty((n, 3), dtype=object)
    for j, (codes, prefix) in enumerate(((c0, "a"), (c1, "b"), (c2, "c"))):
        categorical[:, j] = [f"{prefix}{code}" for code in codes]
        categorical[rng.random(n) < 0.05, j] = ""  # the stack's missing category
    y = (target > 0).astype(np.int64) if task == CLASSIFICATION else target
    return Data(model_input({"numeric": numeric, "categorical": categorical}), y, 6, task)


def bayes_accuracy(noise: float) -> float:
    """P(label = [f > 0]) given f: the best accuracy any model can reach."""
    from scipy import stats

    f = (_F - F_MEAN) / F_SD
    return float(stats.norm.cdf(np.abs(f) / noise).mean())


# ----------------------------------------------------------------------------- one repetition
def candidates(task: str) -> list[dict[str, Any]]:
    return [dict(c) for c in expand_candidates({"candidates": DEFAULT_CANDIDATES[task]}, task)]


def score(task: str, y: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    metric = DEFAULT_METRIC[task]
    if metric == "accuracy":
        return float(accuracy_score(y, predicted))
    assert metric == "r2"
    return float(r2_score(y, predicted))


def fit(candidate: dict[str, Any], train: Data, seed: int) -> Any:
    """As Train's fit_candidate: the categories are the training rows' frequent values."""
    from mlstack_train.zoo import build_pipeline, frequent_categories

    pipeline = build_pipeline(
        candidate["family"],
        candidate["params"],
        task=train.task,
        seed=seed,
        n_numeric=train.n_numeric,
        n_categorical=train.n_categorical,
        categories=(
            frequent_categories(train.x[:, train.n_numeric :]) if train.n_categorical else None
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(train.x, train.y)
    return pipeline


def onnx_bytes(pipeline: Any, data: Data) -> int:
    from mlstack_train.zoo import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = export_onnx(
            pipeline, task=data.task, n_numeric=data.n_numeric, n_categorical=data.n_categorical
        )
    return len(model.SerializeToString())


def pick(
    scores: Sequence[float], ids: Sequence[str], size_of: Any, tolerance: float = 1e-12
) -> int:
    """Index of the best score; ties (within ``tolerance``) go to the smaller ONNX file, then the
    id, as Evaluate's pick_best. ``size_of(i)`` is only called on ties."""
    best = max(scores)
    tied = [i for i, s in enumerate(scores) if s >= best - tolerance]
    if len(tied) == 1:
        return tied[0]
    return min(tied, key=lambda i: (size_of(i), ids[i]))


def folds(data: Data, repeat: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter: Any = (
        StratifiedKFold(n_splits=K, shuffle=True, random_state=seed + 1000 * repeat)
        if data.task == CLASSIFICATION
        else KFold(n_splits=K, shuffle=True, random_state=seed + 1000 * repeat)
    )
    return list(splitter.split(data.x, data.y))


def repetition(plan: dict[str, Any]) -> dict[str, Any]:
    dataset, n, rep, seed = plan["dataset"], plan["n"], plan["rep"], plan["seed"]
    max_repeats = plan["max_repeats"]
    rng = np.random.default_rng(seed)
    if dataset in REAL:
        table = real_data(dataset)
        labels = table.y.astype(str) if table.task == CLASSIFICATION else None
        upload_index, external_index = split_indices(
            labels, table.y.size, test_size=EXTERNAL_SHARE, seed=seed
        )
        upload, external = table.take(upload_index), table.take(external_index)
    else:
        upload = generated(dataset, n, rng)
        external = generated(dataset, EXTERNAL_ROWS, rng)
    task = upload.task
    zoo = candidates(task)
    ids = [c["candidate_id"] for c in zoo]
    model_seed = int(seed % 2**31)

    def external_score(pipeline: Any) -> float:
        return score(task, external.y, pipeline.predict(external.x))

    # A: stratified 80/20, chosen on the 20 %, shipped as fitted on the 80 %.
    started = time.process_time()
    labels = upload.y.astype(str) if task == CLASSIFICATION else None
    train_index, holdout_index = split_indices(
        labels, upload.y.size, test_size=TEST_SIZE, seed=seed
    )
    train, holdout = upload.take(train_index), upload.take(holdout_index)
    a_models = [fit(c, train, model_seed) for c in zoo]
    a_scores = [score(task, holdout.y, m.predict(holdout.x)) for m in a_models]
    a_seconds = time.process_time() - started
    a_pick = pick(a_scores, ids, lambda i: onnx_bytes(a_models[i], train))
    a_external = [external_score(m) for m in a_models]

    # Every candidate refitted on all n rows: B's shipped model, A+refit, and the oracle.
    full_models, full_seconds = [], []
    for c in zoo:
        started = time.process_time()
        full_models.append(fit(c, upload, model_seed))
        full_seconds.append(time.process_time() - started)
    full_external = [external_score(m) for m in full_models]
    best_external = max(full_external)
    right = [s >= best_external - 1e-12 for s in full_external]

    # B: R x K folds on all n rows.
    fold_scores = np.empty((max_repeats, K, len(zoo)))
    fold_seconds = np.empty((max_repeats, K))
    for r in range(max_repeats):
        for k, (fit_index, test_index) in enumerate(folds(upload, r, seed)):
            started = time.process_time()
            part, held = upload.take(fit_index), upload.take(test_index)
            for j, c in enumerate(zoo):
                model = fit(c, part, model_seed)
                fold_scores[r, k, j] = score(task, held.y, model.predict(held.x))
            fold_seconds[r, k] = time.process_time() - started
    b: dict[str, Any] = {}
    for repeats in REPEATS:
        if repeats > max_repeats:
            continue
        means = fold_scores[:repeats].mean(axis=(0, 1)).tolist()
        chosen = pick(means, ids, lambda i: onnx_bytes(full_models[i], upload), tolerance=1e-9)
        b[str(repeats)] = {
            "pick": chosen,
            "external": full_external[chosen],
            "right": right[chosen],
            "fits": repeats * K * len(zoo) + 1,
            "seconds": float(fold_seconds[:repeats].sum() + full_seconds[chosen]),
            "cv_score": means[chosen],
        }
    return {
        "dataset": dataset,
        "task": task,
        "n": int(upload.y.size),
        "rep": rep,
        "candidates": [c["family"] for c in zoo],
        "a": {
            "pick": a_pick,
            "external": a_external[a_pick],
            "right": right[a_pick],
            "fits": len(zoo),
            "seconds": a_seconds,
            "holdout_score": a_scores[a_pick],
            "refit_external": full_external[a_pick],
        },
        "b": b,
        "full_external": full_external,
        "a_external_all": a_external,
    }


def warm_up() -> None:
    """Import what the first fit would, so no repetition's seconds include the imports."""
    import sklearn.metrics
    import sklearn.model_selection

    import mlstack_train.zoo

    del sklearn, mlstack_train


def worker(plan: dict[str, Any]) -> dict[str, Any]:
    try:
        return repetition(plan)
    except Exception as error:  # one failed repetition must not lose the run
        return {**plan, "error": f"{type(error).__name__}: {error}"}


def plans(quick: bool, base_seed: int, only: set[str] | None) -> list[dict[str, Any]]:
    out = []
    sizes = QUICK_SIZES if quick else SIZES
    for d_index, dataset in enumerate([*REAL, *GENERATED]):
        if only and dataset not in only:
            continue
        for n in [0] if dataset in REAL else sizes:
            if quick:
                reps = QUICK_REPS
            elif dataset in REAL:
                reps = REAL_REPS.get(dataset, OTHER_REAL_REPS)
            else:
                reps = REPS[n]
            rows = n or real_data(dataset).y.size
            upload_rows = n or round(rows * (1 - EXTERNAL_SHARE))
            for rep in range(reps):
                seed = int(np.random.default_rng([base_seed, d_index, n, rep]).integers(2**32))
                out.append(
                    {
                        "dataset": dataset,
                        "n": n,
                        "rep": rep,
                        "seed": seed,
                        "max_repeats": 5 if rep % 2 == 0 and upload_rows <= R5_MAX_ROWS else 3,
                        "weight": rows,
                    }
                )
    # The largest first, so the two workers finish together.
    return sorted(out, key=lambda p: -p["weight"])


# ----------------------------------------------------------------------------- statistics
def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t interval over repetitions."""
    from scipy import stats

    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if array.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))
    return mean, mean - half, mean + half


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if "error" not in r:
            groups[(r["dataset"], r["n"])].append(r)
    order = [*REAL, *GENERATED]
    rows = []
    for (dataset, n), group in sorted(
        groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1])
    ):
        a = [g["a"]["external"] for g in group]
        row: dict[str, Any] = {
            "dataset": dataset,
            "task": group[0]["task"],
            "n": n,
            "reps": len(group),
            "candidates": group[0]["candidates"],
            "a": mean_ci(a),
            "a_right": float(np.mean([g["a"]["right"] for g in group])),
            "a_fits": group[0]["a"]["fits"],
            "a_seconds": float(np.mean([g["a"]["seconds"] for g in group])),
            "a_p10": float(np.percentile(a, 10)),
            "a_min": float(np.min(a)),
            "a_blunders": float(
                np.mean([max(g["full_external"]) - g["a"]["external"] >= BLUNDER for g in group])
            ),
            "a_refit_diff": mean_ci([g["a"]["refit_external"] - g["a"]["external"] for g in group]),
            "oracle": mean_ci([max(g["full_external"]) for g in group]),
            "per_candidate_full": np.mean([g["full_external"] for g in group], axis=0).tolist(),
            "per_candidate_80": np.mean([g["a_external_all"] for g in group], axis=0).tolist(),
            "a_picks": np.bincount(
                [g["a"]["pick"] for g in group], minlength=len(group[0]["candidates"])
            ).tolist(),
            "b": {},
        }
        for repeats in (str(r) for r in REPEATS):
            # R=5 ran on every other repetition: its statistics are over those.
            subset = [g for g in group if repeats in g["b"]]
            if not subset:
                continue
            bs = [g["b"][repeats] for g in subset]
            a_subset = [g["a"]["external"] for g in subset]
            pairs = list(zip([x["external"] for x in bs], a_subset, strict=True))
            row["b"][repeats] = {
                "reps": len(subset),
                "score": mean_ci([x["external"] for x in bs]),
                "diff": mean_ci([x - y for x, y in pairs]),
                "wins": float(np.mean([x > y + 1e-12 for x, y in pairs])),
                "losses": float(np.mean([x < y - 1e-12 for x, y in pairs])),
                "right": float(np.mean([x["right"] for x in bs])),
                "p10": float(np.percentile([x["external"] for x in bs], 10)),
                "min": float(np.min([x["external"] for x in bs])),
                "blunders": float(
                    np.mean(
                        [
                            max(g["full_external"]) - g["b"][repeats]["external"] >= BLUNDER
                            for g in subset
                        ]
                    )
                ),
                "fits": bs[0]["fits"],
                "seconds": float(np.mean([x["seconds"] for x in bs])),
                "picks": np.bincount(
                    [x["pick"] for x in bs], minlength=len(group[0]["candidates"])
                ).tolist(),
            }
            if repeats != "3":
                row["b"][repeats]["minus_r3"] = mean_ci(
                    [g["b"][repeats]["external"] - g["b"]["3"]["external"] for g in subset]
                )
        rows.append(row)
    return rows


def clearly_better(diff: tuple[float, float, float]) -> bool:
    mean, low, _ = diff
    return bool(low > 0 and mean >= MARGIN)


# ----------------------------------------------------------------------------- the document
INTRO = """# Small tables: one holdout or repeated cross-validation

Question: below what upload size should Train choose and judge the candidates by repeated
cross-validation on all rows (and ship the winner refitted on ALL rows), instead of a single
stratified 80/20 split (winner chosen on the 20 % holdout, shipped as fitted on the 80 %)?
Symptom that raised it: on a published ~400-row regression table the version served scored R²
~0.25 on rows it never saw, while a plain ridge regression fitted on the same rows reached ~0.39.

How it is measured (benchmarks/small_tables.py, its docstring has the details): per repetition an
external test set the procedures never see is split off (30 % of a published table; 5,000 fresh
rows of a generated one); on the rest, the upload of n rows, **A** is one holdout and **B**
is repeated K-fold cross-validation (K=5; R=1, 3, 5 repeats) on all n rows, the winner refitted on
all n rows. Both use the stack's default candidates (`DEFAULT_CANDIDATES`: logistic regression or
ridge, random forest, histogram gradient boosting with their default parameters), built by
`zoo.build_pipeline` on the `model_input` matrix exactly as Train builds them, and the default
selection metric (accuracy, R²). **A+refit** (A's choice refitted on all n rows) is measured too:
it separates the two things A loses, the fifth of the rows it does not train on and the winner it
picks on a small holdout.

What this does not settle:

- The published tables' external set is 30 % of the same table, re-drawn per repetition: their
  intervals are conditional on that one table.
- The generated tables have one signal shape, mostly linear with an interaction and a step: the
  linear candidate wins up to ~1,200 rows and gradient boosting catches up at 2,500-5,000 rows in
  the moderate kinds. A single holdout picks by luck wherever the candidates are within a point
  or so of each other, which can happen at any size (here, at 5,000 rows, around that crossover).
- Only the three default candidates and the default metrics. A grid (more candidates) gives a
  single holdout more chances to crown a lucky winner, so the threshold for grid runs is not lower
  (not measured). K was not varied.
- Seconds are CPU seconds in one thread on a shared 2-core machine: read them as ratios.
- B leaves no untouched holdout: the stack's gate judges B's runs on the out-of-fold answers
  with the corrected repeated cross-validation interval, and checks the ONNX parity of the
  version fitted on every row on every row (docs/gate.md).

"""


def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def fmt_ci(ci: tuple[float, float, float], digits: int = 3, signed: bool = False) -> str:
    mean, low, high = ci
    sign = "+" if signed else ""
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def score_table(rows: list[dict[str, Any]], label: str) -> list[str]:
    lines = [
        f"| {label} | reps | A (holdout) | B R=3 | **B-A** (R=3) | A+refit - A | B R=1 - B R=3 "
        "| B R=5 - B R=3 (half the reps) | best candidate, refitted on all rows "
        "| worst 10 % A / B |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        b = row["b"]
        name = f"{row['n']:,}"
        if label == "dataset":
            name = f"{row['dataset']} ({row['n']} of {row['n'] + external_rows(row)})"
        diff3 = fmt_ci(b["3"]["diff"], signed=True)
        if clearly_better(b["3"]["diff"]):
            diff3 = f"**{diff3}**"
        lines.append(
            f"| {name} | {row['reps']} | {fmt_ci(row['a'])} | {fmt_ci(b['3']['score'])} | {diff3} "
            f"| {fmt_ci(row['a_refit_diff'], signed=True)} "
            f"| {fmt_ci(b['1']['minus_r3'], signed=True)} "
            f"| {fmt_ci(b['5']['minus_r3'], signed=True) if '5' in b else 'n/a'} "
            f"| {fmt(row['oracle'][0])} | {fmt(row['a_p10'])} / {fmt(b['3']['p10'])} |"
        )
    return lines


def external_rows(row: dict[str, Any]) -> int:
    if row["dataset"] in REAL:
        return int(real_data(row["dataset"]).y.size - row["n"])
    return EXTERNAL_ROWS


def choice_table(rows: list[dict[str, Any]], label: str) -> list[str]:
    lines = [
        f"| {label} | right pick A | B R=1 | B R=3 | B R=5* | B R=3 better / worse than A "
        f"| {BLUNDER} short of best A / B R=3 "
        "| A picks (lin/rf/hgb) | B R=3 picks | fits A / B R=1 / R=3 / R=5 "
        "| seconds A / B R=1 / R=3 / R=5 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        b = row["b"]
        name = row["dataset"] if label == "dataset" else f"{row['n']:,}"
        rs = [r for r in ("1", "3", "5") if r in b]
        lines.append(
            f"| {name} | {pct(row['a_right'])} | "
            + " | ".join(pct(b[r]["right"]) if r in b else "n/a" for r in ("1", "3", "5"))
            + f" | {pct(b['3']['wins'])} / {pct(b['3']['losses'])}"
            + f" | {pct(row['a_blunders'])} / {pct(b['3']['blunders'])}"
            + f" | {'/'.join(map(str, row['a_picks']))} | {'/'.join(map(str, b['3']['picks']))}"
            + f" | {row['a_fits']} / "
            + " / ".join(str(b[r]["fits"]) for r in rs)
            + f" | {row['a_seconds']:.2f} / "
            + " / ".join(f"{b[r]['seconds']:.2f}" for r in rs)
            + " |"
        )
    return lines


def candidate_table(rows: list[dict[str, Any]], label: str) -> list[str]:
    lines = [
        f"| {label} | candidates | each fitted on 80 % (A's models) | each refitted on all rows |",
        "|---|---|---:|---:|",
    ]
    for row in rows:
        name = row["dataset"] if label == "dataset" else f"{row['n']:,}"
        lines.append(
            f"| {name} | {', '.join(row['candidates'])} "
            f"| {' / '.join(fmt(v) for v in row['per_candidate_80'])} "
            f"| {' / '.join(fmt(v) for v in row['per_candidate_full'])} |"
        )
    return lines


def pooled(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per upload size, the generated tables of every kind together (accuracy and R² points
    averaged as they are). Splits B's gain into the refit on all rows (A+refit - A) and the
    choice (B - A+refit: both choices refitted on all rows)."""
    by_size: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if "error" not in r and r["dataset"] in GENERATED:
            by_size[r["n"]].append(r)
    rows = []
    for n, group in sorted(by_size.items()):
        a = [g["a"]["external"] for g in group]
        refit = [g["a"]["refit_external"] for g in group]
        b3 = [g["b"]["3"]["external"] for g in group]
        b1 = [g["b"]["1"]["external"] for g in group]
        rows.append(
            {
                "n": n,
                "reps": len(group),
                "kinds": len({g["dataset"] for g in group}),
                "total": mean_ci([y - x for x, y in zip(a, b3, strict=True)]),
                "refit": mean_ci([y - x for x, y in zip(a, refit, strict=True)]),
                "choice": mean_ci([y - x for x, y in zip(refit, b3, strict=True)]),
                "choice_r1": mean_ci([y - x for x, y in zip(refit, b1, strict=True)]),
                "right": [
                    float(np.mean([g["a"]["right"] for g in group])),
                    float(np.mean([g["b"]["1"]["right"] for g in group])),
                    float(np.mean([g["b"]["3"]["right"] for g in group])),
                ],
                "worse": float(np.mean([y < x - 1e-12 for x, y in zip(a, b3, strict=True)])),
                "fits": [
                    group[0]["a"]["fits"],
                    group[0]["b"]["1"]["fits"],
                    group[0]["b"]["3"]["fits"],
                ],
                "seconds": [
                    float(np.mean([g["a"]["seconds"] for g in group])),
                    float(np.mean([g["b"]["1"]["seconds"] for g in group])),
                    float(np.mean([g["b"]["3"]["seconds"] for g in group])),
                ],
            }
        )
    return rows


def pooled_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| upload rows | reps | **B-A** (R=3) | of which the refit on all rows (A+refit - A) "
        "| of which the choice (B - A+refit), R=3 | the choice, R=1 | right pick A / B R=1 / R=3 "
        "| B R=3 worse than A | fits A / B R=1 / R=3 | CPU seconds A / B R=1 / R=3 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        choice = fmt_ci(row["choice"], 4, signed=True)
        if clearly_better(row["choice"]):
            choice = f"**{choice}**"
        lines.append(
            f"| {row['n']:,} | {row['reps']} | {fmt_ci(row['total'], 4, signed=True)} "
            f"| {fmt_ci(row['refit'], 4, signed=True)} | {choice} "
            f"| {fmt_ci(row['choice_r1'], 4, signed=True)} "
            f"| {' / '.join(pct(v) for v in row['right'])} | {pct(row['worse'])} "
            f"| {' / '.join(map(str, row['fits']))} "
            f"| {' / '.join(f'{v:.2f}' for v in row['seconds'])} |"
        )
    return lines


def threshold(rows: list[dict[str, Any]], key: Any) -> int | None:
    """The smallest measured size from which ``key(row)`` is never clearly better again; None if
    it is clearly better at the largest size."""
    result = None
    for row in sorted(rows, key=lambda r: -r["n"]):
        if clearly_better(key(row)):
            return result
        result = row["n"]
    return result


def conclusion(summary: list[dict[str, Any]], pool: list[dict[str, Any]]) -> list[str]:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in summary:
        if row["dataset"] in GENERATED:
            by_kind[row["dataset"]].append(row)
    parts = []
    for kind, rows in by_kind.items():
        better = [r["n"] for r in rows if clearly_better(r["b"]["3"]["diff"])]
        if not better:
            parts.append(f"{kind} at no size measured")
        elif len(better) == len(rows):
            parts.append(f"{kind} at every size measured")
        else:
            sizes = ", ".join(f"{n:,}" for n in better)
            parts.append(f"{kind} at {sizes} rows")
    real = [r for r in summary if r["dataset"] in REAL]
    real_better = [r["dataset"] for r in real if clearly_better(r["b"]["3"]["diff"])]
    worse = [f"{r['dataset']} {r['n']:,}" for r in summary if r["b"]["3"]["diff"][2] < 0]
    lines = [
        "## Conclusion (computed from the tables above)",
        "",
        '"Clearly better" = the paired difference has its 95 % interval above zero and a mean '
        f"gain of at least {MARGIN} (accuracy or R² points). B (R=3) is clearly better than A "
        "on the generated tables "
        + "; ".join(parts)
        + "; on the published tables on "
        + (", ".join(real_better) or "none")
        + ". B is clearly worse than A on "
        + (", ".join(worse) or "no table at any size")
        + ".",
        "",
    ]
    for row in real:
        if row["dataset"] != "diabetes":
            continue
        b = row["b"]["3"]
        picks = ", ".join(
            f"{name} {pct(count / row['reps'])}"
            for name, count in zip(row["candidates"], row["a_picks"], strict=True)
        )
        lines += [
            f"Diabetes ({row['n']} upload rows): one holdout ships R² "
            f"{fmt_ci(row['a'])} on rows it never saw, B (R=3) {fmt_ci(b['score'])}, a "
            f"paired gain of {fmt_ci(b['diff'], signed=True)}. A picks {picks}; it ships a "
            f"model at least {BLUNDER} R² short of the best candidate in "
            f"{pct(row['a_blunders'])} of the repetitions, B in {pct(b['blunders'])}; A's worst "
            f"10 % are below R² {fmt(row['a_p10'])} (B: {fmt(b['p10'])}), its worst "
            f"repetition {fmt(row['a_min'])} (B: {fmt(b['min'])}). Refitting A's own "
            f"choice on all rows gains {fmt_ci(row['a_refit_diff'], signed=True)}"
            + (
                f": the loss is the choice made on a {round(row['n'] * TEST_SIZE)}-row holdout, "
                "not the fifth of the rows left out."
                if row["a_refit_diff"][0] < b["diff"][0] / 2
                else ": most of the loss is the fifth of the rows left out."
            ),
            "",
        ]
    if not pool:
        return lines
    t = threshold(pool, lambda r: r["choice"])
    total_t = threshold(pool, lambda r: r["total"])
    first, last = pool[0], pool[-1]
    lines += [
        "Where the gain comes from (all generated tables pooled): refitting on all rows gains "
        f"{first['refit'][0]:+.4f} at {first['n']:,} rows and {last['refit'][0]:+.4f} at "
        f"{last['n']:,}; choosing by cross-validation instead of on the holdout gains "
        + ", ".join(f"{r['choice'][0]:+.4f} at {r['n']:,}" for r in pool)
        + ". B picks the candidate that is best on the external set in "
        + ", ".join(f"{pct(r['right'][2])} at {r['n']:,}" for r in pool)
        + " of the repetitions, A in "
        + ", ".join(pct(r["right"][0]) for r in pool)
        + ".",
        "",
    ]
    if t is not None and t > first["n"]:
        below = max(r["n"] for r in pool if r["n"] < t)
        at_below = next(r for r in pool if r["n"] == below)
        after = [r for r in pool if r["n"] >= t]
        lines += [
            f"**Recommendation: below {t:,} rows, choose and judge the candidates by "
            f"{K}-fold cross-validation repeated 3 times on all rows and ship the winner refitted "
            f"on all rows.** The choice made on one holdout clearly costs up to {below:,} rows "
            f"(pooled gain of B's choice {fmt_ci(at_below['choice'], 4, signed=True)} at "
            f"{below:,}) and no longer from {t:,} ("
            + ", ".join(f"{fmt_ci(r['choice'], 4, signed=True)} at {r['n']:,}" for r in after)
            + "); the crossover lies between the two sizes measured. Above it B's total gain ("
            + ", ".join(f"{r['total'][0]:+.4f} at {r['n']:,}" for r in after)
            + ") is mostly the refit on all rows"
            + (
                f"; B stays clearly better in total up to {max(SIZES):,} rows"
                if total_t is None
                else ""
            )
            + f". Cost at {below:,} rows, default candidates: {at_below['fits'][2]} fits "
            f"against {at_below['fits'][0]}, {at_below['seconds'][2]:.1f} CPU seconds against "
            f"{at_below['seconds'][0]:.1f}: each candidate's Lambda fits {3 * K} folds instead "
            "of one split, and the winner is refitted once; a grid of g points multiplies both "
            "by g.",
            "",
        ]
    r1 = [r["b"]["1"]["minus_r3"] for r in summary if "minus_r3" in r["b"].get("1", {})]
    r5 = [r["b"]["5"]["minus_r3"] for r in summary if "minus_r3" in r["b"].get("5", {})]
    if r1:
        small = [r for r in pool if r["n"] <= R5_MAX_ROWS * 2]
        lines += [
            f"Repeats (K={K} throughout): B R=1 - B R=3 on the shipped score averages "
            f"{np.mean([d[0] for d in r1]):+.4f} over the {len(r1)} tables and sizes (interval "
            f"below zero on {sum(d[2] < 0 for d in r1)}, above on {sum(d[1] > 0 for d in r1)}); "
            f"B R=5 - B R=3 averages "
            + (f"{np.mean([d[0] for d in r5]):+.4f}" if r5 else "n/a")
            + f" (on half the repetitions, up to {R5_MAX_ROWS} rows; below zero on "
            f"{sum(d[2] < 0 for d in r5)}, above on {sum(d[1] > 0 for d in r5)} of {len(r5)}). "
            "R=3 picks the externally best candidate a little more often than R=1 ("
            + ", ".join(
                f"{pct(r['right'][2])} against {pct(r['right'][1])} at {r['n']:,}" for r in small
            )
            + f") for 3x the fold fits; R=5 adds nothing measurable. K={K}, R=3 is the default "
            "to take; R=1 is the cheaper choice when fits are expensive, at no measured loss in "
            "score.",
            "",
        ]
    return lines


def markdown(
    summary: list[dict[str, Any]], pool: list[dict[str, Any]], meta: dict[str, Any]
) -> str:
    import sklearn

    lines = [
        f"`.venv/bin/python benchmarks/small_tables.py {meta['arguments']}`",
        f"on {meta['machine']}, scikit-learn {sklearn.__version__}, {meta['date']}; "
        f"{meta['repetitions']} repetitions in {meta['seconds'] / 60:.1f} min with "
        f"{meta['workers']} worker processes (one thread each)"
        + (f"; {meta['errors']} failed repetitions" if meta["errors"] else "")
        + (
            f"; this text rendered from its saved results (`{meta['rendered']}`)"
            if meta.get("rendered")
            else ""
        )
        + ".",
        "",
        "Scores are the shipped model's metric on the external set (accuracy; R² for diabetes "
        "and regression-*), mean [95 % interval over repetitions]. **B-A** is the paired "
        "difference per repetition (bold: clearly better, see the conclusion). The last column "
        "is the external score of the candidate that is best there, refitted on all rows (no "
        "procedure can know it).",
        "",
        "### Published tables (external set: 30 % of the table, re-drawn per repetition)",
        "",
        *score_table([r for r in summary if r["dataset"] in REAL], "dataset"),
        "",
    ]
    for kind, (task, noise) in GENERATED.items():
        rows = [r for r in summary if r["dataset"] == kind]
        if not rows:
            continue
        best = (
            f"best possible R² {1 / (1 + noise**2):.2f}"
            if task == REGRESSION
            else f"Bayes accuracy ~{bayes_accuracy(noise):.2f}"
        )
        lines += [
            f"### Generated: {kind} ({best}; external set 5,000 fresh rows)",
            "",
            *score_table(rows, "upload rows"),
            "",
        ]
    lines += [
        "### Choosing the right candidate, and what it costs",
        "",
        "Right pick: the chosen candidate is the one best on the external set when every "
        "candidate is refitted on all n rows (ties count as right). Picks: how often each "
        "candidate was chosen, in the order of the candidate columns below. Fits and seconds per "
        "upload: A fits each candidate once; B fits each R x K times and refits the winner; "
        "seconds are CPU seconds of fit + scoring (one thread), per upload. *: R=5 over the "
        "half of the repetitions it ran on.",
        "",
        *choice_table([r for r in summary if r["dataset"] in REAL], "dataset"),
        "",
    ]
    for kind in GENERATED:
        rows = [r for r in summary if r["dataset"] == kind]
        if rows:
            lines += [f"**{kind}**", "", *choice_table(rows, "upload rows"), ""]
    lines += [
        "### Each candidate's mean external score",
        "",
        *candidate_table([r for r in summary if r["dataset"] in REAL], "dataset"),
        "",
    ]
    for kind in GENERATED:
        rows = [r for r in summary if r["dataset"] == kind]
        if rows:
            lines += [f"**{kind}**", "", *candidate_table(rows, "upload rows"), ""]
    if pool:
        lines += [
            "### All generated tables pooled, by upload size",
            "",
            "B's gain split in two, each paired per repetition: the refit on all rows "
            "(A's choice refitted on all rows, minus A) and the choice (B's choice minus A's, "
            "both refitted on all rows). Bold: the choice clearly better.",
            "",
            *pooled_table(pool),
            "",
        ]
    lines += conclusion(summary, pool)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_REPS} reps, sizes {QUICK_SIZES}"
    )
    parser.add_argument("--only", nargs="*", help="only these datasets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", type=Path, help="write the measured block of this document")
    parser.add_argument("--json", type=Path, help="also write every repetition's results here")
    parser.add_argument("--render", type=Path, help="only render this --json file's results")
    args = parser.parse_args()

    if args.render:
        saved = json.loads(args.render.read_text())
        results, meta = saved["results"], saved["meta"]
    else:
        todo = plans(args.quick, args.seed, set(args.only) if args.only else None)
        started = time.perf_counter()
        results = []
        context = multiprocessing.get_context("spawn")
        with context.Pool(args.workers, initializer=warm_up, maxtasksperchild=200) as pool:
            for result in pool.imap_unordered(worker, todo):
                results.append(result)
                done = len(results)
                if "error" in result:
                    print(f"{result['dataset']} n={result['n']}: {result['error']}", flush=True)
                if done % 25 == 0 or done == len(todo):
                    elapsed = time.perf_counter() - started
                    print(f"{done}/{len(todo)} repetitions, {elapsed / 60:.1f} min", flush=True)
        meta = {
            "arguments": " ".join(sys.argv[1:]),
            "machine": machine(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": time.perf_counter() - started,
            "workers": args.workers,
            "repetitions": len(results),
            "errors": sum("error" in r for r in results),
        }
        if args.json:
            args.json.write_text(json.dumps({"meta": meta, "results": results}))
    if args.render:
        meta = {**meta, "rendered": f"--render {args.render}"}
    summary = summarise(results)
    text = markdown(summary, pooled(results), meta)
    print(text)
    if args.write:
        write_measured(args.write, text, "small_tables.py", INTRO)


if __name__ == "__main__":
    main()
