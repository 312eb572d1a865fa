"""Serving benchmarks: the prediction handler against raw onnxruntime and scikit-learn.

    make bench                                        # everything; rewrites docs/performance.md
    .venv/bin/python benchmarks/serving.py --quick    # fewer repeats, no file written

For every zoo family (its default parameters from mlstack_core.candidates, plus a fully grown
100-tree forest, the known bad case) one Pipeline is trained on the same mixed data (16 numeric +
4 categorical columns with missing values, 3 classes), exported by the zoo's own export_onnx and
registered in an in-process moto registry. Then, in one process and interleaved so the machine's
noise hits all of them alike, at batch 1, 100, 1,000 and 10,000 rows:

- handler: API Gateway event in → response dict out, through mlstack_predict.app.handler
  (JSON decode, validation, tensors, onnxruntime, JSON encode, logging, the EMF metrics line, and
  drift sampling against the version's baseline, as in production);
- raw: ``session.run`` on prebuilt tensors, the same session the handler uses;
- json, orjson: ``json.loads`` (standard library) and ``orjson.loads`` (what the handler uses) of
  the request body;
- sklearn: ``Pipeline.predict_proba`` on the prebuilt object matrix;
- sklearn handler: benchmarks/sklearn_handler.py warm, the same event in: what serving the same
  model with scikit-learn costs (JSON, matrix, ``predict_proba``, JSON; no validation).

Medians are reported, and the ratios the issue sets targets for. Cold start is measured on the
``sam build`` output (``make build``): a new ``python3.12 -I -S`` process with only the built
function + layers (+ boto3, which the Lambda runtime ships) on sys.path runs import + alias +
artifact load + session + first prediction against a moto server; the scikit-learn handler
(benchmarks/sklearn_handler.py) does the same with joblib, alternating runs. The serving bundle
size comes from mlstack.checks.build on the same build.

Why one file of this size: a benchmark is run and read on its own, from one command.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import importlib
import importlib.util
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT),
    str(ROOT / "layers" / "core"),
    str(ROOT / "functions" / "predict"),
    str(ROOT / "functions" / "train"),
]
from measured import interleaved_rounds, use_predict_environment  # noqa: E402

use_predict_environment()

import numpy as np  # noqa: E402

from mlstack.checks.build import runtime_python  # noqa: E402
from mlstack_core.contract import Batch, build_inputs  # noqa: E402
from mlstack_core.storage_keys import version_model_key  # noqa: E402

BATCHES = (1, 100, 1_000, 10_000)
N_NUMERIC, N_CATEGORICAL = 16, 4
TRAIN_ROWS = 20_000
CLASSES = ["low", "mid", "high"]
BUILD = ROOT / ".aws-sam" / "build"
DOC = ROOT / "docs" / "performance.md"
PLOT = ROOT / "docs" / "performance.png"
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"
SKLEARN_TARGET = ROOT / ".aws-sam" / "bench-sklearn-py312"


# data ---------------------------------------------------------------------------------------------
def make_data(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Records as a client sends them, the object matrix the zoo's pipelines take, labels."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(n, N_NUMERIC))
    levels = [[f"c{j}_{k}" for k in range(4 + 2 * j)] for j in range(N_CATEGORICAL)]
    categorical = np.array(
        [
            [levels[j][i] for j, i in enumerate(row)]
            for row in rng.integers(0, 4, (n, N_CATEGORICAL))
        ]
    )
    score = numeric[:, 0] + 0.5 * numeric[:, 1] ** 2 - numeric[:, 2] * numeric[:, 3]
    score += (categorical[:, 0] == "c0_1") * 1.0 + rng.normal(0, 0.7, n)
    labels = np.array(CLASSES, dtype=object)[np.digitize(score, [-0.3, 1.0])]
    numeric[rng.random(numeric.shape) < 0.05] = np.nan
    categorical[rng.random(categorical.shape) < 0.05] = ""
    names = [f"x{j}" for j in range(N_NUMERIC)] + [f"c{j}" for j in range(N_CATEGORICAL)]
    records = []
    for num_row, cat_row in zip(numeric.tolist(), categorical.tolist(), strict=True):
        values = [None if np.isnan(v) else round(v, 4) for v in num_row]
        values += [c or None for c in cat_row]
        records.append(dict(zip(names, values, strict=True)))
    matrix = np.empty((n, N_NUMERIC + N_CATEGORICAL), dtype=object)
    matrix[:, :N_NUMERIC] = numeric
    matrix[:, N_NUMERIC:] = categorical
    return records, matrix, labels


def schema() -> dict[str, Any]:
    numeric = [f"x{j}" for j in range(N_NUMERIC)]
    categorical = [f"c{j}" for j in range(N_CATEGORICAL)]
    return {
        "target": "y",
        "task": "classification",
        "features": [{"name": c, "kind": "numeric"} for c in numeric]
        + [{"name": c, "kind": "categorical"} for c in categorical],
        "numeric": numeric,
        "categorical": categorical,
        "classes": sorted(CLASSES),
        "label_type": "str",
    }


@dataclass
class Family:
    name: str
    family: str
    params: dict[str, Any]
    pipeline: Any = None
    onnx: bytes = b""
    fit_seconds: float = 0.0
    max_batch: int = max(BATCHES)
    # the drift baseline Evaluate would store: the handler samples drift counts against it
    drift_baseline: dict[str, Any] | None = None


def families() -> list[Family]:
    from mlstack_core.candidates import CATALOG
    from mlstack_core.tasks import CLASSIFICATION

    catalog = CATALOG[CLASSIFICATION]
    chosen = [
        Family(name, name, dict(catalog[name].defaults))
        for name in (
            "logistic_regression",
            "random_forest",
            "extra_trees",
            "hist_gradient_boosting",
            "gradient_boosting",
            "knn",
        )
    ]
    # The known bad case, outside the zoo's defaults: 100 fully grown trees (a spec can ask for it).
    deep = {
        **catalog["random_forest"].defaults,
        "n_estimators": 100,
        "max_leaf_nodes": None,
        "max_depth": None,
        "min_samples_leaf": 1,
    }
    chosen.append(Family("random_forest_fully_grown", "random_forest", deep))
    return chosen


def train(family: Family, matrix: np.ndarray, labels: np.ndarray) -> None:
    from mlstack_train import zoo

    started = time.perf_counter()
    pipeline = zoo.build_pipeline(
        family.family,
        family.params,
        task="classification",
        n_numeric=N_NUMERIC,
        n_categorical=N_CATEGORICAL,
        seed=0,
    )
    pipeline.fit(matrix, labels)
    family.fit_seconds = time.perf_counter() - started
    family.pipeline = pipeline
    family.drift_baseline = drift_baseline(pipeline, matrix[:5_000])
    model = zoo.export_onnx(
        pipeline, task="classification", n_numeric=N_NUMERIC, n_categorical=N_CATEGORICAL
    )
    family.onnx = model.SerializeToString()


def drift_baseline(pipeline: Any, matrix: np.ndarray) -> dict[str, Any]:
    from mlstack_core.drift import feature_baseline, prediction_baseline

    numeric = matrix[:, :N_NUMERIC].astype(np.float32)
    categorical = matrix[:, N_NUMERIC:].astype(str)
    baseline = feature_baseline(schema(), {"numeric": numeric, "categorical": categorical})
    baseline["prediction"] = prediction_baseline(
        "classification", {"label": pipeline.predict(matrix)}, sorted(CLASSES)
    )
    return baseline


# registry -----------------------------------------------------------------------------------------
def create_resources(s3: Any, dynamodb: Any) -> None:
    from mlstack_core.registry import TABLE_DEFINITION

    s3.create_bucket(Bucket=os.environ["MODEL_BUCKET"])
    dynamodb.create_table(
        TableName=os.environ["REGISTRY_TABLE"],
        **TABLE_DEFINITION,
    )


def publish(s3: Any, registry: Any, model: str, family: Family) -> None:
    import joblib

    bucket = os.environ["MODEL_BUCKET"]
    version = registry.allocate_version(model)
    key = version_model_key(model, version)
    s3.put_object(Bucket=bucket, Key=key, Body=family.onnx)
    pickled = io.BytesIO()
    joblib.dump(family.pipeline, pickled)
    s3.put_object(Bucket=bucket, Key=f"{key}.joblib", Body=pickled.getvalue())
    document = {
        "family": family.family,
        "task": "classification",
        "metric": "accuracy",
        "metrics": {"accuracy": 0.0},
        "schema": schema(),
        "classes": sorted(CLASSES),
        "artifact": {
            "bucket": bucket,
            "key": key,
            "sha256": hashlib.sha256(family.onnx).hexdigest(),
            "bytes": len(family.onnx),
        },
        "sklearn_artifact": {"bucket": bucket, "key": f"{key}.joblib"},
        "drift_baseline": family.drift_baseline,
    }
    registry.put_version(model, version, "Approved", document)
    registry.move_alias(model, version, expected=None, actor="bench", reason="bench")


# events -------------------------------------------------------------------------------------------
def api_event(model: str, body: str) -> dict[str, Any]:
    template = json.loads((ROOT / "tests" / "events" / "apigw_predict.json").read_text())
    event = copy.deepcopy(template)
    path = f"/models/{model}/predict"
    event.update(
        resource="/models/{model}/predict",
        path=path,
        httpMethod="POST",
        pathParameters={"model": model},
        queryStringParameters=None,
        body=body,
        isBase64Encoded=False,
    )
    event["requestContext"].update(resourcePath="/models/{model}/predict", path=f"/v1{path}")
    return event


class Context:
    function_name = "mlstack-PredictFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlstack-PredictFunction"
    aws_request_id = "0f5f3f5c-0000-4000-8000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def load_app(path: Path | None = None) -> Any:
    """The prediction function's handler module, or the handler module at ``path``."""
    if path is None:
        return importlib.import_module("mlstack_predict.app")
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# timing -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """The handler prints one EMF line per request, as on Lambda: a real write, to /dev/null."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def interleaved(timers: dict[str, Callable[[], Any]], budget_s: float) -> dict[str, float]:
    """Median seconds per call of each callable, over interleaved rounds (measured.py)."""
    samples = interleaved_rounds(timers, budget_s)
    return {name: statistics.median(values) for name, values in samples.items()}


