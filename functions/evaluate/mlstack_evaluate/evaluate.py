"""Evaluate: score every candidate's ONNX export on the holdout, check it against scikit-learn,
score production on the same rows, decide, and rehearse serving the winner.

The ONNX file is what ships, so its outputs are the ones scored, and the holdout reaches it the
way requests do: as JSON-like records turned into tensors by the serving contract
(``mlstack_core.contract``), with the serving session options. Before a version can be promoted
the winner is also served whole requests (``mlstack_core.contract.rehearsal``); one that would
answer differently in production is rejected as ServingRehearsalFailed.

This function runs on the serving layer (onnxruntime + numpy): scikit-learn and onnxruntime do not
fit in one Lambda together (docs/internals.md, "Layers"). So nothing here imports scikit-learn,
scipy or joblib: parity compares against the scikit-learn outputs Train stored for the holdout
(``sklearn_holdout.npz``), and metrics come from ``mlstack_core.scoring`` (numpy).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
import numpy as np

from mlstack_core import layout, scoring
from mlstack_core.contract import FeatureLayout, LoadedModel, load_model
from mlstack_core.contract.records import table_feeds, table_records
from mlstack_core.contract.rehearsal import BATCH_ROWS, rehearse
from mlstack_core.drift import prediction_baseline
from mlstack_core.errors import NoViableCandidate, ServingRehearsalFailed, UnparseableNumber
from mlstack_core.observability import MetricUnit, logger, metrics, per_model, tracer
from mlstack_core.payloads import Decision, EvaluateInput, Evaluation, Rehearsal, Run
from mlstack_core.registry import Registry, serving_fields
from mlstack_core.settings import serving_settings, stack_settings
from mlstack_core.spec import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    greater_is_better,
    metrics_for,
)
from mlstack_core.tabular import (
    CLASSIFICATION,
    Table,
    read_split,
    target_vector,
)

# Improvements are compared with this slack so 0.03 >= 0.03 holds despite float rounding.
_EPSILON = 1e-12


# -- scoring -------------------------------------------------------------------------------------


def load_for_scoring(body: bytes, document: Mapping[str, Any]) -> LoadedModel:
    """A session exactly as serving builds it: same options, graph checks and warm-up."""
    return load_model(body, document, serving_settings())


def run_outputs(loaded: LoadedModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's outputs by name."""
    return dict(zip(loaded.layout.output_names, loaded.run(feeds), strict=True))


def align_probabilities(
    probabilities: np.ndarray, model_classes: Sequence[Any], classes: Sequence[Any]
) -> np.ndarray:
    """Columns in ``classes`` order; a class the model never saw gets probability 0."""
    if list(model_classes) == list(classes):
        return np.asarray(probabilities, dtype=np.float64)
    position = {c: i for i, c in enumerate(model_classes)}
    out = np.zeros((probabilities.shape[0], len(classes)), dtype=np.float64)
    for j, label in enumerate(classes):
        if label in position:
            out[:, j] = probabilities[:, position[label]]
    return out


def classification_metrics(
    y: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[Any]
) -> dict[str, float | None]:
    """Every classification metric; one that cannot be computed (roc_auc with a class absent
    from the holdout) is None."""
    computed = scoring.classification_metrics(y, labels, probabilities, list(classes))
    return _finite({name: computed.get(name) for name in CLASSIFICATION_METRICS})


def regression_metrics(y: np.ndarray, values: np.ndarray) -> dict[str, float | None]:
    computed = scoring.regression_metrics(y, values)
    return _finite({name: computed.get(name) for name in REGRESSION_METRICS})


def _finite(values: Mapping[str, Any]) -> dict[str, float | None]:
    """Plain floats; NaN/inf become None (Step Functions payloads must be valid JSON)."""
    out: dict[str, float | None] = {}
    for key, value in values.items():
        number = None if value is None else float(value)
        out[key] = number if number is not None and math.isfinite(number) else None
    return out


