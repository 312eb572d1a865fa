"""Explanations against predictions, side by side, and their error against exact Shapley values.

    .venv/bin/python benchmarks/explanations.py            # rewrites docs/explanations.md's block
    .venv/bin/python benchmarks/explanations.py --quick    # short runs, nothing written

Speed: for 5, 20 and 50 columns (four fifths numeric, one fifth categorical) and each family the
stack trains by default for a task (ridge, hist_gradient_boosting; logistic_regression and
random_forest for a classifier), a model is fitted and exported as Train does and registered with
32 background rows in an in-process moto registry. The prediction function's handler then answers
API Gateway events for one row, POST /explain and POST /predict interleaved (``measured.py``), one
native thread (a 1-vCPU function's share), at the stack's defaults (six coalitions of the 32 rows
a column, 128 to 512: EXPLAIN_GRAPH_ROWS 4,096 to EXPLAIN_MAX_GRAPH_ROWS 16,384 graph rows).
Widest: a request of EXPLAIN_MAX_ROWS rows of the widest table the stack takes (1,000 columns,
MaxDatasetColumns) through the same handler, what the function's timeout must hold.

Error: on tables of 10 and 14 columns, where every coalition can be enumerated, each row's
values at the default budget against the exact ones for the same background (which
tests/unit/test_explain.py holds to shap's exact explainer on the scikit-learn original): the
largest difference as a share of the row's largest contribution, over 8 holdout rows; and on 20,
32 and 50 numeric columns against shap's exact TreeExplainer and LinearExplainer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT),
    str(ROOT / "layers" / "core"),
    str(ROOT / "functions" / "predict"),
    str(ROOT / "functions" / "train"),
]
from measured import (  # noqa: E402
    interleaved_rounds,
    machine,
    use_predict_environment,
    write_measured,
)

use_predict_environment()

import numpy as np  # noqa: E402

DOC = ROOT / "docs" / "explanations.md"
SCRIPT = "explanations.py"
COLUMNS = (5, 20, 50)
WIDEST = 1000
FAMILIES: dict[str, dict[str, dict[str, Any]]] = {
    "regression": {"ridge": {"alpha": 1.0}, "hist_gradient_boosting": {}},
    "classification": {
        "logistic_regression": {"C": 1.0, "max_iter": 1000},
        "random_forest": {"n_estimators": 51, "max_leaf_nodes": 512},
    },
}
ROWS = 3000


def shape(columns: int) -> tuple[int, int]:
    categorical = max(1, columns // 5)
    return columns - categorical, categorical


class Context:
    function_name = "bench"
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"


@contextmanager
def served() -> Iterator[tuple[Any, Any]]:
    """An in-process moto registry and bucket, and the prediction function's app over them."""
    import boto3
    from moto import mock_aws

    from mlstack_core.registry import TABLE_DEFINITION, Registry
    from tests.helpers.prediction import Stack, load_app

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=os.environ["MODEL_BUCKET"])
        boto3.client("dynamodb").create_table(
            TableName=os.environ["REGISTRY_TABLE"], **TABLE_DEFINITION
        )
        yield (
            Stack(Registry(os.environ["REGISTRY_TABLE"]), s3, os.environ["MODEL_BUCKET"]),
            (load_app()),
        )


def publish(stack: Any, name: str, model: Any) -> None:
    from mlstack_core.contract.records import record_chunks
    from tests.helpers.prediction import ModelFixture

    background = next(record_chunks(model.train, model.loaded.layout, 32))
    stack.publish(
        name, ModelFixture(model.onnx, model.pipeline, model.schema), background=background
    )


def speed(budget_s: float) -> list[dict[str, Any]]:
    """Median milliseconds of the handler per one-row request, explain and predict."""
    from mlstack_core.contract.records import record_chunks
    from tests.helpers.explained import explained_model, generated_csv
    from tests.helpers.prediction import event

    out: list[dict[str, Any]] = []
    with served() as (stack, app):
        for columns in COLUMNS:
            for task, families in FAMILIES.items():
                for family, params in families.items():
                    body = generated_csv(ROWS, *shape(columns), task, seed=columns, missing=0.05)
                    model = explained_model(family, params, body, task=task)
                    name = f"{family}-{columns}"
                    publish(stack, name, model)
                    row = next(record_chunks(model.holdout, model.loaded.layout, 1))
                    request = json.dumps({"instances": row})
                    explain = event("POST", f"/models/{name}/explain", request)
                    predict = event("POST", f"/models/{name}/predict", request)
                    answers = [app.handler(e, Context()) for e in (explain, predict)]
                    assert [a["statusCode"] for a in answers] == [200, 200], answers
                    with open(os.devnull, "w") as sink:
                        stdout, sys.stdout = sys.stdout, sink
                        try:
                            samples = interleaved_rounds(
                                {
                                    "explain": lambda e=explain: app.handler(e, Context()),
                                    "predict": lambda e=predict: app.handler(e, Context()),
                                },
                                budget_s,
                            )
                        finally:
                            sys.stdout = stdout
                    explained = json.loads(answers[0]["body"])
                    ratios = [
                        e / p for e, p in zip(samples["explain"], samples["predict"], strict=True)
                    ]
                    result = {
                        "columns": columns,
                        "family": family,
                        "explain_ms": statistics.median(samples["explain"]) * 1000,
                        "predict_ms": statistics.median(samples["predict"]) * 1000,
                        "ratio": statistics.median(ratios),
                        "exact": explained["explanations"][0]["exact"],
                        "coalitions": explained["method"]["coalitions"],
                    }
                    print(json.dumps(result), flush=True)
                    out.append(result)
    return out


