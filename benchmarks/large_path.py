"""The large training path (Preprocess and Train as ECS tasks) against the plain scikit-learn
script, on one generated regression table: time and peak memory, side by side.

    .venv/bin/python benchmarks/large_path.py                                   # 1,000,000 rows
    .venv/bin/python benchmarks/large_path.py --rows 200000
    .venv/bin/python benchmarks/large_path.py --rows 1000000 --write docs/large-path.md
    .venv/bin/python benchmarks/large_path.py --candidates hist_gradient_boosting   # one task

The table (6 numeric columns with 5 % of their cells empty, 3 categorical ones of 5, 12 and 40
levels, a numeric target ``y`` that depends on them plus noise) is generated from a numpy seed and
written to a temporary file a block of rows at a time. Each side then runs in a child process of
its own, so its peak RSS (the child's ``ru_maxrss``, from ``wait4``) is its own:

- the plain script: pandas reads the CSV, an 80/20 split, a Ridge on imputed and scaled numerics
  plus one-hot categoricals, and a HistGradientBoostingRegressor on the numerics and the
  ordinal-encoded categoricals as native categories; one native thread per pool, as each of the
  local cloud's tasks has (``limit_native_thread_pools``), a 1-vCPU Fargate task's share;
- the stack: the local cloud (template, real state machine, moto in process, the training
  image's entrypoint in threads), an upload whose spec asks for ``compute.path: fargate`` and
  one grid point each of ridge and hist_gradient_boosting (``--candidates``), until the run ends;
  then one prediction through the local API. The child's peak is the whole local cloud's: moto's
  stored objects, every function and the training tasks, which run side by side in its threads
  (one candidate alone shows one task's memory).

From the execution history: each state's wall seconds (its first entry to its last exit) and the
child's peak RSS while it ran (sampled every 0.2 s); from the tasks: their own seconds and, by
wrapping the steps' functions in the child (the shipped code is unchanged), the seconds of each
phase inside them (reading the CSV, profiling, writing the splits; reading a split, building the
model input, fitting, exporting).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from measured import machine, write_measured

ROOT = Path(__file__).resolve().parents[1]
TARGET = "y"
NUMERIC = [f"num_{i}" for i in range(6)]
CATEGORICAL = {"cat_a": 5, "cat_b": 12, "cat_c": 40}
MISSING_SHARE = 0.05
FAMILIES = ("ridge", "hist_gradient_boosting")
SPEC = {"target": TARGET, "task": "regression", "compute": {"path": "fargate"}}
MODEL = "large-path"
_BLOCK_ROWS = 100_000
_RSS_LIMIT_MIB = 16 * 1024
_SAMPLE_SECONDS = 0.2

PROSE = """# The large training path, measured