def warm_benchmarks(
    fams: list[Family], records: list[dict[str, Any]], matrix: np.ndarray, budget_s: float
) -> list[dict[str, Any]]:
    import boto3
    import orjson
    from moto import mock_aws

    from mlstack_core.registry import Registry

    rows = []
    with mock_aws():
        s3 = boto3.client("s3")
        dynamodb = boto3.resource("dynamodb")
        create_resources(s3, dynamodb)
        registry = Registry(os.environ["REGISTRY_TABLE"], dynamodb)
        for family in fams:
            publish(s3, registry, family.name, family)
        app = load_app()
        sklearn_app = load_app(ROOT / "benchmarks" / "sklearn_handler.py")
        from mlstack_predict import predictor

        predictor.reset_predictor()
        context = Context()
        for family in fams:
            with stdout_to_devnull():
                loaded = predictor.get_predictor().model_for(family.name)
            session, names = loaded.session, loaded.layout.output_names
            for n in (b for b in BATCHES if b <= family.max_batch):
                body = json.dumps({"instances": records[:n]})
                columns = list(records[0])
                columnar = json.dumps(
                    {"columns": columns, "data": [[r[c] for c in columns] for r in records[:n]]}
                )
                event, event_columnar = (
                    api_event(family.name, body),
                    api_event(family.name, columnar),
                )
                feeds = build_inputs(Batch.of_instances(records[:n]), loaded.layout)
                part = matrix[:n]
                with stdout_to_devnull():
                    response = app.handler(event, context)
                    assert response["statusCode"] == 200, response["body"][:300]
                    timers: dict[str, Callable[[], Any]] = {
                        "handler": lambda event=event: app.handler(event, context),
                        "handler_columnar": lambda e=event_columnar: app.handler(e, context),
                        "raw": lambda f=feeds, s=session, o=names: s.run(o, f),
                        "json": lambda body=body: json.loads(body),
                        "orjson": lambda body=body: orjson.loads(body),
                        "sklearn": lambda part=part, p=family.pipeline: p.predict_proba(part),
                        "sklearn_handler": lambda event=event: sklearn_app.handler(event, context),
                    }
                    times = interleaved(timers, budget_s * (1 + n / 2000))
                rows.append(
                    {
                        "family": family.name,
                        "batch": n,
                        **{f"{k}_ms": v * 1000 for k, v in times.items()},
                        "handler_over_raw": times["handler"] / times["raw"],
                        "handler_over_raw_json": times["handler"] / (times["raw"] + times["json"]),
                        "handler_over_raw_orjson": (
                            times["handler"] / (times["raw"] + times["orjson"])
                        ),
                        "sklearn_over_handler": times["sklearn"] / times["handler"],
                        "sklearn_handler_over_handler": times["sklearn_handler"] / times["handler"],
                        "sklearn_over_raw": times["sklearn"] / times["raw"],
                    }
                )
                print(_row_text(rows[-1]), flush=True)
    return rows


