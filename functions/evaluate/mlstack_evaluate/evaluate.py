"""Evaluate: measure every candidate's ONNX export on the holdout, check it against
scikit-learn, measure production on the same rows, decide, and rehearse serving the winner.

``holdout`` measures a model as it will be served; ``decision`` picks the winner and applies the
gate; this module runs the step: the serving rehearsal (``mlstack_core.contract.rehearsal``),
the gate's metrics, the report and the monitoring artifacts Register copies next to the version.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import boto3
import numpy as np

from mlstack_core import storage_keys
from mlstack_core.contract.records import table_records
from mlstack_core.contract.rehearsal import BATCH_ROWS, rehearse
from mlstack_core.drift import prediction_baseline
from mlstack_core.errors import ServingRehearsalFailed
from mlstack_core.evidence import Answers
from mlstack_core.folds import read_folds
from mlstack_core.integrity import read_verified
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model, tracer
from mlstack_core.payloads import (
    Candidate,
    EvaluateInput,
    Evaluation,
    EvaluationSummary,
    Rehearsal,
    Run,
    TrainedEntry,
)
from mlstack_core.registry import Registry, serving_fields
from mlstack_core.settings import gate_confidence, guard_settings, serving_settings, stack_settings
from mlstack_core.spec import (
    greater_is_better,
    metrics_for,
)
from mlstack_core.tabular import (
    read_split,
)
from mlstack_evaluate.decision import (
    baseline,
    decide,
    measure_candidate,
    measure_champion,
    pick_best,
)
from mlstack_evaluate.holdout import Holdout, load_as_served, read_object
from mlstack_evaluate.importance import explained_importance
from mlstack_evaluate.judges import CrossValidationJudge, HoldoutJudge, Judge

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@tracer.capture_method
def rehearse_winner(
    run: Run,
    holdout: Holdout,
    best: Mapping[str, Any],
    gate_outputs: Mapping[str, np.ndarray],
    tolerance: Mapping[str, float],
    *,
    s3: S3Client,
    bucket: str,
) -> Rehearsal:
    """Serve holdout rows to the winner as the registry will describe it and as the prediction
    function will run it; ``passed`` False (with the error's name and reason) when its answers
    are not what the gate scored."""
    rows = holdout.sample(BATCH_ROWS)
    try:
        report = rehearse(
            read_verified(
                s3, bucket, best["onnx_key"], best.get("onnx_version_id"), best.get("onnx_sha256")
            ),
            serving_fields(run),
            table_records(holdout.table.take(rows), holdout.layout),
            {name: np.asarray(values)[rows] for name, values in gate_outputs.items()},
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


def evaluate(
    run: Run,
    trained: Sequence[TrainedEntry],
    *,
    s3: S3Client,
    bucket: str,
    registry: Registry,
) -> EvaluationSummary:
    spec, schema = run["spec"], run["schema"]
    splits = run["splits"]
    holdout = Holdout(read_split(read_object(s3, splits["bucket"], splits["holdout_key"])), schema)
    judge = judge_for(run, holdout, s3)
    tolerance = spec["parity_tolerance"]
    outputs: dict[str, dict[str, np.ndarray]] = {}
    answers: dict[str, list[Answers]] = {}
    measured = [
        measure_candidate(
            e,
            holdout,
            tolerance,
            s3=s3,
            bucket=bucket,
            judge=judge,
            outputs_sink=outputs,
            answers_sink=answers,
        )
        for e in trained
    ]
    best = pick_best(measured, spec["metric"])
    champion = measure_champion(
        run["model"],
        holdout,
        registry,
        s3=s3,
        judge=judge,
        outputs_sink=outputs,
        answers_sink=answers,
    )
    base, answers["baseline"] = baseline(judge)
    viable = sum(1 for c in measured if c["excluded"] is None)
    gate = decide(
        spec,
        best,
        champion,
        base,
        judge=judge,
        task=schema["task"],
        answers=answers,
        confidence=gate_confidence(spec),
        comparisons=viable,
    )
    decision, reasons, comparison = gate.decision, gate.reasons, gate.comparison
    rehearsal = rehearse_winner(
        run, holdout, best, outputs.get(best["candidate_id"], {}), tolerance, s3=s3, bucket=bucket
    )
    error = gate.error
    if not rehearsal["passed"]:
        decision = "reject"
        reasons = [f"{rehearsal['error']}: {rehearsal['reason']}", *reasons]
        error = rehearsal["error"]
    requires_approval = decision == "promote" and incomparable_needs_a_person(champion)
    if requires_approval:
        reasons = [
            *reasons,
            "production cannot be scored on this data, so a person must approve "
            "(AutoPromoteIncomparable is false)",
        ]

    report_key = storage_keys.evaluation_key(run["model"], run["run_id"])
    artifacts = store_monitoring_artifacts(
        run,
        holdout,
        outputs.get(best["candidate_id"], {}),
        outputs.get("champion"),
        estimate_outputs(judge, answers.get(best["candidate_id"], [])),
        s3=s3,
    )
    evaluation: Evaluation = {
        "decision": decision,
        "reasons": reasons,
        "metric": spec["metric"],
        "greater_is_better": greater_is_better(spec["metric"]),
        "best": best,
        "candidates": measured,
        "champion": champion,
        "baseline": base,
        "comparison": comparison,
        "evidence": gate.evidence,
        "judged_on": judge.judged_on,
        "rehearsal": rehearsal,
        "requires_approval": requires_approval,
        "holdout_rows": int(holdout.y.size),
        "report_key": report_key,
    }
    if error:
        evaluation["error"] = error
    if "predictions_key" in artifacts:
        evaluation["predictions_key"] = artifacts["predictions_key"]
    if "drift_baseline_key" in artifacts:
        evaluation["drift_baseline_key"] = artifacts["drift_baseline_key"]
    background = store_background(run, holdout, s3=s3)
    if background is not None:
        evaluation["background_key"] = background[0]
        importance = winner_importance(run, holdout, best, background[1], s3=s3, bucket=bucket)
        if importance is not None:
            best["explained_importance"] = importance
    report = json.dumps(
        {
            **evaluation,
            "run_id": run["run_id"],
            "model": run["model"],
            "metrics_computed": list(metrics_for(schema["task"])),
        },
        indent=2,
        default=str,
    ).encode()
    stored = s3.put_object(
        Bucket=bucket, Key=report_key, Body=report, ContentType="application/json"
    )
    emit_gate_metrics(spec, best, comparison, decision, viable, len(measured) - viable)
    per_model(run["model"])
    logger.info(
        "Evaluated",
        extra={
            "decision": decision,
            "reasons": reasons,
            "best": best["candidate_id"],
            "excluded": len(measured) - viable,
        },
    )
    return summary_of(evaluation, stored.get("VersionId"), hashlib.sha256(report).hexdigest())


# What grows with the grid (a search's points and folds) or the columns (feature importance,
# fit warnings naming them): kept in the report, left out of the state.
_REPORT_ONLY_FIELDS = (
    "cv",
    "feature_importance",
    "explained_importance",
    "warnings",
    "library_versions",
)


def summary_of(
    evaluation: Evaluation, report_version_id: str | None, report_sha256: str
) -> EvaluationSummary:
    """The state's part of the evaluation: the decision and what the Gate, the progress view and
    Register need to find the rest, bounded whatever the number of candidates (Step Functions
    carries at most 256 KB per state); the whole evaluation is the report."""
    summary: dict[str, Any] = {
        name: value for name, value in evaluation.items() if name != "candidates"
    }
    summary["best"] = {
        name: value for name, value in evaluation["best"].items() if name not in _REPORT_ONLY_FIELDS
    }
    summary["candidate_count"] = len(evaluation["candidates"])
    summary["report_version_id"] = report_version_id
    summary["report_sha256"] = report_sha256
    return cast(EvaluationSummary, summary)


def emit_gate_metrics(
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
    estimate_outputs: Mapping[str, np.ndarray],
    *,
    s3: S3Client,
) -> dict[str, str]:
    """The drift baseline (Preprocess's feature part plus the winner's prediction distribution on
    the holdout) and the holdout outputs ``mlstack report`` plots. Register copies both next to
    the version; neither is needed to decide, so a run without them still completes."""
    model, run_id, bucket = run["model"], run["run_id"], run["splits"]["bucket"]
    schema = run["schema"]
    stored: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {"y": np.asarray(holdout.y)}
    for prefix, outputs in (
        ("best", best_outputs),
        ("champion", champion_outputs or {}),
        ("estimate", estimate_outputs),
    ):
        for name, value in outputs.items():
            arrays[f"{prefix}_{name}"] = np.asarray(value)
    if holdout.classes:
        arrays["classes"] = np.asarray([str(c) for c in holdout.classes])
    key = storage_keys.holdout_predictions_key(model, run_id)
    s3.put_object(Bucket=bucket, Key=key, Body=_npz(arrays), ContentType="application/x-npz")
    stored["predictions_key"] = key
    feature_key = run.get("feature_baseline_key")
    if feature_key and best_outputs:
        try:
            drift_baseline = json.loads(read_object(s3, bucket, feature_key))
        except Exception:
            logger.warning("No feature baseline; drift monitoring is off for this version")
            return stored
        drift_baseline["prediction"] = prediction_baseline(
            schema["task"], best_outputs, schema.get("classes")
        )
        drift_baseline.update(model=model, run_id=run_id)
        key = storage_keys.drift_baseline_key(model, run_id)
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(drift_baseline).encode(),
            ContentType="application/json",
        )
        stored["drift_baseline_key"] = key
    return stored


@tracer.capture_method
def winner_importance(
    run: Run,
    holdout: Holdout,
    best: Mapping[str, Any],
    background: Mapping[str, Any],
    *,
    s3: S3Client,
    bucket: str,
) -> dict[str, Any] | None:
    """The winner's mean absolute contributions on holdout rows (``importance``); None when it
    has no ONNX file or cannot be explained, which the version then goes without (logged)."""
    if not best.get("onnx_key") or best.get("excluded"):
        return None
    try:
        loaded = load_as_served(
            read_verified(
                s3, bucket, best["onnx_key"], best.get("onnx_version_id"), best.get("onnx_sha256")
            ),
            serving_fields(run),
        )
        return explained_importance(loaded, holdout, background)
    except Exception as error:
        logger.warning("No explained importance for the winner", extra={"reason": repr(error)})
        return None


@tracer.capture_method
def store_background(
    run: Mapping[str, Any], holdout: Holdout, *, s3: S3Client
) -> tuple[str, dict[str, Any]] | None:
    """Preprocess's background rows as a columnar request carries them (the serving contract's
    conversions of the cells): what explanations compare each row with. Register copies them
    next to the version; a run without them still completes, its version explains nothing."""
    source = run.get("background_split_key")
    if not source:
        return None
    bucket = run["splits"]["bucket"]
    records = table_records(read_split(read_object(s3, bucket, source)), holdout.layout)
    columns = list(holdout.layout.inputs)
    body = {"columns": columns, "data": [[record[c] for c in columns] for record in records]}
    key = storage_keys.background_key(run["model"], run["run_id"])
    s3.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json"
    )
    return key, body


def judge_for(run: Mapping[str, Any], holdout: Holdout, s3: S3Client) -> Judge:
    """Cross-validation when Preprocess wrote a fold assignment, else the holdout."""
    splits = run["splits"]
    if splits.get("folds_key"):
        assignment = read_folds(read_object(s3, splits["bucket"], splits["folds_key"]))
        return CrossValidationJudge(holdout, assignment)
    return HoldoutJudge(holdout)


def estimate_outputs(judge: Judge, best_answers: Sequence[Answers]) -> dict[str, np.ndarray]:
    """Judged by cross-validation, the winner's first repeat's out-of-fold answers: what the
    version is expected to answer on rows it never saw (its ONNX outputs on every row answer rows
    it was fitted on). The Monitor compares ground truth with these; none on a holdout."""
    if judge.judged_on == "holdout" or not best_answers:
        return {}
    first = best_answers[0]
    if first.values is not None:
        return {"variable": np.asarray(first.values)}
    return {"label": np.asarray(first.labels), "probabilities": np.asarray(first.probabilities)}


def incomparable_needs_a_person(champion: Mapping[str, Any] | None) -> bool:
    """A production the challenger could not be compared with (its columns or classes changed)
    is replaced only by a person's decision, unless the stack allows it (AutoPromoteIncomparable).
    A model's first version has no production to compare with and needs none."""
    if champion is None or champion.get("comparable"):
        return False
    return not guard_settings().auto_promote_incomparable


