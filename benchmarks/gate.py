"""The training gate's error rates on generated tables: the old gate and the new one, side by side.

    .venv/bin/python benchmarks/gate.py --tables 10 --streams 1 --uploads 3   # a quick look
    .venv/bin/python benchmarks/gate.py --write docs/gate-error-rates.md       # the measurement
    .venv/bin/python benchmarks/gate.py --commit HEAD ...   # the committed code, not the work tree

Every table goes through the real handlers in-process under moto, as the training state machine
runs them: Preprocess, Train per candidate, Evaluate, and (for the flip rate) Register, with the
default spec (only the target: the default candidates, metric and holdout). One Evaluate output
carries both verdicts:

- the new gate: ``evaluation["decision"]`` (beats the reference beyond noise on the per-row log
  loss or squared error, or on the selection metric, Bonferroni-corrected for the viable
  candidates and the measures, and the selection metric not worse beyond noise; docs/gate.md);
- the old gate: ``evaluation["comparison"]["improvement"]``, the selection metric's point
  improvement, > 0 against the baseline (a first version) or >= 0 against production, with the
  serving rehearsal passed.

Three parts:

1. false promotion: the label is a coin flip (or the target pure noise), so every promotion of a
   first version is an error;
2. power: a weak real signal, so every rejection of a first version is an error;
3. flip rate: ten uploads of fresh samples from one unchanging distribution with a moderate
   signal; every challenger that moves production is churn. Two models take the same uploads,
   one registered by the old gate's verdicts and one by the new gate's, so each gate's production
   history is its own.

Two worker processes, each with its own moto, started afresh for every table or stream.
"""

from __future__ import annotations

import os

# Before anything imports handler code: Powertools creates its logger, metrics and tracer at import.
for _name, _value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mlstack",
    "POWERTOOLS_SERVICE_NAME": "mlstack-gate-benchmark",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "LOG_LEVEL": "ERROR",
    "OMP_NUM_THREADS": "1",  # HistGradientBoosting's threads spin on a shared machine
    "DATA_BUCKET": "gate-bench-data",
    "MODEL_BUCKET": "gate-bench-models",
    "REGISTRY_TABLE": "gate-bench-registry",
    "IDEMPOTENCY_TABLE": "gate-bench-idempotency",
    "APPROVAL_ANSWERS_TABLE": "gate-bench-approval-answers",  # read on the approval path only
}.items():
    os.environ[_name] = _value
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from statistics import NormalDist  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from measured import machine, write_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("preprocess", "train", "evaluate", "register")
# The code measured: a copy of functions/ and layers/core taken when the run starts (``snapshot``;
# the workers find it here), so edits to the work tree during a run cannot mix versions.
CODE_VARIABLE = "GATE_BENCHMARK_CODE"


def use_code(code: Path) -> None:
    for path in (code / "layers" / "core", *(code / "functions" / f for f in FUNCTIONS)):
        sys.path.insert(0, str(path))


use_code(Path(os.environ.get(CODE_VARIABLE) or ROOT))
REGION = "us-east-1"
KINDS = ("binary", "3-class", "regression")
LAYOUTS = ("numeric", "categorical", "mixed")
# Signal strengths: the spread of the true logit (classification) or the share of the target's
# variance the features explain (regression). 0.55 gives a logistic regression about 0.60
# holdout accuracy on 500-2,000 rows; 0.4 about 0.44 on three classes (chance 0.33).
WEAK = {"binary": 0.55, "3-class": 0.4, "regression": 0.1}
MODERATE = {"binary": 1.5, "3-class": 1.0, "regression": 0.3}
FLIP_ROWS = 800
FRESH_ROWS = 20_000  # the flip streams' measure of a version's true quality
JUDGED = {"holdout": "judged on a holdout", "cross_validation": "judged by cross-validation"}
CLASSES = {"binary": ("no", "yes"), "3-class": ("red", "green", "blue")}


# ----------------------------------------------------------------------------- tables