A run whose table is too big for the functions trains as ECS tasks on Fargate (docs/scale.md, "The
Fargate path"). This page measures that path end to end in the local cloud, on a generated
regression table, against the plain scikit-learn script a data scientist would write for the same
table, in the same invocation: time, peak memory (each side in its own process), and where the
stack's time and memory go, state by state.

The local cloud runs everything in one process: moto (S3 holds the upload, the split files and
every artifact in memory), the functions, and the training image's entrypoint in threads; its peak
is therefore an upper bound for any one Fargate task, which on AWS has its own memory. The tasks
here get one native thread each, as a 1-vCPU task would (Arrow's pool, which reads the CSV in the
preprocess task, one thread for the process), and so does the plain script. The machine is shared
and noisy: read ratios, not the last digit.

"""


# -- data ---------------------------------------------------------------------------------------


def numeric_signal(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The target's part from the numeric columns (``num_5`` carries nothing) and one
    interaction with ``cat_a``; the categorical effects and the noise are added to it."""
    return (
        1.5 * x[:, 0]
        - 0.8 * (x[:, 1] - 5.0)
        + 2.0 * np.sin(2.0 * x[:, 2])
        + 0.05 * (x[:, 3] - 100.0)
        + 0.6 * x[:, 4] * (a == 1)
    )


def generate_csv(path: Path, rows: int, seed: int = 0) -> None:
    """The table, deterministic for ``seed``, written ``_BLOCK_ROWS`` rows at a time."""
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(seed + 1)
    levels = {name: [f"{name[-1]}{i:02d}" for i in range(n)] for name, n in CATEGORICAL.items()}
    effect = {
        name: effects.normal(0.0, scale, n)
        for (name, n), scale in zip(CATEGORICAL.items(), (1.0, 0.6, 0.4), strict=True)
    }
    # The 40-level column is skewed, as real ones are: a few frequent levels, a long tail.
    weights = 1.0 / np.arange(1, CATEGORICAL["cat_c"] + 1)
    tail = weights / weights.sum()
    scale = np.asarray([1.0, 2.0, 0.5, 10.0, 1.0, 3.0])
    offset = np.asarray([0.0, 5.0, 0.0, 100.0, 0.0, 0.0])
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join([*NUMERIC, *CATEGORICAL, TARGET]) + "\n")
        for start in range(0, rows, _BLOCK_ROWS):
            n = min(_BLOCK_ROWS, rows - start)
            x = rng.normal(size=(n, len(NUMERIC))) * scale + offset
            a = rng.integers(0, CATEGORICAL["cat_a"], n)
            b = rng.integers(0, CATEGORICAL["cat_b"], n)
            c = rng.choice(CATEGORICAL["cat_c"], size=n, p=tail)
            y = (
                numeric_signal(x, a)
                + effect["cat_a"][a]
                + effect["cat_b"][b]
                + effect["cat_c"][c]
                + rng.normal(0.0, 0.5, n)
            )  # num_5 carries nothing
            holes = rng.random((n, len(NUMERIC))) < MISSING_SHARE
            columns: list[list[str]] = []
            for j in range(len(NUMERIC)):
                cells = np.char.mod("%.5g", x[:, j]).astype(object)
                cells[holes[:, j]] = ""
                columns.append(cells.tolist())
            for name, codes in zip(CATEGORICAL, (a, b, c), strict=True):
                columns.append(np.asarray(levels[name], dtype=object)[codes].tolist())
            columns.append(np.char.mod("%.4f", y).tolist())
            out.writelines(",".join(row) + "\n" for row in zip(*columns, strict=True))