def widest(repeats: int) -> list[dict[str, Any]]:
    """Seconds of the handler for one explain request of EXPLAIN_MAX_ROWS rows of the widest
    table the stack takes, each family, the median of ``repeats``."""
    import time

    from mlstack_core.contract.records import record_chunks
    from mlstack_core.settings import serving_settings
    from tests.helpers.explained import explained_model, generated_csv
    from tests.helpers.prediction import event

    rows = serving_settings().explain_max_rows
    out: list[dict[str, Any]] = []
    with served() as (stack, app):
        for task, families in FAMILIES.items():
            for family, params in families.items():
                body = generated_csv(2000, *shape(WIDEST), task, seed=1, missing=0.05)
                model = explained_model(family, params, body, task=task)
                name = f"{family}-{WIDEST}"
                publish(stack, name, model)
                request = json.dumps(
                    {"instances": next(record_chunks(model.holdout, model.loaded.layout, rows))}
                )
                explain = event("POST", f"/models/{name}/explain", request)
                seconds = []
                for _ in range(repeats + 1):  # the first loads the session
                    started = time.perf_counter()
                    answer = app.handler(explain, Context())
                    seconds.append(time.perf_counter() - started)
                    assert answer["statusCode"] == 200, answer
                method = json.loads(answer["body"])["method"]
                result = {
                    "columns": WIDEST,
                    "family": family,
                    "rows": rows,
                    "seconds": statistics.median(seconds[1:]),
                    "coalitions": method["coalitions"],
                }
                print(json.dumps(result), flush=True)
                out.append(result)
    return out


def error_row(columns: int, family: str, coalitions: int, shares: list[float]) -> dict[str, Any]:
    """One line of an error table, printed as it is measured."""
    result = {
        "columns": columns,
        "family": family,
        "coalitions": coalitions,
        "median": statistics.median(shares),
        "worst": max(shares),
    }
    print(json.dumps(result), flush=True)
    return result


def error(rows: int) -> list[dict[str, Any]]:
    """The default budget's error against exact values, on tables small enough to enumerate."""
    from mlstack_core.contract.records import record_chunks
    from mlstack_core.contract.request import Batch
    from mlstack_core.explain.served import Background, Budget, explain_batch
    from mlstack_core.settings import serving_settings
    from tests.helpers.explained import explained_model, generated_csv

    out: list[dict[str, Any]] = []
    budget = Budget.of(serving_settings(), 32)
    for columns in (10, 14):
        for task, families in FAMILIES.items():
            for family, params in families.items():
                body = generated_csv(ROWS, *shape(columns), task, seed=columns, missing=0.05)
                model = explained_model(family, params, body, task=task)
                layout = model.loaded.layout
                stored = next(record_chunks(model.train, layout, 32))
                names = list(layout.inputs)
                background = Background.of(names, [[r[c] for c in names] for r in stored], layout)
                batch = Batch.of_instances(next(record_chunks(model.holdout, layout, rows)))
                _, exact = explain_batch(model.loaded, batch, background, Budget.fixed(2**columns))
                _, sampled = explain_batch(model.loaded, batch, background, budget)
                shares = [
                    float(
                        np.abs(s.contributions - x.contributions).max()
                        / np.abs(x.contributions).max()
                    )
                    for s, x in zip(sampled, exact, strict=True)
                ]
                out.append(error_row(columns, family, budget.coalitions(columns), shares))
    return out