def _row_text(row: dict[str, Any]) -> str:
    return (
        f"{row['family']:28} {row['batch']:>6}  handler {row['handler_ms']:9.3f} ms  "
        f"raw {row['raw_ms']:9.3f}  json {row['json_ms']:8.3f}  sklearn {row['sklearn_ms']:9.3f}  "
        f"h/raw {row['handler_over_raw']:5.2f}  h/(raw+json) {row['handler_over_raw_json']:5.2f}  "
        f"h/(raw+orjson) {row['handler_over_raw_orjson']:5.2f}  "
        f"sklearn/h {row['sklearn_over_handler']:7.1f}  "
        f"sklearn-handler/h {row['sklearn_handler_over_handler']:6.1f}"
    )


# cold start ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sklearn_for(python: str) -> Path:
    """scikit-learn + joblib for the runtime Python, installed once (same version as the venv)."""
    import sklearn

    marker = SKLEARN_TARGET / f".sklearn-{sklearn.__version__}"
    if not marker.exists():
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(SKLEARN_TARGET),
                f"scikit-learn=={sklearn.__version__}",
                "joblib",
                "boto3",
            ],
            check=True,
        )
        marker.touch()
    return SKLEARN_TARGET


CHILD = """
import sys, time, json
started = time.perf_counter()
sys.path[:0] = {path!r}
import {module} as handler_module
imported = time.perf_counter()
event = json.loads({event!r})
class Context:
    function_name = "bench"; memory_limit_in_mb = 1024; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
response = handler_module.handler(event, Context())
answered = time.perf_counter()
assert response["statusCode"] == 200, response
times = {{"import_s": imported - started, "first_request_s": answered - imported}}
sys.stderr.write(json.dumps(times) + "\\n")
"""