def trained_entries(run: Run, trained: Any, s3: S3Client, bucket: str) -> list[TrainedEntry]:
    """The Map's results, each read whole from where Train stored it (``result_key``)."""
    return [whole_entry(entry, s3, bucket) for entry in map_results(run, trained, s3)]


def whole_entry(entry: TrainedEntry, s3: S3Client, bucket: str) -> TrainedEntry:
    """A Map result with a ``result_key`` is the part the state carries: the whole entry is the
    object version Train wrote, checked against its hash (ArtifactTampered if it changed). One
    without (a CandidateFailed placeholder, a result given whole) is taken as it is."""
    key = entry.get("result_key")
    if not key:
        return entry
    body = read_verified(
        s3, bucket, key, entry.get("result_version_id"), entry.get("result_sha256")
    )
    return cast(TrainedEntry, json.loads(body))


def map_results(run: Run, trained: Any, s3: S3Client) -> list[TrainedEntry]:
    """The Map's results: inline in the state, or (Distributed Map) the children's outputs that
    Step Functions' ResultWriter stored: its manifest lists the result files, each a list of
    child executions with Train's output as JSON text. Only the state machine writes there, so a
    file rewritten under the run's prefix cannot change what is evaluated. A candidate with no
    output counts as failed."""
    if isinstance(trained, list):
        return [cast(TrainedEntry, dict(entry)) for entry in trained]
    writer = trained["result_writer"]
    manifest = json.loads(read_object(s3, writer["Bucket"], writer["Key"]))
    outputs: dict[str, TrainedEntry] = {}
    for listed in manifest["ResultFiles"].get("SUCCEEDED", []):
        for child in json.loads(read_object(s3, manifest["DestinationBucket"], listed["Key"])):
            output = json.loads(child["Output"])
            outputs[output["candidate_id"]] = output
    candidates: list[Candidate] = json.loads(
        read_object(s3, run["splits"]["bucket"], run["candidates_key"])
    )
    # The placeholder keeps the candidate's own keys, so its ``cv`` is the number of folds it was
    # to search with, not a cross-validation report: only a trained entry's ``cv`` is read.
    return [
        outputs.get(candidate["candidate_id"])
        or cast(
            TrainedEntry,
            {**candidate, "status": "failed", "error": "no result: its Train invocation failed"},
        )
        for candidate in candidates
    ]


def handle(event: EvaluateInput) -> EvaluationSummary:
    settings = stack_settings()
    metrics.add_metadata(key="model", value=event["run"]["model"])
    s3 = boto3.client("s3")
    return evaluate(
        event["run"],
        trained_entries(event["run"], event["trained"], s3, settings.model_bucket),
        s3=s3,
        bucket=settings.model_bucket,
        registry=Registry(settings.registry_table),
    )
