"""The gate's decision: the best candidate, the references it must beat (production on the same
holdout, or a trivial baseline), and promote or reject with the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlstack_core.errors import ArtifactTampered, NoViableCandidate, UnparseableNumber
from mlstack_core.integrity import read_verified
from mlstack_core.observability.pipeline import logger, tracer
from mlstack_core.payloads import Decision
from mlstack_core.registry import Registry
from mlstack_core.spec import (
    greater_is_better,
)
from mlstack_core.tabular import (
    CLASSIFICATION,
)
from mlstack_evaluate.scoring import (
    Holdout,
    classification_metrics,
    load_for_scoring,
    regression_metrics,
    run_outputs,
)

# Improvements are compared with this slack so 0.03 >= 0.03 holds despite float rounding.
_EPSILON = 1e-12


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
        champion["metrics"] = holdout.score(outputs, schema.get("classes"))
        champion["comparable"] = True
        if outputs_sink is not None:
            outputs_sink["champion"] = dict(outputs)
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