def predict_environment() -> dict[str, str]:
    """PredictFunction's literal environment variables in template.yaml (references, such as the
    bucket and table names, are left to the benchmark's own resources)."""
    from mlstack.sam import load_template

    template = load_template(ROOT / "template.yaml")
    variables = template["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    return {name: value for name, value in variables.items() if isinstance(value, str)}


def cold_start(family: Family, records: list[dict[str, Any]], runs: int) -> dict[str, Any] | None:
    python = runtime_python()
    function_dir = BUILD / "PredictFunction"
    if python is None or not function_dir.is_dir():
        print("cold start: skipped (needs `make build` and python3.12)")
        return None
    import boto3
    from moto.server import ThreadedMotoServer

    from mlstack_core.registry import Registry

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint)
        create_resources(s3, dynamodb)
        publish(s3, Registry(os.environ["REGISTRY_TABLE"], dynamodb), family.name, family)
        runtime = BUILD.parent / "runtime-provided"  # boto3, as mlstack.checks.build installs it
        if not (runtime / "boto3").is_dir():
            subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--target", str(runtime), "boto3"],
                check=True,
            )
        layers = [BUILD / "CoreLayer" / "python", BUILD / "ServingLayer" / "python"]
        onnx_path = [str(function_dir), *map(str, layers), str(runtime)]
        sklearn_path = [
            str(ROOT / "benchmarks"),
            str(BUILD / "CoreLayer" / "python"),
            str(sklearn_for(python)),
        ]
        body = json.dumps({"instances": records[:1]})
        event = json.dumps(api_event(family.name, body))
        env = {
            # The prediction function's own settings, as template.yaml deploys it (the AWS
            # client among them), then this machine's endpoint and credentials.
            **predict_environment(),
            "PATH": os.environ.get("PATH", ""),
            "AWS_ENDPOINT_URL": endpoint,
            **{
                k: os.environ[k]
                for k in (
                    "AWS_DEFAULT_REGION",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN",
                    "POWERTOOLS_SERVICE_NAME",
                    "POWERTOOLS_METRICS_NAMESPACE",
                    "POWERTOOLS_LOG_LEVEL",
                    "MODEL_BUCKET",
                    "REGISTRY_TABLE",
                )
            },
        }
        programs = {
            "onnx": CHILD.format(path=onnx_path, module="mlstack_predict.app", event=event),
            "sklearn": CHILD.format(path=sklearn_path, module="sklearn_handler", event=event),
        }
        samples: dict[str, list[dict[str, float]]] = {"onnx": [], "sklearn": []}
        for _ in range(runs):
            for name, program in programs.items():
                t0 = time.perf_counter()
                done = subprocess.run(
                    [python, "-I", "-S", "-B", "-c", program],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                )
                wall = time.perf_counter() - t0
                if done.returncode != 0:
                    raise RuntimeError(f"{name} cold start failed:\n{done.stderr[-2000:]}")
                parts = json.loads(done.stderr.strip().splitlines()[-1])
                samples[name].append({"wall_s": wall, **parts})
        result: dict[str, Any] = {"runs": runs, "python": python, "model": family.name}
        for name, values in samples.items():
            for key in ("wall_s", "import_s", "first_request_s"):
                result[f"{name}_{key}"] = statistics.median(v[key] for v in values)
        result["speedup"] = result["sklearn_wall_s"] / result["onnx_wall_s"]
        return result
    finally:
        server.stop()