# -- the children ---------------------------------------------------------------------------------


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _limit_threads() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def plain_script(csv_path: Path) -> dict[str, Any]:
    """What a data scientist writes: pandas, a split, two pipelines, each timed."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    _limit_threads()
    phases: dict[str, float] = {}
    categorical = list(CATEGORICAL)
    started = time.perf_counter()
    mark = started

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 2)
        mark = now

    table = pd.read_csv(csv_path)
    phase("read CSV (pandas)")
    features, target = table.drop(columns=TARGET), table[TARGET]
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.2, random_state=0
    )
    phase("split 80/20")
    ridge = make_pipeline(
        ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    NUMERIC,
                ),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        Ridge(alpha=1.0),
    )
    ridge.fit(x_train, y_train)
    phase("ridge fit")
    r2 = {"ridge": round(float(r2_score(y_test, ridge.predict(x_test))), 4)}
    phase("ridge predict")
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    boosting = make_pipeline(
        ColumnTransformer(
            [("categorical", ordinal, categorical), ("numeric", "passthrough", NUMERIC)]
        ),
        HistGradientBoostingRegressor(
            categorical_features=list(range(len(categorical))), random_state=0
        ),
    )
    boosting.fit(x_train, y_train)
    phase("hist_gradient_boosting fit")
    r2["hist_gradient_boosting"] = round(float(r2_score(y_test, boosting.predict(x_test))), 4)
    phase("hist_gradient_boosting predict")
    return {
        "rows": len(table),
        "seconds": round(time.perf_counter() - started, 2),
        "phases": phases,
        "r2": r2,
    }


class PhaseClock:
    """Seconds spent in named functions of the steps' modules, per thread (a task is a thread)."""

    def __init__(self) -> None:
        self.seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.thread_label: dict[int, str] = {}
        self._lock = threading.Lock()

    def wrap(self, module: Any, name: str, label: str | None = None) -> None:
        original = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                with self._lock:
                    self.seconds[threading.get_ident()][label or name] += spent

        setattr(module, name, timed)

    def label_thread(self, module: Any, name: str, label_of: Callable[..., str]) -> None:
        """Name the calling thread after an argument of ``module.name`` (the candidate)."""
        original = getattr(module, name)

        def labelled(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.thread_label[threading.get_ident()] = label_of(*args, **kwargs)
            return original(*args, **kwargs)

        setattr(module, name, labelled)

    def report(self) -> dict[str, dict[str, float]]:
        return {
            self.thread_label.get(thread, f"thread {thread}"): {
                k: round(v, 2) for k, v in phases.items()
            }
            for thread, phases in self.seconds.items()
        }


def instrument_in(cloud: Any, clock: PhaseClock) -> None:
    """Time the phases of the preprocess and train tasks: the modules the image's entrypoint
    imports share this process's ``sys.modules``. They are imported here under a function's
    environment, as the local cloud's first invocation would import them: the observability
    module reads its namespace and log level when imported."""
    assert cloud.stack is not None
    assert cloud.lambdas is not None
    name = cloud.stack.physical_ids["PreprocessFunction"]
    configuration = cloud.client("lambda").get_function_configuration(FunctionName=name)
    variables = configuration["Environment"]["Variables"]
    cloud.lambdas.apply_environment({k: str(v) for k, v in variables.items()})
    from mlstack_evaluate import evaluate
    from mlstack_preprocess import preprocess
    from mlstack_train import train

    sys.path.insert(0, str(ROOT / "containers" / "training"))  # the image's own package
    from mlstack_task import columnar

    clock.label_thread(preprocess, "preprocess", lambda *a, **k: "preprocess task")
    for name, label in (
        ("read_dataset", "read + parse CSV"),
        ("target_values", "target values"),
        ("prepare", "prepare (target, split, profile kinds)"),
        ("model_feeds", "model inputs (cells -> arrays)"),
        ("write_split_inputs", "write split inputs (npz)"),
        ("training_baseline", "drift baseline"),
    ):
        clock.wrap(preprocess, name, label)
    clock.wrap(columnar, "write_split_to", "write split files")  # the image's CSV engine
    clock.label_thread(
        train, "train_and_store", lambda run, candidate, **k: f"train {candidate['family']}"
    )
    for name, label in (
        ("read_split_inputs", "load split inputs (npz)"),
        ("model_input", "model input"),
        ("fit_candidate", "fit"),
        ("export_onnx", "ONNX export"),
        ("sklearn_holdout_outputs", "holdout outputs (sklearn)"),
    ):
        clock.wrap(train, name, label)
    clock.label_thread(evaluate, "evaluate", lambda *a, **k: "evaluate")
    for name, label in (
        ("read_split", "read + parse holdout CSV"),
        ("Holdout", "holdout target"),
        ("measure_candidate", "candidates (feeds as served, ONNX, parity)"),
        ("measure_champion", "production"),
        ("decide", "gate"),
        ("rehearse", "serving rehearsal"),
        ("prediction_baseline", "prediction baseline"),
    ):
        clock.wrap(evaluate, name, label)


class RssSampler:
    """The process's RSS every ``_SAMPLE_SECONDS``, with wall-clock times."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), _rss_mib()))
            self._stop.wait(_SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> float | None:
        inside = [rss for t, rss in self.samples if start - _SAMPLE_SECONDS <= t <= end]
        return round(max(inside), 1) if inside else None


def _history(cloud: Any, execution_arn: str) -> Iterator[dict[str, Any]]:
    sfn = cloud.client("stepfunctions")
    request: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**request)
        yield from page["events"]
        if not page.get("nextToken"):
            return
        request["nextToken"] = page["nextToken"]


def state_spans(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per state, in order of first entry: entries, first entry and last exit (epoch seconds),
    and each entry's own seconds (an exit paired with the earliest open entry of its state: a
    Map's iterations enter a state once each, side by side)."""
    spans: dict[str, dict[str, Any]] = {}
    open_entries: dict[str, deque[float]] = defaultdict(deque)
    for event in events:
        at = event["timestamp"].timestamp()
        if "stateEnteredEventDetails" in event:
            name = event["stateEnteredEventDetails"]["name"]
            span = spans.setdefault(
                name, {"state": name, "entered": 0, "start": at, "end": None, "each": []}
            )
            span["entered"] += 1
            open_entries[name].append(at)
        elif "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            if open_entries[name]:
                spans[name]["end"] = at
                spans[name]["each"].append(round(at - open_entries[name].popleft(), 2))
    return list(spans.values())


def _task_label(argv: list[str]) -> str:
    if argv[0] == "preprocess":
        return "preprocess"
    return f"train {json.loads(argv[argv.index('--candidate') + 1])['family']}"


def stack_run(csv_path: Path, timeout: float, families: list[str]) -> dict[str, Any]:
    """One upload through the local cloud's large path, and one prediction."""
    import urllib.request

    from mlstack.cli.demo import as_instance
    from mlstack.cli.stack import StackClient
    from mlstack.localcloud import LocalCloud, quiet_local_logs

    quiet_local_logs()
    clock = PhaseClock()
    result: dict[str, Any] = {}
    with RssSampler() as rss:
        started = time.perf_counter()
        with LocalCloud(parameters={"LogLevel": "ERROR"}) as cloud:
            result["cloud_start_seconds"] = round(time.perf_counter() - started, 1)
            result["rss_after_start_mib"] = round(_rss_mib(), 1)
            instrument_in(cloud, clock)
            stack = StackClient(cloud.stack_name)
            started = time.perf_counter()
            # Objects, not bare names: a bare family expands to its default grid (ridge has 3
            # points, hist_gradient_boosting 4); an object is one candidate, the defaults.
            spec = {**SPEC, "candidates": [{"family": family} for family in families]}
            upload = stack.upload_dataset(MODEL, csv_path, spec, file_name="large.csv")
            result["upload_seconds"] = round(time.perf_counter() - started, 2)
            execution_arn = stack.find_execution(upload, timeout=120)
            outcome = cloud.wait_for_execution(execution_arn, timeout=timeout)
            result["seconds"] = round(time.perf_counter() - started, 1)
            result["status"] = outcome["status"]
            if outcome["status"] != "SUCCEEDED":
                result["error"] = outcome.get("error")
                result["cause"] = (outcome.get("cause") or "")[:2000]
            events = list(_history(cloud, execution_arn))
            spans = state_spans(events)
            for span in spans:
                if span["start"] is not None and span["end"] is not None:
                    span["seconds"] = round(span["end"] - span["start"], 2)
                    span["peak_rss_mib"] = rss.peak_between(span["start"], span["end"])
            result["states"] = spans
            assert cloud.tasks is not None
            result["tasks"] = [
                {
                    "command": _task_label(task.argv),
                    "seconds": round(task.seconds, 2),
                    "memory_mib": task.memory_mib,
                    "exit_code": task.exit_code,
                }
                for task in cloud.tasks.stopped
            ]
            result["task_phases"] = clock.report()
            production = stack.registry.get_alias(MODEL)
            result["promoted_version"] = production
            versions = stack.registry.list_versions(MODEL)
            if versions:
                latest = max(versions, key=lambda v: int(v["version"]))
                result["version_status"] = latest.get("status")
                result["winner"] = latest.get("family")
                result["metrics"] = latest.get("metrics")
                result["decision_reasons"] = latest.get("decision_reasons")
                key = latest.get("evaluation_key")
                if key:
                    evaluation = json.loads(
                        cloud.client("s3")
                        .get_object(Bucket=stack.outputs["ModelBucketName"], Key=key)["Body"]
                        .read()
                    )
                    result["excluded"] = {
                        c["candidate_id"]: c["excluded"]
                        for c in evaluation.get("candidates", [])
                        if c.get("excluded")
                    }
            if production is not None:
                with csv_path.open(encoding="utf-8") as rows:
                    header = rows.readline().strip().split(",")
                    first = dict(zip(header, rows.readline().strip().split(","), strict=True))
                request = urllib.request.Request(
                    cloud.api_url.rstrip("/") + f"/models/{MODEL}/predict",
                    data=json.dumps({"instances": [as_instance(first, TARGET)]}).encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                asked = time.perf_counter()
                with urllib.request.urlopen(request, timeout=60) as response:
                    answer = json.loads(response.read())
                result["prediction"] = {
                    "value": answer["predictions"][0],
                    "version": answer.get("version"),
                    "truth": float(first[TARGET]),
                    "seconds": round(time.perf_counter() - asked, 3),
                }
    return result


def child(side: str, csv_path: Path, out: Path, timeout: float, families: list[str]) -> None:
    measured = plain_script(csv_path) if side == "plain" else stack_run(csv_path, timeout, families)
    measured["peak_rss_mib_self"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    out.write_text(json.dumps(measured, default=str))


# -- the parent -----------------------------------------------------------------------------------


def _child_environment() -> dict[str, str]:
    """The worktree's own packages first, as the functions and the image see them."""
    paths = [str(ROOT), str(ROOT / "layers" / "core")]
    paths += [str(p) for p in sorted((ROOT / "functions").iterdir()) if p.is_dir()]
    existing = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*paths, *([existing] if existing else [])]),
    }


