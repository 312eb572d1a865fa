"""The gate's decision: the best candidate, the references it must beat (production on the same
holdout, or a trivial baseline), and promote or reject with the reasons. How sure each comparison
is, and the verdict's words, are the evidence's (mlstack_core.evidence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlstack_core.errors import ArtifactTampered, NoViableCandidate, UnparseableNumber
from mlstack_core.evidence import (
    EVIDENCE_MEASURE,
    Answers,
    EvidenceDocument,
    bootstrap_intervals,
    weigh,
)
from mlstack_core.integrity import read_verified
from mlstack_core.observability.pipeline import logger, tracer
from mlstack_core.payloads import Decision
from mlstack_core.registry import Registry
from mlstack_core.spec import greater_is_better, metrics_for
from mlstack_core.tabular import (
    CLASSIFICATION,
)
from mlstack_evaluate.holdout import Holdout, load_for_scoring, run_outputs

# Improvements are compared with this slack so 0.03 >= 0.03 holds despite float rounding.
_EPSILON = 1e-12


def baseline(holdout: Holdout) -> tuple[dict[str, Any], Answers]:
    """The trivial model: the holdout's most frequent class (with its class frequencies as
    probabilities) or its mean."""
    y = holdout.y
    if holdout.schema["task"] == CLASSIFICATION:
        classes = holdout.classes
        counts = np.array([np.sum(y == c) for c in classes], dtype=np.float64)
        priors = counts / counts.sum()
        labels = np.full(y.shape, classes[int(np.argmax(counts))], dtype=y.dtype)
        answers = Answers(labels=labels, probabilities=np.tile(priors, (y.size, 1)))
        return {"strategy": "most_frequent", "metrics": holdout.score(answers)}, answers
    answers = Answers(values=np.full(y.shape, float(np.mean(y))))
    return {"strategy": "mean", "metrics": holdout.score(answers)}, answers


@tracer.capture_method
def score_champion(
    model: str,
    holdout: Holdout,
    registry: Registry,
    *,
    s3: Any,
    outputs_sink: dict[str, dict[str, np.ndarray]] | None = None,
    answers_sink: dict[str, Answers] | None = None,
) -> dict[str, Any] | None:
    """Production's metrics on this holdout, or why they cannot be compared. None: no production.
    Its outputs go into ``outputs_sink`` and its answers into ``answers_sink`` as "champion"."""
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
        answers = holdout.answers(outputs, schema.get("classes"))
        champion["metrics"] = holdout.score(answers)
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


@dataclass
class GateResult:
    decision: Decision
    reasons: list[str]
    comparison: dict[str, Any]
    evidence: EvidenceDocument | None = None
    error: str | None = None  # the named outcome of a rejection for lack of evidence


@tracer.capture_method
def decide(
    spec: Mapping[str, Any],
    best: dict[str, Any],
    champion: dict[str, Any] | None,
    base: dict[str, Any],
    *,
    holdout: Holdout,
    answers: Mapping[str, Answers],
    confidence: float,
    comparisons: int,
) -> GateResult:
    """Promote iff the threshold (if any) is met and the best beats production (or, without a
    comparable production, the baseline) beyond noise (mlstack_core.evidence). ``answers`` holds
    the best candidate's (under its id), production's ("champion") and the baseline's
    ("baseline"). Every score of the three gains its interval (``intervals``)."""
    metric = spec["metric"]
    higher = greater_is_better(metric)
    value = best["metrics"].get(metric)
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
    measure = EVIDENCE_MEASURE[holdout.schema["task"]]
    shown = {"best": answers[best["candidate_id"]], "baseline": answers["baseline"]}
    if "champion" in answers:
        shown["champion"] = answers["champion"]
    per_model, paired = bootstrap_intervals(
        holdout.y,
        holdout.classes,
        shown,
        [*metrics_for(holdout.schema["task"]), measure],
        confidence,
        differences=[("best", reference_key)],
    )
    for key, document in (("best", best), ("baseline", base), ("champion", champion)):
        if document is not None and key in per_model:
            document["intervals"] = {m: i.document() for m, i in per_model[key].items()}
    evidence = weigh(
        measure,
        holdout.losses(shown[reference_key]),
        holdout.losses(shown["best"]),
        against=against,
        reference=reference_name,
        confidence=confidence,
        comparisons=comparisons,
        metric=metric,
        metric_improvement=paired[("best", reference_key)][metric],
        min_improvement=float(spec.get("min_improvement", 0.0)),
    )
    reasons.append(evidence["verdict"])
    ok = ok and evidence["passed"]
    reference_value = (champion if comparable and champion else base)["metrics"].get(metric)
    improvement = (
        None
        if reference_value is None
        else (value - reference_value if higher else reference_value - value)
    )
    comparison = {
        "against": "champion" if comparable else "baseline",
        "value": value,
        "reference": reference_value,
        "improvement": improvement,
        "interval": evidence["metric_improvement"],
    }
    error = None if evidence["passed"] else evidence["outcome"]
    return GateResult("promote" if ok else "reject", reasons, comparison, evidence, error)