def load_sklearn_outputs(body: bytes, task: str, rows: int) -> dict[str, Any]:
    """Train's ``sklearn_holdout.npz`` in the shapes ``parity`` compares: classifiers ``label``
    (int64, or str objects like onnxruntime's string outputs), ``probabilities`` float64 [N, C]
    and ``classes`` (a list); regressors ``variable`` float64 [N]."""
    with np.load(io.BytesIO(body), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    out: dict[str, Any]
    if task == CLASSIFICATION:
        label = arrays["label"]
        out = {
            "label": label.astype(object) if label.dtype.kind == "U" else label,
            "probabilities": np.asarray(arrays["probabilities"], dtype=np.float64),
            "classes": arrays["classes"].tolist(),
        }
        if out["probabilities"].shape != (rows, len(out["classes"])):
            raise ValueError(
                f"stored probabilities have shape {out['probabilities'].shape}, expected "
                f"({rows}, {len(out['classes'])})"
            )
    else:
        out = {"variable": np.asarray(arrays["variable"], dtype=np.float64).ravel()}
    first = out["label" if task == CLASSIFICATION else "variable"]
    if first.shape != (rows,):
        raise ValueError(f"stored outputs cover {first.shape[0]} rows, the holdout has {rows}")
    return out


def parity(
    task: str,
    onnx_out: Mapping[str, np.ndarray],
    sklearn_out: Mapping[str, np.ndarray],
    tolerance: Mapping[str, float],
    scale: float,
) -> dict[str, Any]:
    """How closely the ONNX export reproduces scikit-learn on the holdout."""
    if task == CLASSIFICATION:
        diff = np.abs(onnx_out["probabilities"] - sklearn_out["probabilities"]).max(axis=1)
        same = onnx_out["label"] == sklearn_out["label"]
        # A flip between classes whose ONNX probabilities tie within tolerance is rounding, not
        # a different model.
        proba, classes = onnx_out["probabilities"], list(sklearn_out["classes"])
        ties = 0
        for row in np.flatnonzero(~same).tolist():
            a = classes.index(onnx_out["label"][row])
            b = classes.index(sklearn_out["label"][row])
            ties += int(abs(proba[row, a] - proba[row, b]) <= tolerance["max_abs_diff"])
        agreement = float(same.mean())
        max_abs = float(diff.max())
        passed = (
            max_abs <= tolerance["max_abs_diff"]
            and (agreement + ties / same.size) >= tolerance["label_agreement"]
        )
        return {
            "label_agreement": agreement,
            "label_flips": int((~same).sum()),
            "tie_flips": ties,
            "max_abs_diff": max_abs,
            "p99_abs_diff": float(np.percentile(diff, 99)),
            "passed": bool(passed),
        }
    diff = np.abs(onnx_out["variable"] - sklearn_out["variable"])
    max_abs = float(diff.max())
    scaled = max_abs / scale
    return {
        "label_agreement": None,
        "max_abs_diff": max_abs,
        "p99_abs_diff": float(np.percentile(diff, 99)),
        "max_scaled_diff": scaled,
        "passed": bool(scaled <= tolerance["max_scaled_diff"]),
    }


class Holdout:
    """The holdout split, its target and, per feature layout, its model inputs as served."""

    def __init__(self, table: Table, schema: Mapping[str, Any]) -> None:
        self.table = table
        self.schema = schema
        self.layout = FeatureLayout.from_document({"schema": schema})
        self.y = target_vector(table, schema)
        self.classes: list[Any] = list(schema.get("classes") or [])
        # Regression parity is judged relative to the target's spread.
        spread = float(np.std(self.y)) if schema["task"] != CLASSIFICATION else 1.0
        self.scale = spread if spread > 0 else 1.0
        self._feeds: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, np.ndarray]] = {}

    def feeds(self, feature_layout: FeatureLayout) -> dict[str, np.ndarray]:
        """The holdout rows as requests would carry them, through the serving contract; built
        once per layout (every candidate shares the run's)."""
        key = (feature_layout.numeric, feature_layout.categorical)
        if key not in self._feeds:
            self._feeds[key] = table_feeds(self.table, feature_layout)
        return self._feeds[key]

    def sample(self, rows: int) -> list[int]:
        """At most ``rows`` holdout rows, spread evenly: the serving rehearsal's rows."""
        count = min(rows, int(self.y.size))
        return np.unique(np.linspace(0, self.y.size - 1, count).round().astype(int)).tolist()

    def score(
        self, outputs: Mapping[str, np.ndarray], model_classes: Sequence[Any] | None = None
    ) -> dict[str, float | None]:
        if self.schema["task"] == CLASSIFICATION:
            probabilities = align_probabilities(
                outputs["probabilities"], model_classes or self.classes, self.classes
            )
            return classification_metrics(self.y, outputs["label"], probabilities, self.classes)
        return regression_metrics(self.y, np.asarray(outputs["variable"]).ravel())


