"""HistGradientBoosting's categorical encoding: the zoo's pipeline (ordinal codes) against the
dense one-hot block it had before, fitted on the same generated regression table: fit seconds,
peak memory and holdout R², side by side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/categorical_encoding.py           # 1,000,000 rows
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/categorical_encoding.py --rows 200000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/categorical_encoding.py --write docs/large-path.md

The table has the shape of benchmarks/large_path.py's (6 numeric columns with 5 % of their cells
missing, 3 categorical ones of 5, 12 and 40 levels, the 40 skewed, a numeric target that depends
on them plus noise), generated as arrays rather than a CSV: the model input is built as Train
builds it (float32 numerics and string categories, ``kinds.inputs.model_input``), split 80/20, and
the categories kept are Train's (``zoo.frequent_categories`` of the training rows).

Each encoding runs in a child process of its own, one native thread (a 1-vCPU task's share), so
its peak RSS (``ru_maxrss``) is its own: ``ordinal`` is ``zoo.build_pipeline`` as shipped,
``one_hot`` the same pipeline with its categorical step replaced by the encoder it had before
(``OneHotEncoder(handle_unknown="ignore", sparse_output=False)`` over the same categories).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This tree's zoo, not the one the environment's editable install points at.
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT / "functions" / "train")]

import numpy as np  # noqa: E402
from large_path import CATEGORICAL, MISSING_SHARE, NUMERIC, numeric_signal  # noqa: E402
from measured import machine, write_measured  # noqa: E402

ENCODINGS = ("one_hot", "ordinal")
FAMILY = "hist_gradient_boosting"
TRAIN_SHARE = 0.8


def generate(rows: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Train's feeds (``numeric`` float32 with NaN, ``categorical`` strings) and the target."""
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(seed + 1)
    scale = np.asarray([1.0, 2.0, 0.5, 10.0, 1.0, 3.0])
    offset = np.asarray([0.0, 5.0, 0.0, 100.0, 0.0, 0.0])
    x = rng.normal(size=(rows, len(NUMERIC))) * scale + offset
    n_a, n_b, n_c = CATEGORICAL.values()
    weights = 1.0 / np.arange(1, n_c + 1)  # skewed: a few frequent levels, a long tail
    a, b = rng.integers(0, n_a, rows), rng.integers(0, n_b, rows)
    c = rng.choice(n_c, size=rows, p=weights / weights.sum())
    y = (
        numeric_signal(x, a)
        + effects.normal(0.0, 1.0, n_a)[a]
        + effects.normal(0.0, 0.6, n_b)[b]
        + effects.normal(0.0, 0.4, n_c)[c]
        + rng.normal(0.0, 0.5, rows)
    )  # num_5 carries nothing
    numeric = x.astype(np.float32)
    numeric[rng.random(numeric.shape) < MISSING_SHARE] = np.nan
    categorical = np.empty((rows, len(CATEGORICAL)), dtype=object)
    for j, (name, codes) in enumerate(zip(CATEGORICAL, (a, b, c), strict=True)):
        levels = np.asarray([f"{name[-1]}{i:02d}" for i in range(CATEGORICAL[name])], dtype=object)
        categorical[:, j] = levels[codes]
    return {"numeric": numeric, "categorical": categorical}, y


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(encoding: str, rows: int) -> dict[str, Any]:
    """Fit one encoding's pipeline and measure it, in this process."""
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import OneHotEncoder
    from threadpoolctl import threadpool_limits

    from mlstack_core.candidates import CATALOG
    from mlstack_core.kinds.inputs import model_input
    from mlstack_train import zoo
    from mlstack_train.zoo import build_pipeline, frequent_categories

    assert Path(zoo.__file__).is_relative_to(ROOT), zoo.__file__
    threadpool_limits(limits=1)
    feeds, y = generate(rows)
    inputs = model_input(feeds)
    cut = int(rows * TRAIN_SHARE)
    n_numeric, n_categorical = feeds["numeric"].shape[1], feeds["categorical"].shape[1]
    kept = frequent_categories(feeds["categorical"][:cut])
    pipeline = build_pipeline(
        FAMILY,
        dict(CATALOG["regression"][FAMILY].defaults),
        task="regression",
        n_numeric=n_numeric,
        n_categorical=n_categorical,
        seed=0,
        categories=kept,
    )
    if encoding == "one_hot":
        old = OneHotEncoder(categories=kept, handle_unknown="ignore", sparse_output=False)
        pipeline.set_params(preprocess__categorical=old)
    before = _rss_mib()
    started = time.perf_counter()
    pipeline.fit(inputs[:cut], y[:cut])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = pipeline.predict(inputs[cut:])
    predict_seconds = time.perf_counter() - started
    return {
        "encoding": encoding,
        "rows": rows,
        "estimator_inputs": int(pipeline.named_steps["model"].n_features_in_),
        "boosting_rounds": int(pipeline.named_steps["model"].n_iter_),
        "fit_seconds": round(fit_seconds, 2),
        "predict_seconds": round(predict_seconds, 2),
        "holdout_r2": round(float(r2_score(y[cut:], predicted)), 4),
        "rss_before_fit_mib": round(before),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run_child(encoding: str, rows: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", encoding, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(results: list[dict[str, Any]], rows: int) -> str:
    by = {r["encoding"]: r for r in results}
    one_hot, ordinal = by["one_hot"], by["ordinal"]

    for result in results:
        result["fit_rss_mib"] = result["peak_rss_mib"] - result["rss_before_fit_mib"]

    def line(label: str, key: str, ratio: bool = True, form: str = ",") -> str:
        a, b = one_hot[key], ordinal[key]
        share = f"{b / a:.2f}x" if ratio and a else ""
        return f"| {label} | {a:{form}} | {b:{form}} | {share} |"

    command = "OMP_NUM_THREADS=1 python benchmarks/categorical_encoding.py"
    if rows != 1_000_000:
        command += f" --rows {rows}"
    return "\n".join(
        [
            f"`{command}` on {machine()}, one native thread, shared with other work (noisy).",
            "",
            f"{rows:,} rows ({int(rows * TRAIN_SHARE):,} to fit, the rest held out), "
            f"{FAMILY} with its default parameters:",
            "",
            "| | one-hot (before) | ordinal (now) | ordinal / one-hot |",
            "|---|---:|---:|---:|",
            line("estimator inputs", "estimator_inputs"),
            line(
                "boosting rounds (of max_iter 100; early stopping)", "boosting_rounds", ratio=False
            ),
            line("fit seconds", "fit_seconds"),
            line("predict seconds (holdout)", "predict_seconds"),
            line("RSS before the fit, MiB", "rss_before_fit_mib"),
            line("peak RSS, MiB (whole child process)", "peak_rss_mib"),
            line("peak RSS above the one before the fit, MiB", "fit_rss_mib"),
            line("holdout R²", "holdout_r2", ratio=False, form=".4f"),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=ENCODINGS, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help="rewrite this document's measured block")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
        return
    results = [run_child(encoding, args.rows) for encoding in ENCODINGS]
    text = table(results, args.rows)
    print(text)
    if args.write:
        write_measured(args.write, text, "categorical_encoding.py")


if __name__ == "__main__":
    main()