def wide_error(rows: int) -> list[dict[str, Any]]:
    """The default budget's error on 20, 32 and 50 numeric columns, past enumeration, against
    shap's exact explainers for the structures it reads: interventional ``TreeExplainer`` for
    hist_gradient_boosting, ``LinearExplainer`` for ridge, on the pipeline's own inputs (one per
    raw numeric column), with the same background rows."""
    import shap

    from mlstack_core.contract.records import record_chunks
    from mlstack_core.contract.request import Batch
    from mlstack_core.contract.tensors import build_inputs
    from mlstack_core.explain.served import Background, Budget, explain_batch
    from mlstack_core.kinds.inputs import model_input
    from mlstack_core.settings import serving_settings
    from tests.helpers.explained import explained_model, generated_csv

    out: list[dict[str, Any]] = []
    budget = Budget.of(serving_settings(), 32)
    for columns in (20, 32, 50):
        for family, params in FAMILIES["regression"].items():
            body = generated_csv(ROWS, columns, 0, "regression", seed=columns)
            model = explained_model(family, params, body, task="regression")
            layout = model.loaded.layout
            stored = next(record_chunks(model.train, layout, 32))
            names = list(layout.inputs)
            background = Background.of(names, [[r[c] for c in names] for r in stored], layout)
            explained = next(record_chunks(model.holdout, layout, rows))
            transform = model.pipeline.named_steps["preprocess"]
            estimator = model.pipeline.named_steps["model"]

            def inputs(records: list[dict[str, Any]], t: Any = transform, lay: Any = layout) -> Any:
                feeds = build_inputs(Batch.of_instances(records), lay)
                return np.asarray(t.transform(model_input(feeds)), dtype=np.float64)

            if family == "ridge":
                reference = shap.explainers.Linear(
                    estimator, shap.maskers.Independent(inputs(stored))
                )
            else:
                reference = shap.explainers.Tree(
                    estimator, data=inputs(stored), feature_perturbation="interventional"
                )
            exact = np.asarray(reference(inputs(explained)).values, dtype=np.float64)
            _, sampled = explain_batch(
                model.loaded, Batch.of_instances(explained), background, budget
            )
            shares = [
                float(np.abs(s.contributions[:, 0] - x).max() / np.abs(x).max())
                for s, x in zip(sampled, exact, strict=True)
            ]
            out.append(error_row(columns, family, sampled[0].coalitions, shares))
    return out


def render(
    command: str,
    timed: list[dict[str, Any]],
    widest_timed: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    wide: list[dict[str, Any]],
) -> str:
    lines = [
        f"`{command}` on {machine()}, one native thread, shared with other work (noisy).",
        "",
        "One row through the prediction function's handler (API Gateway event in, response out), "
        "medians of interleaved runs:",
        "",
        "| columns | family | explain, ms | predict, ms | explain / predict | coalitions |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in timed:
        how = "exact" if r["exact"] else f"{r['coalitions']} sampled"
        lines.append(
            f"| {r['columns']} | {r['family']} | {r['explain_ms']:.1f} | {r['predict_ms']:.2f} "
            f"| {r['ratio']:.0f}x | {how} |"
        )
    lines += [
        "",
        "One explain request of the most rows it takes, of the widest table the stack trains "
        "on, through the same handler (median of 3):",
        "",
        "| columns | family | rows | seconds | coalitions a row |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in widest_timed:
        lines.append(
            f"| {r['columns']} | {r['family']} | {r['rows']} | {r['seconds']:.2f} "
            f"| {r['coalitions']} |"
        )
    lines += [
        "",
        "Error of the default budget against the exact values for the same background (largest "
        "difference in a row as a share of its largest contribution, over 8 holdout rows):",
        "",
        "| columns | family | coalitions | median | worst |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in errors:
        lines.append(
            f"| {r['columns']} | {r['family']} | {r['coalitions']} | {r['median']:.1%} "
            f"| {r['worst']:.1%} |"
        )
    lines += [
        "",
        "Past enumeration, against shap's exact TreeExplainer (interventional) and LinearExplainer "
        "on the scikit-learn original with the same background (numeric columns, 8 holdout rows):",
        "",
        "| columns | family | coalitions | median | worst |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in wide:
        lines.append(
            f"| {r['columns']} | {r['family']} | {r['coalitions']} | {r['median']:.1%} "
            f"| {r['worst']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs; nothing written")
    args = parser.parse_args(argv)
    from mlstack.localcloud.lambdas import limit_native_thread_pools

    limit_native_thread_pools()
    timed = speed(0.05 if args.quick else 0.5)
    widest_timed = widest(1 if args.quick else 3)
    errors = error(8)
    wide = wide_error(8)
    command = "python benchmarks/explanations.py" + (" --quick" if args.quick else "")
    text = render(command, timed, widest_timed, errors, wide)
    print(text)
    if not args.quick:
        write_measured(DOC, text, SCRIPT, PROSE)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


PROSE = """# Explanations, measured

`POST /models/{model}/explain` (README, "HTTP API") answers Shapley values of the served ONNX
model over the columns a request sends, against 32 training rows stored with each version. This
page measures what that costs next to a prediction, and how far the sampled values are from the
exact ones.

"""

if __name__ == "__main__":
    sys.exit(main())