def _read(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bytes:
    request = {"Bucket": bucket, "Key": key}
    if version_id:
        request["VersionId"] = version_id
    body: bytes = s3.get_object(**request)["Body"].read()
    return body


@tracer.capture_method
def score_candidate(
    entry: Mapping[str, Any],
    holdout: Holdout,
    tolerance: Mapping[str, float],
    *,
    s3: Any,
    bucket: str,
    outputs_sink: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """The trained entry plus metrics (of the ONNX export), parity and an exclusion reason.
    The ONNX outputs on the holdout go into ``outputs_sink`` under the candidate id."""
    scored: dict[str, Any] = {**entry, "metrics": None, "parity": None, "excluded": None}
    if entry.get("status") != "trained":
        scored["excluded"] = f"training failed: {entry.get('error') or 'no error text'}"
        return scored
    task = holdout.schema["task"]
    try:
        loaded = load_for_scoring(_read(s3, bucket, entry["onnx_key"]), {"schema": holdout.schema})
        onnx_out = run_outputs(loaded, holdout.feeds(loaded.layout))
    except Exception as error:
        scored["excluded"] = f"onnxruntime cannot run the export: {type(error).__name__}: {error}"
        return scored
    try:
        key = entry.get("sklearn_holdout_key")
        if not key:
            raise KeyError("the trained entry has no sklearn_holdout_key")
        sklearn_out = load_sklearn_outputs(_read(s3, bucket, key), task, int(holdout.y.size))
        if task == CLASSIFICATION:
            model_classes = sklearn_out["classes"]
        else:
            onnx_out = {"variable": np.asarray(onnx_out["variable"]).ravel()}
            model_classes = None
        measured = parity(task, onnx_out, sklearn_out, tolerance, holdout.scale)
    except Exception as error:
        scored["excluded"] = f"parity not measurable: {type(error).__name__}: {error}"
        return scored

    scored["metrics"] = holdout.score(onnx_out, model_classes)
    scored["parity"] = measured
    if outputs_sink is not None:
        outputs_sink[entry["candidate_id"]] = dict(onnx_out)
    if not scored["parity"]["passed"]:
        p = scored["parity"]
        scored["excluded"] = (
            f"ONNX/sklearn parity out of tolerance: {_describe_parity(p)} "
            f"(tolerance {dict(tolerance)})"
        )
    return scored


def _describe_parity(p: Mapping[str, Any]) -> str:
    if p.get("label_agreement") is None:
        return f"max scaled diff {p['max_scaled_diff']:.3g}"
    return (
        f"label agreement {p['label_agreement']:.4f} ({p['tie_flips']} of {p['label_flips']} "
        f"flips are ties), max probability diff {p['max_abs_diff']:.3g}"
    )


# -- references: baseline and champion -----------------------------------------------------------


def baseline(holdout: Holdout) -> dict[str, Any]:
    """The trivial model: the holdout's most frequent class (with its class frequencies as
    probabilities) or its mean."""
    y = holdout.y
    if holdout.schema["task"] == CLASSIFICATION:
        classes = holdout.classes
        counts = np.array([np.sum(y == c) for c in classes], dtype=np.float64)
        priors = counts / counts.sum()
        labels = np.full(y.shape, classes[int(np.argmax(counts))], dtype=y.dtype)
        probabilities = np.tile(priors, (y.size, 1))
        return {
            "strategy": "most_frequent",
            "metrics": classification_metrics(y, labels, probabilities, classes),
        }
    values = np.full(y.shape, float(np.mean(y)))
    return {"strategy": "mean", "metrics": regression_metrics(y, values)}


@tracer.capture_method
def score_champion(
    model: str,
    holdout: Holdout,
    registry: Registry,
    *,
    s3: Any,
    outputs_sink: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, Any] | None:
    """Production's metrics on this holdout, or why they cannot be compared. None: no production."""
    version = registry.get_alias(model)
    if version is None:
        return None
    champion: dict[str, Any] = {
        "version": version,
        "metrics": None,
        "comparable": False,
        "reason": None,
    }
    try:
        document = registry.get_version(model, version)
        champion["family"] = document.get("family")
        schema = document.get("schema") or {}
        reason = _incompatibility(schema, holdout)
        if reason:
            champion["reason"] = reason
            return champion
        artifact = document["artifact"]
        loaded = load_for_scoring(
            _read(s3, artifact["bucket"], artifact["key"], artifact.get("version_id")), document
        )
        outputs = run_outputs(loaded, holdout.feeds(loaded.layout))
        champion["metrics"] = holdout.score(outputs, schema.get("classes"))
        champion["comparable"] = True
        if outputs_sink is not None:
            outputs_sink["champion"] = dict(outputs)
    except UnparseableNumber as error:
        champion["reason"] = f"a column production reads as numeric is not numeric now: {error}"
    except Exception as error:  # an unreadable champion must not block every future run
        logger.exception("Cannot score production", extra={"version": version})
        champion["reason"] = f"cannot score production: {type(error).__name__}: {error}"
    return champion


def _incompatibility(schema: Mapping[str, Any], holdout: Holdout) -> str | None:
    current = holdout.schema
    if not schema:
        return "production has no feature schema"
    for key in ("target", "task", "label_type"):
        if schema.get(key) != current.get(key):
            return f"{key} changed: production {schema.get(key)!r}, now {current.get(key)!r}"
    if current["task"] == CLASSIFICATION and list(schema.get("classes") or []) != holdout.classes:
        return f"classes changed: production {schema.get('classes')}, now {holdout.classes}"
    missing = [
        c for c in [*schema["numeric"], *schema["categorical"]] if c not in holdout.table.columns
    ]
    if missing:
        return f"production needs column(s) {', '.join(map(repr, missing))}, not in this data"
    return None


# -- serving rehearsal ---------------------------------------------------------------------------


@tracer.capture_method
def rehearse_winner(
    run: Mapping[str, Any],
    holdout: Holdout,
    best: Mapping[str, Any],
    scored: Mapping[str, np.ndarray],
    tolerance: Mapping[str, float],
    *,
    s3: Any,
    bucket: str,
) -> Rehearsal:
    """Serve holdout rows to the winner as the registry will describe it and as the prediction
    function will run it; ``passed`` False (with the error's name and reason) when its answers
    are not what the gate scored."""
    rows = holdout.sample(BATCH_ROWS)
    try:
        report = rehearse(
            _read(s3, bucket, best["onnx_key"]),
            serving_fields(run),
            table_records(holdout.table.take(rows), holdout.layout),
            {name: np.asarray(values)[rows] for name, values in scored.items()},
            tolerance,
            scale=holdout.scale,
            settings=serving_settings(),
        )
    except ServingRehearsalFailed as error:
        logger.error(
            "Serving rehearsal failed",
            extra={"candidate_id": best["candidate_id"], "reason": str(error)},
        )
        metrics.add_metric(name="ServingRehearsalFailures", unit=MetricUnit.Count, value=1)
        return {"passed": False, "error": type(error).__name__, "reason": str(error)}
    metrics.add_metric(name="ServingRehearsalFailures", unit=MetricUnit.Count, value=0)
    return report


# -- decision -------------------------------------------------------------------------------------


def pick_best(scored: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    viable = [c for c in scored if c["excluded"] is None]
    if not viable:
        lines = "; ".join(f"{c['candidate_id']}: {c['excluded']}" for c in scored)
        raise NoViableCandidate(f"no candidate can ship: {lines or 'no candidates trained'}")
    sign = 1.0 if greater_is_better(metric) else -1.0

    def key(c: dict[str, Any]) -> tuple[float, int, str]:
        value = c["metrics"].get(metric)
        # Best metric first; undefined metrics last; ties go to the smaller file, then the id.
        return (
            -sign * value if value is not None else math.inf,
            c["onnx_bytes"] or 0,
            c["candidate_id"],
        )

    return min(viable, key=key)


def decide(
    spec: Mapping[str, Any],
    best: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    base: Mapping[str, Any],
) -> tuple[Decision, list[str], dict[str, Any]]:
    """(decision, reasons, comparison). Promote iff the threshold (if any) is met and the best
    beats production (or, without a comparable production, the baseline) by min_improvement."""
    metric = spec["metric"]
    higher = greater_is_better(metric)
    value = best["metrics"].get(metric)
    reasons: list[str] = []
    if value is None:
        return "reject", [f"{metric} of {best['candidate_id']} is undefined on the holdout"], {}
    ok = True
    threshold = spec.get("threshold")
    if threshold is not None:
        met = value >= threshold - _EPSILON if higher else value <= threshold + _EPSILON
        relation = (
            ("reaches" if met else "is below") if higher else ("is within" if met else "is above")
        )
        reasons.append(f"{metric} {value:.4f} {relation} threshold {threshold}")
        ok = ok and met

    min_improvement = float(spec.get("min_improvement", 0.0))
    if champion and champion.get("comparable"):
        against = f"production v{champion['version']}"
        reference = champion["metrics"].get(metric)
        strict = False
    else:
        if champion:
            reasons.append(
                f"production v{champion['version']} is not comparable ({champion.get('reason')}); "
                "compared with the baseline instead"
            )
        against = f"the {base['strategy']} baseline"
        reference = base["metrics"].get(metric)
        strict = True  # merely matching a trivial model is not worth shipping
    if reference is None:
        improvement = math.inf
        reasons.append(f"{against} has no {metric}; nothing to beat")
    else:
        improvement = value - reference if higher else reference - value
        beats = improvement >= min_improvement - _EPSILON and (not strict or improvement > 0)
        verb = "beats" if beats else "does not beat"
        need = "> 0 and " if strict and min_improvement <= 0 else ""
        reasons.append(
            f"{metric} {value:.4f} {verb} {against} ({reference:.4f}) by {improvement:+.4f} "
            f"(needs {need}>= min_improvement {min_improvement})"
        )
        ok = ok and beats
    comparison = {
        "against": "champion" if champion and champion.get("comparable") else "baseline",
        "value": value,
        "reference": reference,
        "improvement": improvement if math.isfinite(improvement) else None,
    }
    return ("promote" if ok else "reject"), reasons, comparison


# -- the step ------------------------------------------------------------------------------------


def evaluate(
    run: Run,
    trained: Sequence[Mapping[str, Any]],
    *,
    s3: Any,
    bucket: str,
    registry: Registry,
) -> Evaluation:
    spec, schema = run["spec"], run["schema"]
    splits = run["splits"]
    holdout = Holdout(read_split(_read(s3, splits["bucket"], splits["holdout_key"])), schema)
    tolerance = spec["parity_tolerance"]
    outputs: dict[str, dict[str, np.ndarray]] = {}
    scored = [
        score_candidate(e, holdout, tolerance, s3=s3, bucket=bucket, outputs_sink=outputs)
        for e in trained
    ]
    best = pick_best(scored, spec["metric"])
    champion = score_champion(run["model"], holdout, registry, s3=s3, outputs_sink=outputs)
    base = baseline(holdout)
    decision, reasons, comparison = decide(spec, best, champion, base)
    rehearsal = rehearse_winner(
        run, holdout, best, outputs.get(best["candidate_id"], {}), tolerance, s3=s3, bucket=bucket
    )
    if not rehearsal["passed"]:
        decision = "reject"
        reasons = [f"{rehearsal['error']}: {rehearsal['reason']}", *reasons]

    report_key = layout.evaluation_key(run["model"], run["run_id"])
    artifacts = store_monitoring_artifacts(
        run, holdout, outputs.get(best["candidate_id"], {}), outputs.get("champion"), s3=s3
    )
    evaluation: Evaluation = {
        "decision": decision,
        "reasons": reasons,
        "metric": spec["metric"],
        "greater_is_better": greater_is_better(spec["metric"]),
        "best": best,
        "candidates": scored,
        "champion": champion,
        "baseline": base,
        "comparison": comparison,
        "rehearsal": rehearsal,
        "holdout_rows": int(holdout.y.size),
        "report_key": report_key,
    }
    if not rehearsal["passed"]:
        evaluation["error"] = rehearsal["error"]
    if "predictions_key" in artifacts:
        evaluation["predictions_key"] = artifacts["predictions_key"]
    if "drift_baseline_key" in artifacts:
        evaluation["drift_baseline_key"] = artifacts["drift_baseline_key"]
    s3.put_object(
        Bucket=bucket,
        Key=report_key,
        Body=json.dumps(
            {
                **evaluation,
                "run_id": run["run_id"],
                "model": run["model"],
                "metrics_computed": list(metrics_for(schema["task"])),
            },
            indent=2,
            default=str,
        ).encode(),
        ContentType="application/json",
    )
    excluded = sum(1 for c in scored if c["excluded"])
    gate_metrics(spec, best, comparison, decision, len(scored) - excluded, excluded)
    per_model(run["model"])
    logger.info(
        "Evaluated",
        extra={
            "decision": decision,
            "reasons": reasons,
            "best": best["candidate_id"],
            "excluded": excluded,
        },
    )
    return evaluation


def gate_metrics(
    spec: Mapping[str, Any],
    best: Mapping[str, Any],
    comparison: Mapping[str, Any],
    decision: str,
    viable: int,
    excluded: int,
) -> None:
    """The gate's figures (docs/metrics.md): the chosen metric's value and margin, parity of
    the winner, and the outcome as GatePassed 1/0 (its average is the pass rate)."""
    value = best["metrics"].get(spec["metric"])
    metrics.add_metadata(key="metric", value=spec["metric"])
    metrics.add_metadata(key="candidate_id", value=best["candidate_id"])
    if value is not None:
        metrics.add_metric(name="BestCandidateScore", unit=MetricUnit.NoUnit, value=value)
    if comparison.get("improvement") is not None:
        metrics.add_metric(
            name="ScoreImprovement", unit=MetricUnit.NoUnit, value=comparison["improvement"]
        )
    metrics.add_metric(name="ViableCandidates", unit=MetricUnit.Count, value=viable)
    metrics.add_metric(name="ExcludedCandidates", unit=MetricUnit.Count, value=excluded)
    metrics.add_metric(
        name="GatePassed", unit=MetricUnit.Count, value=1 if decision == "promote" else 0
    )
    parity_figures = best.get("parity") or {}
    if parity_figures.get("label_agreement") is not None:
        metrics.add_metric(
            name="ParityLabelAgreement",
            unit=MetricUnit.Percent,
            value=100 * parity_figures["label_agreement"],
        )
    if parity_figures.get("max_abs_diff") is not None:
        metrics.add_metric(
            name="ParityMaxAbsDiff", unit=MetricUnit.NoUnit, value=parity_figures["max_abs_diff"]
        )


def _npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    plain: dict[str, Any] = {
        k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()
    }
    np.savez_compressed(buffer, **plain)
    return buffer.getvalue()


@tracer.capture_method
def store_monitoring_artifacts(
    run: Mapping[str, Any],
    holdout: Holdout,
    best_outputs: Mapping[str, np.ndarray],
    champion_outputs: Mapping[str, np.ndarray] | None,
    *,
    s3: Any,
) -> dict[str, str]:
    """The drift baseline (Preprocess's feature part plus the winner's prediction distribution on
    the holdout) and the holdout outputs ``mlstack report`` plots. Register copies both next to
    the version; neither is needed to decide, so a run without them still completes."""
    model, run_id, bucket = run["model"], run["run_id"], run["splits"]["bucket"]
    schema = run["schema"]
    stored: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {"y": np.asarray(holdout.y)}
    for prefix, outputs in (("best", best_outputs), ("champion", champion_outputs or {})):
        for name, value in outputs.items():
            arrays[f"{prefix}_{name}"] = np.asarray(value)
    if holdout.classes:
        arrays["classes"] = np.asarray([str(c) for c in holdout.classes])
    key = layout.holdout_predictions_key(model, run_id)
    s3.put_object(Bucket=bucket, Key=key, Body=_npz(arrays), ContentType="application/x-npz")
    stored["predictions_key"] = key
    feature_key = run.get("feature_baseline_key")
    if feature_key and best_outputs:
        try:
            drift_baseline = json.loads(_read(s3, bucket, feature_key))
        except Exception:
            logger.warning("No feature baseline; drift monitoring is off for this version")
            return stored
        drift_baseline["prediction"] = prediction_baseline(
            schema["task"], best_outputs, schema.get("classes")
        )
        drift_baseline.update(model=model, run_id=run_id)
        key = layout.drift_baseline_key(model, run_id)
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(drift_baseline).encode(),
            ContentType="application/json",
        )
        stored["drift_baseline_key"] = key
    return stored


def trained_entries(run: Mapping[str, Any], trained: Any, s3: Any) -> list[dict[str, Any]]:
    """The Map's results: inline in the state, or (Distributed Map) the ``result.json`` each
    Train invocation wrote next to its model. A candidate with no result counts as failed."""
    if isinstance(trained, list):
        return [dict(entry) for entry in trained]
    bucket = run["splits"]["bucket"]
    candidates = json.loads(_read(s3, bucket, run["candidates_key"]))
    entries = []
    for candidate in candidates:
        key = layout.candidate_result_key(run["model"], run["run_id"], candidate["candidate_id"])
        try:
            entries.append(json.loads(_read(s3, bucket, key)))
        except s3.exceptions.NoSuchKey:
            entries.append(
                {
                    **candidate,
                    "status": "failed",
                    "error": "no result: its Train invocation did not finish",
                }
            )
    return entries


def handle(event: EvaluateInput) -> Evaluation:
    settings = stack_settings()
    metrics.add_metadata(key="model", value=event["run"]["model"])
    s3 = boto3.client("s3")
    return evaluate(
        event["run"],
        trained_entries(event["run"], event["trained"], s3),
        s3=s3,
        bucket=settings.model_bucket,
        registry=Registry(settings.registry_table),
    )