def import_profile(python: str) -> list[tuple[str, float]]:
    """Cumulative import time of the predict path's top-level packages (-X importtime)."""
    path = [
        str(BUILD / "PredictFunction"),
        str(BUILD / "CoreLayer" / "python"),
        str(BUILD / "ServingLayer" / "python"),
        str(BUILD.parent / "runtime-provided"),
    ]
    program = f"import sys; sys.path[:0] = {path!r}; import mlstack_predict.app"
    done = subprocess.run(
        [python, "-I", "-S", "-B", "-X", "importtime", "-c", program],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"},
        check=True,
    )
    top: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name.strip():
            top[name.strip()] = int(cumulative) / 1e6
    return sorted(top.items(), key=lambda item: -item[1])[:8]


# size ---------------------------------------------------------------------------------------------
def bundle_size() -> dict[str, Any] | None:
    if not (BUILD / "template.yaml").is_file():
        return None
    from mlstack.checks.build import function_sizes

    for row in function_sizes(BUILD):
        if row["function"] == "PredictFunction":
            return {
                "code_mib": row["code"],
                "layers_mib": row["layers"],
                "total_mib": row["total"],
                "total_mb": row["total"] * 2**20 / 1e6,
            }
    return None


# report -------------------------------------------------------------------------------------------
def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["family"] for r in rows))
    columns = 4
    lines = (len(names) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(4 * columns, 3.4 * lines), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        mine = [r for r in rows if r["family"] == name]
        batches = [r["batch"] for r in mine]
        for key, label, style in (
            ("handler_ms", "handler (event → response)", "o-"),
            ("raw_ms", "raw session.run", "s--"),
            ("sklearn_ms", "scikit-learn predict_proba", "^:"),
        ):
            ax.plot(batches, [r[key] for r in mine], style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("batch (rows)")
        ax.set_ylabel("ms (median)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle("Latency vs batch size, per zoo family (lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import onnxruntime
    import sklearn

    return (
        f"{cpu}, {os.cpu_count()} vCPU, Linux {platform.release()}; warm runs on Python "
        f"{platform.python_version()} (onnxruntime {onnxruntime.__version__}, numpy "
        f"{np.__version__}, scikit-learn {sklearn.__version__}), one thread each"
    )


def targets(
    rows: list[dict[str, Any]], cold: dict[str, Any] | None, size: dict[str, Any] | None
) -> list[str]:
    """The targets table, each result computed from this run's rows."""

    def at(batch: int) -> list[dict[str, Any]]:
        return [r for r in rows if r["batch"] == batch]

    def spread(values: list[float], fmt: str = ".2f") -> str:
        return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "not measured"

    single, thousand = at(1), at(1_000)
    forests = [r for r in single if r["family"] in ("random_forest", "extra_trees")]
    ratios = {r["family"]: r["handler_over_raw"] for r in single}
    speedups = [r["sklearn_over_handler"] for r in forests]
    slower = [
        f"{r['family']} at {r['batch']:,}"
        for r in rows
        if r["raw_ms"] > r["sklearn_ms"] and r["family"] != "random_forest_fully_grown"
    ]
    json_ok = bool(thousand) and max(r["handler_over_raw_json"] for r in thousand) <= 1.5
    out = [
        "### Targets (computed from this run)",
        "",
        "| target | result | met |",
        "|---|---|---|",
        "| single-row handler ≤ 3x raw `session.run` | "
        + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items())
        + f" | {'yes' if ratios and max(ratios.values()) <= 3 else 'about: see the ratios'} |",
        f"| single-row handler ≥ 100x faster than scikit-learn (zoo forests) | "
        f"{spread(speedups, '.0f')}x | {'yes' if speedups and min(speedups) >= 100 else 'no'} |",
        "| 1,000-row handler ≤ 1.5x (raw `session.run` + JSON decode) | with `json.loads`: "
        f"{spread([r['handler_over_raw_json'] for r in thousand])}; with `orjson.loads`: "
        f"{spread([r['handler_over_raw_orjson'] for r in thousand])} | "
        f"{'yes' if json_ok else 'no'} (against `json.loads`) |",
    ]
    if cold is not None:
        out.append(
            f"| cold start ≤ 0.5 s, ≥ 5x faster than a scikit-learn handler | "
            f"{cold['onnx_wall_s']:.3f} s, {cold['speedup']:.1f}x | "
            f"{'yes' if cold['onnx_wall_s'] <= 0.5 and cold['speedup'] >= 5 else 'no'} |"
        )
    if size is not None:
        out.append(
            f"| function + layers ≤ 90 MB unzipped | {size['total_mb']:.1f} MB | "
            f"{'yes' if size['total_mb'] <= 90 else 'no'} |"
        )
    out.append(
        "| no zoo default serves slower than scikit-learn (raw `session.run` vs `predict_proba`) "
        f"| {'slower: ' + ', '.join(slower) if slower else 'faster at every batch size'} | "
        f"{'no' if slower else 'yes'} |"
    )
    return [*out, ""]


def markdown(
    command: str,
    fams: list[Family],
    rows: list[dict[str, Any]],
    cold: dict[str, Any] | None,
    imports: list[tuple[str, float]],
    size: dict[str, Any] | None,
) -> str:
    out: list[str] = [
        f"Command: `{command}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {machine()}.",
        "",
        *targets(rows, cold, size),
        "### Warm latency (median ms; ratios from the same interleaved run)",
        "",
        "| family | ONNX MB | batch | handler | handler, columnar | raw session.run | "
        "json.loads | orjson.loads | scikit-learn | scikit-learn handler | handler / raw | "
        "handler / (raw + json) | handler / (raw + orjson) | scikit-learn / handler | "
        "scikit-learn handler / handler |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    size_of = {f.name: len(f.onnx) / 1e6 for f in fams}
    for r in rows:
        out.append(
            f"| {r['family']} | {size_of[r['family']]:.2f} | {r['batch']:,} | "
            f"{r['handler_ms']:.3f} | {r['handler_columnar_ms']:.3f} | {r['raw_ms']:.3f} | "
            f"{r['json_ms']:.3f} | {r['orjson_ms']:.3f} | {r['sklearn_ms']:.3f} | "
            f"{r['sklearn_handler_ms']:.3f} | {r['handler_over_raw']:.2f} | "
            f"{r['handler_over_raw_json']:.2f} | {r['handler_over_raw_orjson']:.2f} | "
            f"{r['sklearn_over_handler']:.1f} | {r['sklearn_handler_over_handler']:.1f} |"
        )
    out += ["", "![latency vs batch size](performance.png)", ""]
    out += ["### Cold start (new process, median)", ""]
    if cold is None:
        out.append("Not measured: needs `make build` (the built package) and python3.12.")
    else:
        out += [
            f"Model: {cold['model']}; {cold['runs']} alternating runs of each with "
            f"`{cold['python']} -I -S`; moto server for S3 and DynamoDB.",
            "",
            "| handler | process wall | import | alias + load + first prediction |",
            "|---|---:|---:|---:|",
            f"| ONNX (built PredictFunction + layers) | {cold['onnx_wall_s']:.3f} s | "
            f"{cold['onnx_import_s']:.3f} s | {cold['onnx_first_request_s']:.3f} s |",
            f"| scikit-learn (benchmarks/sklearn_handler.py) | {cold['sklearn_wall_s']:.3f} s | "
            f"{cold['sklearn_import_s']:.3f} s | {cold['sklearn_first_request_s']:.3f} s |",
            "",
            f"ONNX cold start is {cold['speedup']:.1f}x faster.",
        ]
        if imports:
            out += [
                "",
                "Cumulative import time of the predict path's top-level packages "
                "(`-X importtime`, one run): "
                + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in imports)
                + ".",
            ]
    out += ["", "### Serving bundle (unzipped, `sam build` output)", ""]
    if size is None:
        out.append("Not measured: needs `make build`.")
    else:
        layers = ", ".join(f"{k} {v:.1f} MiB" for k, v in size["layers_mib"].items())
        out.append(
            f"PredictFunction {size['code_mib']:.2f} MiB + {layers} = "
            f"**{size['total_mib']:.1f} MiB ({size['total_mb']:.1f} MB)**."
        )
    return "\n".join(out) + "\n"


def write_section(path: Path, text: str) -> None:
    current = path.read_text() if path.exists() else f"{MARK_START}\n{MARK_END}\n"
    head, _, rest = current.partition(MARK_START)
    _, _, tail = rest.partition(MARK_END)
    path.write_text(f"{head}{MARK_START}\n{text}{MARK_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short runs; nothing written")
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--families", nargs="*", help="only these families")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    budget = 0.05 if args.quick else 0.4

    records, matrix, labels = make_data(TRAIN_ROWS + max(BATCHES), seed=7)
    train_matrix, train_labels = matrix[:TRAIN_ROWS], labels[:TRAIN_ROWS]
    test_records, test_matrix = records[TRAIN_ROWS:], matrix[TRAIN_ROWS:]
    fams = [f for f in families() if not args.families or f.name in args.families]
    for family in fams:
        train(family, train_matrix, train_labels)
        print(
            f"trained {family.name}: {family.fit_seconds:.1f} s, "
            f"ONNX {len(family.onnx) / 1e6:.2f} MB",
            flush=True,
        )
    rows = warm_benchmarks(fams, test_records, test_matrix, budget)
    forest = next((f for f in fams if f.name == "random_forest"), fams[0])
    cold = cold_start(forest, test_records, 2 if args.quick else args.cold_runs)
    python = runtime_python()
    imports = import_profile(python) if cold and python else []
    size = bundle_size()
    command = "make bench" if not args.quick else "benchmarks/serving.py --quick"
    text = markdown(command, fams, rows, cold, imports, size)
    print(text)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "serving.json").write_text(
        json.dumps({"warm": rows, "cold": cold, "imports": imports, "size": size}, indent=1)
    )
    if not args.quick and not args.no_write:
        plot(rows, PLOT)
        write_section(DOC, text)
        print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