def run_child(side: str, csv_path: Path, timeout: float, families: list[str]) -> dict[str, Any]:
    """Run one side in a child process; its result, wall seconds and peak RSS (``wait4``).
    The child is stopped past ``timeout`` seconds or ``_RSS_LIMIT_MIB``."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        side,
        "--csv",
        str(csv_path),
        "--out",
        str(out),
        "--timeout",
        str(timeout),
        "--candidates",
        ",".join(families),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=_child_environment())
    stopped_for = None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        rss = 0.0
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
        except OSError:
            pass
        elapsed = time.perf_counter() - started
        if stopped_for is None and (rss > _RSS_LIMIT_MIB or elapsed > timeout + 120):
            stopped_for = f"RSS {rss:.0f} MiB" if rss > _RSS_LIMIT_MIB else f"{elapsed:.0f} s"
            process.kill()
        time.sleep(0.2)
    process.returncode = os.waitstatus_to_exitcode(status)
    measured: dict[str, Any] = {}
    if out.exists() and out.stat().st_size:
        measured = json.loads(out.read_text())
    out.unlink(missing_ok=True)
    measured["exit_code"] = process.returncode
    measured["wall_seconds"] = round(time.perf_counter() - started, 1)
    measured["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
    if stopped_for:
        measured["stopped_for"] = stopped_for
    return measured


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(
    rows: int, file_mib: float, plain: dict[str, Any], stack: dict[str, Any], command: str
) -> str:
    lines = [
        f"`{command}` on {machine()}, shared with other work (noisy).",
        "",
        f"{rows:,} rows, {file_mib:.1f} MiB of CSV. Stack run: "
        + (
            f"promoted (version {stack.get('promoted_version')}, winner "
            f"{stack.get('winner')}), served: one prediction "
            f"{stack['prediction']['value']:.3f} for a row whose y is "
            f"{stack['prediction']['truth']:.3f}."
            if stack.get("prediction")
            else f"{stack.get('status')} {stack.get('error') or ''} "
            f"{(stack.get('cause') or stack.get('stopped_for') or '')[:300]} "
            f"(version status {stack.get('version_status')}: "
            f"{'; '.join(stack.get('decision_reasons') or [])})"
        ),
        "",
        "| | plain script | stack, large path (local cloud) | stack / plain |",
        "|---|---:|---:|---:|",
    ]
    plain_s, stack_s = plain.get("seconds"), stack.get("seconds")
    ratio = f"{stack_s / plain_s:.1f}x" if plain_s and stack_s else "-"
    lines.append(
        f"| seconds (plain: read to last score; stack: upload to run end) | {plain_s} | {stack_s} "
        f"| {ratio} |"
    )
    plain_m, stack_m = plain.get("peak_rss_mib"), stack.get("peak_rss_mib")
    memory_ratio = f"{stack_m / plain_m:.1f}x" if plain_m and stack_m else "-"
    lines.append(
        f"| peak RSS, MiB (whole child process) | {_mib(plain_m)} | {_mib(stack_m)} | "
        f"{memory_ratio} |"
    )
    per_row = [None if m is None else m * 2**20 / rows for m in (plain_m, stack_m)]
    lines.append(
        "| peak RSS per row, bytes | "
        + " | ".join("-" if b is None else f"{b:,.0f}" for b in per_row)
        + " | |"
    )
    r2 = plain.get("r2") or {}
    served = (stack.get("metrics") or {}).get("r2")
    lines.append(
        f"| holdout R² | ridge {r2.get('ridge')}, hist_gradient_boosting "
        f"{r2.get('hist_gradient_boosting')} | {stack.get('winner')} "
        f"{'-' if served is None else round(float(served), 4)} | |"
    )
    lines += [
        "",
        f"Local cloud start {stack.get('cloud_start_seconds')} s and "
        f"{_mib(stack.get('rss_after_start_mib'))} MiB before the upload (not in the stack's "
        f"seconds; in its peak); the upload itself {stack.get('upload_seconds')} s.",
        *[
            f"\nEvaluate excluded {candidate}: {reason}"
            for candidate, reason in (stack.get("excluded") or {}).items()
        ],
        "",
        "The stack's states: wall seconds from the first entry to the last exit, each entry's "
        "own seconds when a Map's iterations enter it side by side, and the child's peak RSS "
        "while the state ran:",
        "",
        "| state | entered | seconds | each entry | peak RSS, MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for span in stack.get("states", []):
        each = span.get("each") or []
        lines.append(
            f"| {span['state']} | {span['entered']} | {span.get('seconds', '-')} | "
            f"{', '.join(map(str, each)) if len(each) > 1 else ''} | "
            f"{_mib(span.get('peak_rss_mib'))} |"
        )
    lines += ["", "The tasks (their own seconds, and the seconds of each phase inside them):", ""]
    lines += ["| task | seconds | memory asked, MiB | phases |", "|---|---:|---:|---|"]
    phases = stack.get("task_phases", {})
    for task in stack.get("tasks", []):
        label = "preprocess task" if task["command"] == "preprocess" else task["command"]
        inside = ", ".join(f"{k} {v}" for k, v in phases.get(label, {}).items())
        lines.append(
            f"| {task['command']} | {task['seconds']} | {task['memory_mib']} | {inside or '-'} |"
        )
    evaluated = phases.get("evaluate")
    if evaluated:
        inside = ", ".join(f"{k} {v}" for k, v in evaluated.items())
        lines += ["", f"Evaluate (a function, not a task), its phases in seconds: {inside}."]
    lines += ["", "The plain script's phases (seconds):", ""]
    lines.append(", ".join(f"{k} {v}" for k, v in (plain.get("phases") or {}).items()) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800, help="stack run limit, seconds")
    parser.add_argument(
        "--candidates",
        default=",".join(FAMILIES),
        help="the stack's candidate families, one grid point each (default: ridge and "
        "hist_gradient_boosting); fewer shows one training task's own memory",
    )
    parser.add_argument("--write", type=Path, help="write the measured block of this document")
    parser.add_argument("--child", choices=("plain", "stack"), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    families = [name.strip() for name in args.candidates.split(",") if name.strip()]
    if args.child:
        child(args.child, args.csv, args.out, args.timeout, families)
        return
    command = f"python benchmarks/large_path.py --rows {args.rows}"
    if families != list(FAMILIES):
        command += f" --candidates {','.join(families)}"
    with tempfile.TemporaryDirectory(prefix="large-path-") as directory:
        csv_path = Path(directory) / "large.csv"
        started = time.perf_counter()
        generate_csv(csv_path, args.rows, args.seed)
        file_mib = csv_path.stat().st_size / 2**20
        print(
            f"generated {args.rows:,} rows, {file_mib:.1f} MiB in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        plain = run_child("plain", csv_path, args.timeout, families)
        print("plain:", json.dumps(plain), flush=True)
        stack = run_child("stack", csv_path, args.timeout, families)
        print("stack:", json.dumps(stack), flush=True)
    text = render(args.rows, file_mib, plain, stack, command)
    print(text)
    if args.write and (plain.get("exit_code"), stack.get("exit_code")) != (0, 0):
        sys.exit(f"{args.write} not written: a side failed (see above)")
    if args.write:
        # One block per table size, so the document keeps a million rows beside ten million.
        write_measured(args.write, text, f"large_path.py, {args.rows:,} rows,", PROSE)


if __name__ == "__main__":
    main()