class Distribution:
    """Features of one layout and a label with signal ``strength`` (0: none), fixed by ``seed``;
    ``sample`` draws fresh rows from it."""

    def __init__(self, kind: str, layout: str, strength: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.kind, self.layout, self.strength = kind, layout, strength
        self.numeric = 0 if layout == "categorical" else int(rng.integers(2, 9))
        self.categorical = 0 if layout == "numeric" else int(rng.integers(1, 5))
        self.levels = [int(rng.integers(2, 7)) for _ in range(self.categorical)]
        outputs = 3 if kind == "3-class" else 1
        self.weights = rng.normal(size=(self.numeric, outputs))
        self.effects = [rng.normal(size=(n, outputs)) for n in self.levels]
        self.balance = float(rng.choice([0.5, 0.35])) if kind == "binary" else 0.5

    def sample(self, rows: int, rng: np.random.Generator) -> bytes:
        numeric = rng.normal(size=(rows, self.numeric))
        codes = [rng.integers(0, n, size=rows) for n in self.levels]
        outputs = self.weights.shape[1]
        z = numeric @ self.weights if self.numeric else np.zeros((rows, outputs))
        for effect, code in zip(self.effects, codes, strict=True):
            z = z + effect[code]
        spread = z.std(axis=0)
        z = (z - z.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
        label: list[str]
        if self.kind == "regression":
            r2 = self.strength
            noise = rng.normal(size=rows)
            y = 10 + 3 * (math.sqrt(r2) * z[:, 0] + math.sqrt(1 - r2) * noise)
            label = [f"{v:.4f}" for v in y]
        elif self.kind == "binary":
            logit = self.strength * z[:, 0] + math.log(self.balance / (1 - self.balance))
            positive = rng.random(rows) < 1 / (1 + np.exp(-logit))
            label = [CLASSES["binary"][int(p)] for p in positive]
        else:
            logits = self.strength * z
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            drawn = (rng.random((rows, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
            label = [CLASSES["3-class"][min(int(c), 2)] for c in drawn]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                *(f"x{i}" for i in range(self.numeric)),
                *(f"c{i}" for i in range(self.categorical)),
                "label",
            ]
        )
        for r in range(rows):
            writer.writerow(
                [
                    *(f"{v:.4f}" for v in numeric[r]),
                    *(f"{chr(97 + j)}{int(code[r])}" for j, code in enumerate(codes)),
                    label[r],
                ]
            )
        return out.getvalue().encode()


def table_plan(part: str, index: int, seed: int) -> dict[str, Any]:
    """Kind and layout cycle so a small run covers all nine pairs; rows are log-uniform."""
    rng = np.random.default_rng([seed, {"false_promotion": 0, "power": 1}[part], index])
    low, high = (300, 4000) if part == "false_promotion" else (500, 2000)
    return {
        "part": part,
        "index": index,
        "kind": KINDS[index % 3],
        "layout": LAYOUTS[(index // 3) % 3],
        "rows": round(math.exp(rng.uniform(math.log(low), math.log(high)))),
        "seed": int(rng.integers(2**31)),
    }


# ----------------------------------------------------------------------------- the stack


class Context:
    """The attributes Powertools' inject_lambda_context reads."""

    function_name = "mlstack-gate-benchmark"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlstack-gate-benchmark"
    aws_request_id = "11111111-2222-3333-4444-555555555555"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def handler(function: str) -> Any:
    return importlib.import_module(f"mlstack_{function}.app").handler


class Stack:
    """Versioned buckets and the two tables in a fresh moto, and the pipeline's steps."""

    def __enter__(self) -> Stack:
        import boto3
        from moto import mock_aws

        from mlstack_core.idempotency import TABLE_DEFINITION as IDEMPOTENCY
        from mlstack_core.registry import TABLE_DEFINITION
        from mlstack_core.settings import forget

        self._mock = mock_aws()
        self._mock.start()
        forget()
        self.s3 = boto3.client("s3", region_name=REGION)
        for bucket in (os.environ["DATA_BUCKET"], os.environ["MODEL_BUCKET"]):
            self.s3.create_bucket(Bucket=bucket)
            self.s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        dynamodb = boto3.resource("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=os.environ["REGISTRY_TABLE"], **TABLE_DEFINITION)
        dynamodb.create_table(TableName=os.environ["IDEMPOTENCY_TABLE"], **IDEMPOTENCY)
        from mlstack_core.registry import Registry

        self.registry = Registry(os.environ["REGISTRY_TABLE"], dynamodb)
        self.context = Context()
        self.runs = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self._mock.stop()

    def run(self, model: str, body: bytes) -> dict[str, Any]:
        """Upload, Preprocess, Map(Train), Evaluate: the execution's state."""
        from mlstack_core.storage_keys import dataset_key, spec_key

        bucket = os.environ["DATA_BUCKET"]
        self.s3.put_object(
            Bucket=bucket,
            Key=spec_key(model),
            Body=json.dumps({"target": "label"}).encode(),
        )
        key = dataset_key(model, "data.csv")
        put = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        self.runs += 1
        name = f"run-{self.runs:04d}"
        state: dict[str, Any] = {
            "model": model,
            "dataset": {
                "bucket": bucket,
                "key": key,
                "version_id": put.get("VersionId"),
                "etag": put["ETag"].strip('"'),
                "size": len(body),
            },
            "execution_arn": f"arn:aws:states:{REGION}:123456789012:execution:training:{name}",
            "execution_name": name,
        }
        state["run"] = handler("preprocess")(state, self.context)
        train = handler("train")
        state["trained"] = [
            train({"run": state["run"], "candidate": c}, self.context)
            for c in state["run"]["candidates"]
        ]
        state["evaluation"] = handler("evaluate")(
            {"run": state["run"], "trained": state["trained"]}, self.context
        )
        return state

    def run_register_step(self, state: dict[str, Any], promote: bool) -> dict[str, Any]:
        """RegisterAndPromote or RecordRejection, as the Gate state chooses."""
        action = "promote" if promote else "reject"
        event = {
            "action": action,
            "run": state["run"],
            "evaluation": state["evaluation"],
            "execution_arn": state["run"]["execution_arn"],
            "step": "RegisterAndPromote" if promote else "RecordRejection",
        }
        registration: dict[str, Any] = handler("register")(event, self.context)
        return registration


def true_loss(stack: Stack, model: str, version: int, fresh: bytes) -> float:
    """A registered version's mean Brier score (classification) or squared error (regression)
    on a large fresh sample of its distribution, scored as the API would."""
    from mlstack_core.contract import load_model
    from mlstack_core.contract.batch import score_rows
    from mlstack_core.evidence import brier_rows, squared_error_rows
    from mlstack_core.settings import serving_settings

    document = stack.registry.get_version(model, version)
    artifact = document["artifact"]
    body = stack.s3.get_object(Bucket=artifact["bucket"], Key=artifact["key"])["Body"].read()
    loaded = load_model(body, document, serving_settings(), model=model, version=version)
    rows = list(csv.DictReader(io.StringIO(fresh.decode())))
    scores = score_rows(loaded, rows)
    assert not scores.refused, scores.refused[:3]
    truth = np.array([r["label"] for r in rows])
    fields = scores.fields
    if "probabilities" in fields:
        losses = brier_rows(truth, np.asarray(fields["probabilities"]), fields["classes"])
    else:
        losses = squared_error_rows(truth.astype(float), np.asarray(fields["predictions"]))
    return float(np.mean(losses))


def verdicts(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Both gates' verdicts on one Evaluate output, with what they were judged on."""
    comparison = evaluation.get("comparison") or {}
    improvement = comparison.get("improvement")
    if not comparison:
        old = False  # the selection metric was undefined: both gates reject
    elif improvement is None:
        old = True  # the old gate: nothing to beat
    elif comparison["against"] == "baseline":
        old = improvement > 0
    else:
        old = improvement >= -1e-12  # min_improvement 0, with the old gate's float slack
    old = old and bool(evaluation["rehearsal"]["passed"])
    evidence = evaluation.get("evidence") or {}
    interval = evidence.get("improvement") or {}
    return {
        "old": old,
        "new": evaluation["decision"] == "promote" and not evaluation.get("requires_approval"),
        "against": comparison.get("against"),
        "best": evaluation["best"]["family"],
        "metric": evaluation["metric"],
        "metric_improvement": improvement,
        "evidence_estimate": interval.get("estimate"),
        "evidence_low": interval.get("low"),
        "holdout_rows": evaluation.get("holdout_rows"),
        "judged_on": evaluation.get("judged_on"),
    }


# ----------------------------------------------------------------------------- tasks


def run_table(plan: dict[str, Any]) -> dict[str, Any]:
    """One first version: both verdicts on one pipeline run."""
    strength = 0.0 if plan["part"] == "false_promotion" else WEAK[plan["kind"]]
    distribution = Distribution(plan["kind"], plan["layout"], strength, plan["seed"])
    body = distribution.sample(plan["rows"], np.random.default_rng(plan["seed"] + 1))
    with Stack() as stack:
        state = stack.run(f"{plan['part'][:5]}-{plan['index']:04d}", body)
    return verdicts(state["evaluation"])


def run_stream(plan: dict[str, Any]) -> dict[str, Any]:
    """Ten uploads from one distribution to two models, one registered by each gate."""
    distribution = Distribution(plan["kind"], plan["layout"], MODERATE[plan["kind"]], plan["seed"])
    rng = np.random.default_rng(plan["seed"] + 1)
    uploads = [distribution.sample(FLIP_ROWS, rng) for _ in range(plan["uploads"])]
    fresh = distribution.sample(FRESH_ROWS, rng)
    history: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    with Stack() as stack:
        for body in uploads:
            for gate in ("old", "new"):
                model = f"flip-{plan['index']:02d}-{gate}"
                state = stack.run(model, body)
                seen = verdicts(state["evaluation"])
                registration = stack.run_register_step(state, promote=seen[gate])
                seen["moved"] = bool(registration.get("promoted"))
                seen["true_loss"] = true_loss(stack, model, int(registration["version"]), fresh)
                production = [h for h in history[gate] if h["moved"]]
                seen["production_loss"] = (
                    seen["true_loss"]
                    if seen["moved"]
                    else (production[-1]["true_loss"] if production else None)
                )
                seen["replaced_loss"] = production[-1]["true_loss"] if production else None
                history[gate].append(seen)
    return {"history": history}


def task(plan: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = run_stream(plan) if plan["part"] == "flip" else run_table(plan)
    except Exception as error:  # counted and reported, never a silent gap in the rates
        result = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
    finally:
        from mlstack_core.observability.pipeline import metrics

        metrics.clear_metrics()  # disabled metrics still pile up, and print when a worker exits
    return {**plan, **result, "seconds": time.perf_counter() - started}


def worker_init() -> None:
    for name in ("moto", "botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# ----------------------------------------------------------------------------- statistics


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    if trials == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(successes: int, trials: int) -> str:
    if trials == 0:
        return "none"
    low, high = wilson(successes, trials)
    return f"{successes}/{trials} = **{successes / trials:.1%}** ({low:.1%} to {high:.1%})"


def signed(value: float | None) -> str:
    return "none" if value is None else f"{value:+.1%}"


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    errors = [r for r in results if "error" in r]
    for part in ("false_promotion", "power"):
        done = [r for r in results if r["part"] == part and "error" not in r]
        groups = [("all", done)]
        groups += [(kind, [r for r in done if r["kind"] == kind]) for kind in KINDS]
        groups += [(f"{c} columns", [r for r in done if r["layout"] == c]) for c in LAYOUTS]
        groups += [(JUDGED[j], [r for r in done if r.get("judged_on") == j]) for j in JUDGED]
        for group, chosen in groups:
            rows.append(
                {
                    "part": part,
                    "kind": group,
                    "tables": len(chosen),
                    "old": sum(r["old"] for r in chosen),
                    "new": sum(r["new"] for r in chosen),
                }
            )
    streams = [r for r in results if r["part"] == "flip" and "error" not in r]
    for kind in (None, *KINDS):
        chosen = [r for r in streams if kind is None or r["kind"] == kind]
        row: dict[str, Any] = {"part": "flip", "kind": kind or "all", "streams": len(chosen)}
        for gate in ("old", "new"):
            challengers = [h for r in chosen for h in r["history"][gate][1:]]
            row[f"{gate}_challengers"] = len(challengers)
            row[gate] = sum(h["moved"] for h in challengers)
            row[f"{gate}_first"] = sum(r["history"][gate][0]["moved"] for r in chosen)
            row[f"{gate}_per_stream"] = [
                sum(h["moved"] for h in r["history"][gate][1:]) for r in chosen
            ]
            # On the fresh sample: did each move make production better, and how far was
            # production from the stream's best version, uploads 2 onwards.
            moves = [h for h in challengers if h["moved"] and h["replaced_loss"]]
            row[f"{gate}_better"] = sum(h["true_loss"] < h["replaced_loss"] for h in moves)
            row[f"{gate}_moves"] = len(moves)
            row[f"{gate}_change"] = (
                float(np.mean([h["true_loss"] / h["replaced_loss"] - 1 for h in moves]))
                if moves
                else None
            )
            excess = [
                h["production_loss"] / min(x["true_loss"] for x in r["history"][gate]) - 1
                for r in chosen
                for h in r["history"][gate][1:]
                if h["production_loss"] is not None
            ]
            row[f"{gate}_excess"] = float(np.mean(excess)) if excess else None
        rows.append(row)
    return {"rows": rows, "errors": [{k: r[k] for k in ("part", "index", "error")} for r in errors]}


# ----------------------------------------------------------------------------- the document


def markdown(report: dict[str, Any], arguments: str) -> str:
    import sklearn

    from mlstack_core.settings import guard_settings

    guards = guard_settings()
    confidence, below = guards.confidence, guards.cross_validate_below_rows
    names = {"false_promotion": "false promotion", "power": "power"}
    lines = [
        f"`python benchmarks/gate.py {arguments}`".replace("  ", " "),
        f"on {report['machine']}, {report['date']}, scikit-learn {sklearn.__version__}, "
        f"{report['workers']} worker processes, {report['minutes']:.1f} minutes; the code of "
        f"{report['code']}. "
        f"GateConfidence {confidence:g}; default spec (target only: logistic regression or "
        "ridge, random forest, histogram gradient boosting; accuracy or R²). "
        f"Tables of {below:,} rows or more are judged on a 20% holdout, smaller ones by "
        "repeated cross-validation (3 x 5 folds; CrossValidateBelowRows). Rates are "
        "promoted / tables, with 95% Wilson intervals.",
        "",
        "| first version | tables with | tables | old gate promotes | new gate promotes |",
        "|---|---|---:|---|---|",
    ]
    for row in report["summary"]["rows"]:
        if row["part"] == "flip":
            continue
        label = "**all**" if row["kind"] == "all" else row["kind"]
        lines.append(
            f"| {names[row['part']]} | {label} | {row['tables']} | "
            f"{rate(row['old'], row['tables'])} | {rate(row['new'], row['tables'])} |"
        )
    lines += [
        "",
        f"| flip rate ({report['uploads']} uploads of {FLIP_ROWS} rows per stream) | streams "
        "| old gate: challengers that move production | new gate: challengers that move "
        "production |",
        "|---|---:|---|---|",
    ]
    for row in report["summary"]["rows"]:
        if row["part"] != "flip":
            continue
        label = "**all**" if row["kind"] == "all" else row["kind"]
        per = {g: ", ".join(map(str, row[f"{g}_per_stream"])) for g in ("old", "new")}
        lines.append(
            f"| {label} | {row['streams']} | {rate(row['old'], row['old_challengers'])} "
            f"[per stream: {per['old']}] | {rate(row['new'], row['new_challengers'])} "
            f"[per stream: {per['new']}] |"
        )
    lines += [
        "",
        f"The same streams on a fresh sample of {FRESH_ROWS:,} rows from each distribution "
        "(true Brier score or squared error of every registered version):",
        "",
        "| flip rate | old gate: moves that truly improved production | new gate: moves that "
        "truly improved production | old gate: mean change of production's true loss per move "
        "| new gate: the same | old gate: production's true loss above the stream's best "
        "version | new gate: the same |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in report["summary"]["rows"]:
        if row["part"] != "flip":
            continue
        label = "**all**" if row["kind"] == "all" else row["kind"]
        cells = [label]
        cells += [rate(row[f"{g}_better"], row[f"{g}_moves"]) for g in ("old", "new")]
        cells += [signed(row[f"{g}_change"]) for g in ("old", "new")]
        cells += [signed(row[f"{g}_excess"]) for g in ("old", "new")]
        lines.append("| " + " | ".join(cells) + " |")
    errors = report["summary"]["errors"]
    flips = next(r for r in report["summary"]["rows"] if r["part"] == "flip" and r["kind"] == "all")
    failed = "; ".join(f"{e['part']} {e['index']}: {e['error']}" for e in errors)
    lines += [
        "",
        f"First uploads of the flip streams promoted: old gate {flips['old_first']}, new gate "
        f"{flips['new_first']} of {report['streams']}. Failed runs (left out of the rates): "
        f"{len(errors)}{': ' + failed if failed else ''}.",
        "",
        "What each row measures:",
        "",
        f"- **false promotion**: the label is a coin flip (binary, half the tables balanced and "
        f"half 35 % positive; 3-class uniform) or the regression target is noise, independent "
        f"of the features; numeric, categorical and mixed columns, 300 to 4,000 rows. A "
        f"promoted first version is an error. Target for the new gate: at most "
        f"{1 - confidence:.0%}.",
        f"- **power**: a weak real signal, 500 to 2,000 rows: a logistic signal of spread "
        f"{WEAK['binary']} (about 0.60 holdout accuracy for a logistic regression), three "
        f"classes of spread {WEAK['3-class']} (about 0.44 against 0.33 by chance), a regression "
        f"with R² {WEAK['regression']}. A rejected first version is an error.",
        f"- **flip rate**: per stream one distribution with a moderate signal (spread "
        f"{MODERATE['binary']} binary, {MODERATE['3-class']} 3-class, R² "
        f"{MODERATE['regression']}), {report['uploads']} uploads of fresh samples of "
        f"{FLIP_ROWS} rows to two models: one registered by the old gate's verdicts, one by "
        f"the new gate's. Challengers are uploads 2 to {report['uploads']}. Every upload is "
        "an equally good sample of the same distribution, so a challenger is no better than "
        "production in expectation: a move is churn, unless production was a poorer model "
        "chosen by luck (the table on the fresh sample tells which).",
        "- **moves that truly improved production**: the new production's loss on the fresh "
        "sample is lower than the one it replaced. **Mean change per move**: relative change "
        "of that loss (negative: better). **Production's true loss above the stream's best "
        "version**: after each of uploads 2 to the last, production's loss on the fresh sample "
        "relative to the best version the stream registered (promoted or not), averaged: "
        "what the churn costs or gains.",
        "- The old gate's verdict is read from the same Evaluate output as the new one: the "
        "selection metric's point improvement (`comparison.improvement`) > 0 against the "
        "baseline, >= 0 against production, and the serving rehearsal passed. On a table "
        f"judged by cross-validation (under {below:,} rows, the flip streams included) that "
        "point improvement is the mean over the folds' out-of-fold answers, not one 20% "
        "holdout's: the old rule on the new judging, steadier than the old gate was on a "
        "small table.",
        "",
    ]
    return "\n".join(lines)


def resumed(
    path: Path | None, plans: list[dict[str, Any]], code: str
) -> tuple[list[dict[str, Any]], float]:
    """The runs of ``plans`` a stopped invocation of the same ``code`` already finished
    (``--progress``), and the wall seconds those invocations took."""
    if path is None or not path.exists():
        return [], 0.0
    wanted = {(p["part"], p["index"]): p for p in plans}
    found: dict[tuple[str, int], dict[str, Any]] = {}
    walls: dict[str, float] = {}
    for text in path.read_text().splitlines():
        line = json.loads(text)
        plan = wanted.get((line["part"], line["index"]))
        if plan and line["code"] == code and all(line.get(k) == v for k, v in plan.items()):
            found[(line["part"], line["index"])] = line
            walls[line["invocation"]] = max(walls.get(line["invocation"], 0.0), line["wall"])
    return list(found.values()), sum(walls.values())


def git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def snapshot(commit: str | None) -> tuple[Path, str]:
    """functions/ and layers/core of ``commit``, or of the work tree as it is now, copied to a
    temporary folder: (the folder, what it holds)."""
    target = Path(tempfile.mkdtemp(prefix="gate-benchmark-code-"))
    parts = ("functions", "layers/core")
    head = git("rev-parse", "--short", commit or "HEAD")
    if commit:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, *parts], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        return target, f"commit {head}"
    for part in parts:
        shutil.copytree(ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    changed = [line[3:] for line in git("status", "--porcelain", "--", *parts).splitlines()]
    if not changed:
        return target, f"commit {head} (the work tree, unchanged)"
    return target, f"the work tree at {head} with uncommitted changes to {', '.join(changed)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tables", type=int, default=240, help="false-promotion tables")
    parser.add_argument("--power", type=int, help="power tables (default: half of --tables)")
    parser.add_argument(
        "--streams", type=int, help="flip streams (default: --tables / 40, at most 9)"
    )
    parser.add_argument("--uploads", type=int, default=10, help="uploads per flip stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", type=Path, help="write the measured block of this document")
    parser.add_argument("--json", type=Path, help="also write every run's verdicts here")
    parser.add_argument("--commit", help="measure this commit's code (default: the work tree)")
    parser.add_argument(
        "--progress",
        type=Path,
        help="append each finished run here (JSON lines); runs already there are not run again",
    )
    args = parser.parse_args()
    code, measured = snapshot(args.commit)
    os.environ[CODE_VARIABLE] = str(code)  # the spawned workers import from the copy
    use_code(code)
    print(f"measuring {measured}", file=sys.stderr, flush=True)
    power = args.power if args.power is not None else math.ceil(args.tables / 2)
    streams = args.streams if args.streams is not None else max(1, min(9, args.tables // 40))

    plans: list[dict[str, Any]] = []
    for index in range(streams):  # the longest tasks first
        rng = np.random.default_rng([args.seed, 2, index])
        plans.append(
            {
                "part": "flip",
                "index": index,
                "kind": KINDS[index % 3],
                "layout": LAYOUTS[(index // 3) % 3],
                "uploads": args.uploads,
                "seed": int(rng.integers(2**31)),
            }
        )
    tables = [table_plan("false_promotion", i, args.seed) for i in range(args.tables)]
    tables += [table_plan("power", i, args.seed) for i in range(power)]
    plans += sorted(tables, key=lambda p: -p["rows"])  # large tables first: even finish
    started = time.perf_counter()
    results, earlier = resumed(args.progress, plans, measured)
    invocation = f"{os.getpid()}-{time.time():.0f}"
    if results:
        print(f"resuming: {len(results)} runs from {args.progress}", file=sys.stderr, flush=True)
    done = {(r["part"], r["index"]) for r in results}
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=worker_init, maxtasksperchild=50) as pool:
        todo = [p for p in plans if (p["part"], p["index"]) not in done]
        for result in pool.imap_unordered(task, todo):
            results.append(result)
            if args.progress:
                with args.progress.open("a") as progress:
                    line = {**result, "invocation": invocation, "code": measured}
                    line["wall"] = time.perf_counter() - started
                    progress.write(json.dumps(line, default=str) + "\n")
            status = result.get("error") or (
                "streams done"
                if result["part"] == "flip"
                else f"old {result['old']} new {result['new']}"
            )
            print(
                f"[{len(results)}/{len(plans)} {time.perf_counter() - started:7.0f}s] "
                f"{result['part']} {result['index']} {result['kind']} {result['layout']} "
                f"{result.get('rows', '')}: {status} ({result['seconds']:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
            if "trace" in result:
                print(result["trace"], file=sys.stderr, flush=True)
    report = {
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "workers": args.workers,
        "minutes": (earlier + time.perf_counter() - started) / 60,
        "uploads": args.uploads,
        "streams": streams,
        "summary": summarise(results),
        "code": measured,
    }
    print(json.dumps(report["summary"], indent=1))
    if args.json:
        args.json.write_text(json.dumps({"report": report, "results": results}, default=str))
    if args.write:
        write_measured(args.write, markdown(report, " ".join(sys.argv[1:])), "gate.py")
    shutil.rmtree(code, ignore_errors=True)


if __name__ == "__main__":
    main()
