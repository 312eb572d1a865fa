"""The gate's decision: the best candidate, the references it must beat (production on the same
holdout, or a trivial baseline), and promote or reject with the reasons. How sure each comparison
is, and the verdict's words, are the evidence's (mlstack_core.evidence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from mlstack_core.documents import Baseline, Champion, Comparison
from mlstack_core.errors import ArtifactTampered, NoViableCandidate, UnparseableNumber
from mlstack_core.evidence import (
    EVIDENCE_MEASURE,
    Answers,
    EvidenceDocument,
    evidence_confidence,
    measures_for,
    weigh,
)
from mlstack_core.integrity import read_verified
from mlstack_core.observability.pipeline import logger, tracer
from mlstack_core.payloads import Decision, ScoredCandidate, TrainedEntry
from mlstack_core.registry import Registry
from mlstack_core.spec import greater_is_better, metrics_for
from mlstack_core.tasks import CLASSIFICATION
from mlstack_evaluate.holdout import (
    Holdout,
    load_as_served,
    load_sklearn_outputs,
    parity,
    read_object,
    run_outputs,
)
from mlstack_evaluate.judges import Judge

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Improvements are compared with this slack so 0.03 >= 0.03 holds despite float rounding.
_EPSILON = 1e-12


def baseline(judge: Judge) -> tuple[Baseline, list[Answers]]:
    """The trivial model, fitted as the candidates are (mlstack_evaluate.judges)."""
    strategy, answers = judge.baseline()
    return {"strategy": strategy, "metrics": judge.metric_values(answers)}, answers


@tracer.capture_method
def measure_candidate(
    entry: TrainedEntry,
    holdout: Holdout,
    tolerance: Mapping[str, float],
    *,
    s3: S3Client,
    bucket: str,
    judge: Judge,
    outputs_sink: dict[str, dict[str, np.ndarray]] | None = None,
    answers_sink: dict[str, list[Answers]] | None = None,
) -> ScoredCandidate:
    """The trained entry plus metrics (as ``judge`` judges: of the ONNX export on the holdout, or
    out of fold), parity and an exclusion reason. The ONNX outputs on the holdout go into
    ``outputs_sink`` under the candidate id, and the answers the gate compares into
    ``answers_sink``."""
    candidate: ScoredCandidate = {**entry, "metrics": None, "parity": None, "excluded": None}
    if entry.get("status") != "trained":
        candidate["excluded"] = f"training failed: {entry.get('error') or 'no error text'}"
        return candidate
    task = holdout.schema["task"]
    try:
        loaded = load_as_served(
            read_verified(
                s3,
                bucket,
                cast(str, entry["onnx_key"]),  # a trained entry has its export
                entry.get("onnx_version_id"),
                entry.get("onnx_sha256"),
            ),
            {"schema": holdout.schema},
        )
        onnx_out = run_outputs(loaded, holdout.feeds(loaded.layout))
    except ArtifactTampered:
        raise  # not a weak candidate: the run stops by name
    except Exception as error:
        candidate["excluded"] = (
            f"onnxruntime cannot run the export: {type(error).__name__}: {error}"
        )
        return candidate
    try:
        key = entry.get("sklearn_holdout_key")
        if not key:
            raise KeyError("the trained entry has no sklearn_holdout_key")
        sklearn_out = load_sklearn_outputs(read_object(s3, bucket, key), task, int(holdout.y.size))
        if task == CLASSIFICATION:
            model_classes = sklearn_out["classes"]
        else:
            onnx_out = {"variable": np.asarray(onnx_out["variable"]).ravel()}
            model_classes = None
        measured = parity(task, onnx_out, sklearn_out, tolerance, holdout.scale)
    except Exception as error:
        candidate["excluded"] = f"parity not measurable: {type(error).__name__}: {error}"
        return candidate

    candidate["parity"] = measured
    onnx_answers = holdout.answers(onnx_out, model_classes)
    if not measured["passed"]:
        candidate["metrics"] = holdout.metric_values(onnx_answers)
        against = "the original's answers" if entry.get("imported") else "sklearn"
        candidate["excluded"] = (
            f"ONNX/{against} parity out of tolerance: {describe_parity(measured)} "
            f"(tolerance {dict(tolerance)})"
        )
        return candidate
    try:
        answers = judge.candidate_answers(onnx_answers, sklearn_out)
    except (KeyError, ValueError) as error:
        candidate["excluded"] = f"no answers to judge: {type(error).__name__}: {error}"
        return candidate
    candidate["metrics"] = judge.metric_values(answers)
    if outputs_sink is not None:
        outputs_sink[entry["candidate_id"]] = dict(onnx_out)
    if answers_sink is not None:
        answers_sink[entry["candidate_id"]] = answers
    return candidate


def describe_parity(p: Mapping[str, Any]) -> str:
    if p.get("label_agreement") is None:
        return f"max scaled diff {p['max_scaled_diff']:.3g}"
    return (
        f"label agreement {p['label_agreement']:.4f} ({p['tie_flips']} of {p['label_flips']} "
        f"flips are ties), max probability diff {p['max_abs_diff']:.3g}"
    )


@tracer.capture_method
def measure_champion(
    model: str,
    holdout: Holdout,
    registry: Registry,
    *,
    s3: S3Client,
    judge: Judge,
    outputs_sink: dict[str, dict[str, np.ndarray]] | None = None,
    answers_sink: dict[str, list[Answers]] | None = None,
) -> Champion | None:
    """Production's metrics on this holdout, or why they cannot be compared. None: no production.
    Its outputs go into ``outputs_sink`` and its answers into ``answers_sink`` as "champion"."""
    version = registry.get_alias(model)
    if version is None:
        return None
    champion: Champion = {
        "version": version,
        "metrics": None,
        "comparable": False,
        "reason": None,
    }
    try:
        document = registry.get_version(model, version)
        champion["family"] = document.get("family")
        schema: Mapping[str, Any] = document.get("schema") or {}
        reason = _incompatibility(schema, holdout)
        if reason:
            champion["reason"] = reason
            return champion
        artifact = document["artifact"]
        loaded = load_as_served(
            read_verified(
                s3,
                artifact["bucket"],
                artifact["key"],
                artifact.get("version_id"),
                artifact.get("sha256"),
            ),
            document,
        )
        outputs = run_outputs(loaded, holdout.feeds(loaded.layout))
        answers = judge.repeated(holdout.answers(outputs, schema.get("classes")))
        champion["metrics"] = judge.metric_values(answers)
        champion["comparable"] = True
        if outputs_sink is not None:
            outputs_sink["champion"] = dict(outputs)
        if answers_sink is not None:
            answers_sink["champion"] = answers
    except UnparseableNumber as error:
        champion["reason"] = f"a column production reads as numeric is not numeric now: {error}"
    except ArtifactTampered as error:
        logger.error(
            "Production's artifact does not match the registry", extra={"reason": str(error)}
        )
        champion["reason"] = f"ArtifactTampered: {error}"
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
        return (
            f"production needs column(s) {', '.join(map(repr, missing))}, which the uploaded file "
            "does not have"
        )
    return None


def pick_best(candidates: Sequence[ScoredCandidate], metric: str) -> ScoredCandidate:
    viable = [c for c in candidates if c["excluded"] is None]
    if not viable:
        lines = "; ".join(f"{c['candidate_id']}: {c['excluded']}" for c in candidates)
        raise NoViableCandidate(f"no candidate can ship: {lines or 'no candidates trained'}")
    sign = 1.0 if greater_is_better(metric) else -1.0

    def key(c: ScoredCandidate) -> tuple[float, int, str]:
        value = (c["metrics"] or {}).get(metric)  # a viable candidate always has metrics
        # Best metric first; undefined metrics last; ties go to the smaller file, then the id.
        return (
            -sign * value if value is not None else math.inf,
            c["onnx_bytes"] or 0,
            c["candidate_id"],
        )

    return min(viable, key=key)


@dataclass
class GateResult:
    decision: Decision
    reasons: list[str]
    comparison: Comparison
    evidence: EvidenceDocument | None = None
    error: str | None = None  # the named outcome of a rejection for lack of evidence


@tracer.capture_method
def decide(
    spec: Mapping[str, Any],
    best: ScoredCandidate,
    champion: Champion | None,
    base: Baseline,
    *,
    judge: Judge,
    task: str,
    answers: Mapping[str, Sequence[Answers]],
    confidence: float,
    comparisons: int,
) -> GateResult:
    """Promote iff the threshold (if any) is met and the best beats production (or, without a
    comparable production, the baseline) beyond noise (mlstack_core.evidence). ``answers`` holds
    the best candidate's (under its id), production's ("champion") and the baseline's
    ("baseline"). Every score of the three gains its interval (``intervals``)."""
    metric = spec["metric"]
    higher = greater_is_better(metric)
    value = (best["metrics"] or {}).get(metric)  # the best candidate always has metrics
    reasons: list[str] = []
    if value is None:
        return GateResult(
            "reject", [f"{metric} of {best['candidate_id']} is undefined on the holdout"], {}
        )
    ok = True
    threshold = spec.get("threshold")
    if threshold is not None:
        met = value >= threshold - _EPSILON if higher else value <= threshold + _EPSILON
        relation = (
            ("reaches" if met else "is below") if higher else ("is within" if met else "is above")
        )
        reasons.append(f"{metric} {value:.4f} {relation} threshold {threshold}")
        ok = ok and met

    comparable = bool(champion and champion.get("comparable"))
    if champion and not comparable:
        reasons.append(
            f"production v{champion['version']} is not comparable ({champion.get('reason')}); "
            "compared with the baseline instead"
        )
    against: Literal["baseline", "production"] = "production" if comparable else "baseline"
    reference_name = (
        f"production v{champion['version']}"
        if champion and comparable
        else f"the {base['strategy']} baseline"
    )
    reference_key = "champion" if comparable else "baseline"
    measure = EVIDENCE_MEASURE[task]
    shown = {"best": answers[best["candidate_id"]], "baseline": answers["baseline"]}
    if "champion" in answers:
        shown["champion"] = answers["champion"]
    # The Brier score is shown too (the card's calibration), though not judged on.
    shown_metrics = [*metrics_for(task), *(["brier_score"] if task == CLASSIFICATION else [])]
    per_model, paired = judge.intervals(
        shown, [*shown_metrics, measure], confidence, [("best", reference_key)]
    )
    for key, document in (("best", best), ("baseline", base), ("champion", champion)):
        if document is not None and key in per_model:
            document["intervals"] = {m: i.document() for m, i in per_model[key].items()}
    measures = measures_for(task, metric)
    level = evidence_confidence(confidence, comparisons, len(measures))
    improvement, means = judge.improvement(shown[reference_key], shown["best"], level)
    metric_evidence = None
    if len(measures) > 1:
        _, strict = judge.intervals(
            {"best": shown["best"], reference_key: shown[reference_key]},
            [metric],
            level,
            [("best", reference_key)],
        )
        metric_evidence = strict[("best", reference_key)][metric]
    evidence = weigh(
        measure,
        improvement,
        means,
        against=against,
        reference=reference_name,
        confidence=confidence,
        comparisons=comparisons,
        metric=metric,
        metric_improvement=paired[("best", reference_key)][metric],
        metric_evidence=metric_evidence,
        min_improvement=float(spec.get("min_improvement", 0.0)),
        judged_on=judge.judged_on,
    )
    reasons.append(evidence["verdict"])
    ok = ok and evidence["passed"]
    reference_value = ((champion if comparable and champion else base)["metrics"] or {}).get(metric)
    point = (
        None
        if reference_value is None
        else (value - reference_value if higher else reference_value - value)
    )
    comparison: Comparison = {
        "against": "champion" if comparable else "baseline",
        "value": value,
        "reference": reference_value,
        "improvement": point,
        "interval": evidence["metric_improvement"],
    }
    error = None if evidence["passed"] else evidence["outcome"]
    return GateResult("promote" if ok else "reject", reasons, comparison, evidence, error)
