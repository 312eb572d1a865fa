"""Registry writes at the end of a training run.

Every evaluated challenger becomes a registry version, promoted or not, so each run can be explained
from its registry entry. Promotion is a conditional alias move: it succeeds only if production still
points at the champion that Evaluate compared against.

Each registry write is made once per execution: Step Functions retries a Register that timed out
part-way (or whose answer was lost), and the retry finds what the first attempt did (the version
number this execution was given, the version it wrote, its alias move, its status change) and
goes on from there. The model card is written by a state of its own (``write_card``), after the
registry action, so its work never delays or repeats a promotion.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any, cast

import boto3

from mlstack_core.approval_answers import answer_key
from mlstack_core.documents import Artifact, VersionDocument
from mlstack_core.drift import INLINE_BASELINE_BYTES
from mlstack_core.errors import (
    AliasConflict,
    ApprovalForAnotherVersion,
    ApprovalNotRecorded,
    ChampionChanged,
    ModelNotFound,
    StepEventInvalid,
)
from mlstack_core.integrity import check_unchanged, read_verified
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model
from mlstack_core.payloads import (
    Action,
    Approval,
    CardInput,
    CardWritten,
    Evaluation,
    EvaluationSummary,
    RegisterInput,
    Registration,
    Run,
    ScoredCandidate,
)
from mlstack_core.registry import Registry, serving_fields
from mlstack_core.registry_keys import (
    STATUS_APPROVED,
    STATUS_PENDING_APPROVAL,
    STATUS_REGISTERED,
    STATUS_REJECTED,
)
from mlstack_core.settings import stack_settings
from mlstack_core.storage_keys import (
    VERSION_FILES,
    version_file_key,
    version_metadata_key,
    version_model_key,
)

PIPELINE_ACTOR = "pipeline"


def version_document(run: Run, evaluation: Evaluation) -> VersionDocument:
    """Everything needed to explain and reproduce this version."""
    best = evaluation["best"]
    return {
        "family": best["family"],
        "candidate_id": best["candidate_id"],
        "params": best.get("params", {}),
        "cv": best.get("cv"),
        **serving_fields(run),
        "metric": evaluation["metric"],
        "metrics": best.get("metrics") or {},
        "intervals": best.get("intervals"),
        "evidence": evaluation.get("evidence"),
        "parity": best.get("parity") or {},
        "rehearsal": evaluation.get("rehearsal"),
        "dataset": run["dataset"],
        "splits": run.get("splits", {}),
        "warnings": run.get("warnings", []),
        "spec": run["spec"],
        "run_id": run["run_id"],
        "execution_arn": run.get("execution_arn"),
        "library_versions": best.get("library_versions", {}),
        "imported": run.get("imported"),
        "timings": {
            "fit_seconds": best.get("fit_seconds"),
            "export_seconds": best.get("export_seconds"),
        },
        "champion": evaluation.get("champion"),
        "baseline": evaluation.get("baseline"),
        "decision_reasons": evaluation.get("reasons", []),
        "evaluation_key": evaluation.get("report_key"),
        "feature_importance": best.get("feature_importance"),
        "explained_importance": best.get("explained_importance"),
    }


def run_seconds(execution_started: str | None) -> float | None:
    """Seconds since the execution started ($$.Execution.StartTime, ISO 8601)."""
    if not execution_started:
        return None
    started = datetime.fromisoformat(execution_started.replace("Z", "+00:00"))
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return (datetime.now(UTC) - started).total_seconds()


def publish_artifact(model: str, version: int, best: ScoredCandidate) -> Artifact:
    """Copy exactly the evaluated ONNX bytes to the version's permanent place: the version Train
    wrote, checked against its hash; ArtifactTampered if the key was written again since."""
    bucket = stack_settings().model_bucket
    s3 = boto3.client("s3")
    source_key = cast(str, best["onnx_key"])  # the winner was exported
    check_unchanged(s3, bucket, source_key, best.get("onnx_version_id"))
    body = read_verified(
        s3, bucket, source_key, best.get("onnx_version_id"), best.get("onnx_sha256")
    )
    key = version_model_key(model, version)
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
    return {
        "bucket": bucket,
        "key": key,
        "version_id": put.get("VersionId"),
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
    }


def publish_version_files(model: str, version: int, evaluation: Evaluation) -> VersionDocument:
    """Copy the run's evaluation report, holdout outputs, drift baseline and background rows next
    to the version (``models/<model>/<version>/``): what ``mlstack report``, the Monitor and
    explanations read. Returns the
    document fields: ``files`` (name -> key) and ``drift_baseline`` (inline when small)."""
    bucket = stack_settings().model_bucket
    s3 = boto3.client("s3")
    sources = {
        "evaluation": evaluation.get("report_key"),
        "predictions": evaluation.get("predictions_key"),
        "baseline": evaluation.get("drift_baseline_key"),
        "background": evaluation.get("background_key"),
    }
    files: dict[str, str] = {}
    inline: dict[str, Any] | None = None
    for name, source in sources.items():
        if not source:
            continue
        body = s3.get_object(Bucket=bucket, Key=source)["Body"].read()
        key = version_file_key(model, version, VERSION_FILES[name])
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        files[name] = key
        if name == "baseline" and len(body) <= INLINE_BASELINE_BYTES:
            inline = json.loads(body)
    return {"files": files, "drift_baseline": inline}


def consecutive_rejections(registry: Registry, model: str) -> int:
    """How many of the model's newest versions in a row the gate rejected."""
    versions = sorted(registry.list_versions(model), key=lambda d: -int(d["version"]))
    count = 0
    for document in versions:
        if document.get("status") != STATUS_REJECTED:
            break
        count += 1
    return count


def _new_version(
    registry: Registry,
    run: Run,
    evaluation: Evaluation,
    execution_started: str | None,
    step: tuple[str, str] | None,
    status: str,
    status_reason: str | None = None,
) -> tuple[int, VersionDocument]:
    """The execution's version: allocate a number, publish the artifact and its metadata.json,
    write the version with ``status``. Once per execution: a retry gets the same number, and
    finds the version as the first attempt wrote it if it got that far. ``step``: the execution
    and the state asking."""
    model = run["model"]
    duration = run_seconds(execution_started)
    if duration is not None:
        metrics.add_metric(name="PipelineDuration", unit=MetricUnit.Seconds, value=duration)
    if step is None:
        version = registry.allocate_version(model)
    else:
        version = registry.allocate_version(model, execution_arn=step[0], step=step[1])
    metrics.add_metadata(key="model_version", value=version)
    if step is not None:
        try:
            return version, registry.get_version(model, version)
        except ModelNotFound:
            pass  # allocated, not written yet: (re)publish below, to the same keys
    document = version_document(run, evaluation)
    document["timings"]["run_seconds_before_register"] = duration
    document["artifact"] = publish_artifact(model, version, evaluation["best"])
    document.update(publish_version_files(model, version, evaluation))
    boto3.client("s3").put_object(
        Bucket=document["artifact"]["bucket"],
        Key=version_metadata_key(model, version),
        Body=json.dumps(document, indent=2, default=str).encode(),
        ContentType="application/json",
    )
    if status_reason is not None:
        document["status_reason"] = status_reason
    registry.put_version(model, version, status, document)
    return version, document


def _promote(
    registry: Registry,
    model: str,
    version: int,
    evaluation: Evaluation,
    actor: str,
    reason: str,
    execution_arn: str | None = None,
) -> Registration:
    """Move production to ``version`` only if it still points at the champion Evaluate saw (a
    move this execution already made counts as done)."""
    champion = evaluation.get("champion")
    expected = champion["version"] if champion else None
    try:
        registry.move_alias(
            model,
            version,
            expected=expected,
            actor=actor,
            reason=reason,
            execution_arn=execution_arn,
        )
    except AliasConflict as conflict:
        metrics.add_metric(name="PromotionConflicts", unit=MetricUnit.Count, value=1)
        registry.set_status(
            model,
            version,
            STATUS_REGISTERED,
            PIPELINE_ACTOR,
            f"not promoted: {conflict}",
            execution_arn=execution_arn,
        )
        raise ChampionChanged(
            f"production of {model!r} moved during this run ({conflict}); version {version} is "
            "registered but not promoted"
        ) from conflict
    metrics.add_metric(name="Promotions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ConsecutiveRejections", unit=MetricUnit.Count, value=0)
    logger.info("Promoted", extra={"model": model, "version": version, "previous": expected})
    return {
        "model": model,
        "version": version,
        "status": STATUS_APPROVED,
        "promoted": True,
        "previous": expected,
    }


def _reject_pending(
    registry: Registry,
    model: str,
    version: int,
    approval: Approval | None,
    execution_arn: str | None = None,
) -> Registration:
    """A person's no, or no answer within the approval window (``approval`` None)."""
    actor = approval["actor"] if approval else PIPELINE_ACTOR
    reason = approval["reason"] if approval else "no answer within the approval window"
    registry.set_status(
        model,
        version,
        STATUS_REJECTED,
        actor,
        reason,
        expected=STATUS_PENDING_APPROVAL,
        execution_arn=execution_arn,
    )
    metrics.add_metric(name="Rejections", unit=MetricUnit.Count, value=1)
    logger.info("Pending version rejected", extra={"model": model, "version": version})
    return {
        "model": model,
        "version": version,
        "status": STATUS_REJECTED,
        "promoted": False,
        "reason": reason,
        "actor": actor,
        "production": registry.get_alias(model),
    }


def write_card(event: CardInput) -> CardWritten:
    """The WriteCard state: the version's model card, as the registry now stands."""
    model, version = event["model"], int(event["version"])
    per_model(model)
    return {"model": model, "version": version, "card": publish_card(model, version)}


def publish_card(model: str, version: int) -> str | None:
    """``models/<model>/<version>/card.md`` and ``card.html`` (``mlstack_core.card``), from the
    evaluation files Register copied beside the version and the registry as it is now, so every
    version has a card without the CLI and a person's decision updates it. Best effort: the
    registry write has happened, and a missing card must not fail the run. Returns the key of
    ``card.md``, or None when no card was written."""
    try:
        import numpy as np

        from mlstack_core.card import card_files, from_arrays

        bucket = stack_settings().model_bucket
        s3 = boto3.client("s3")
        registry = Registry(stack_settings().registry_table)
        document = registry.get_version(model, version)
        files = document.get("files") or {}
        if not files.get("evaluation") or not files.get("predictions"):
            return None  # a version without a holdout evaluation has no card
        report = s3.get_object(Bucket=bucket, Key=files["evaluation"])["Body"].read()
        outputs = s3.get_object(Bucket=bucket, Key=files["predictions"])["Body"].read()
        with np.load(io.BytesIO(outputs), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        data = from_arrays(model, version, document, json.loads(report), arrays)
        markdown, page = card_files(data, registry.history(model))
        for name, body, media_type in (
            ("card.md", markdown, "text/markdown"),
            ("card.html", page, "text/html"),
        ):
            s3.put_object(
                Bucket=bucket,
                Key=version_file_key(model, version, name),
                Body=body.encode(),
                ContentType=f"{media_type}; charset=utf-8",
            )
    except Exception:
        logger.exception("Model card not written", extra={"model": model, "version": version})
        metrics.add_metric(name="CardFailures", unit=MetricUnit.Count, value=1)
        return None
    return version_file_key(model, version, "card.md")


def apply_registry_action(
    action: Action,
    run: Run,
    evaluation: Evaluation,
    execution_started: str | None = None,
    pending: Registration | None = None,
    approval: Approval | None = None,
    execution_arn: str | None = None,
    step: str = "",
) -> Registration:
    """One of the pipeline's registry actions, once per execution (``execution_arn``) and state
    (``step``): a retry finds what an earlier attempt did and goes on from there.

    - ``promote``: new version, production moves to it (spec.approval = auto)
    - ``reject``: new version recorded as Rejected with the gate's reasons
    - ``request_approval``: new version PendingApproval; the run then waits for a person
    - ``promote_approved``: production moves to the pending version a person approved
    - ``reject_pending``: the pending version is Rejected by a person, or by the approval
      window passing (no ``approval``)

    A version's status changes only here, after the run accepted the answer.
    """
    model = run["model"]
    per_model(model)
    registry = Registry(stack_settings().registry_table)
    reason = "; ".join(evaluation.get("reasons", [])) or "passed the gate"
    asking = (execution_arn, step) if execution_arn else None

    if action in ("promote_approved", "reject_pending"):
        if pending is None:
            raise StepEventInvalid(f"{action} needs the pending version")
        version = int(pending["version"])
        if approval is not None and int(approval["version"]) != version:
            raise ApprovalForAnotherVersion(
                f"the run waits for version {version}; the answer names {approval['version']}"
            )
        if action == "promote_approved":
            if approval is None:
                raise StepEventInvalid("promote_approved needs the answer")
            if not approval["approved"]:
                raise StepEventInvalid("promote_approved needs a yes")
            return _promote(
                registry,
                model,
                version,
                evaluation,
                approval["actor"],
                approval["reason"],
                execution_arn,
            )
        return _reject_pending(registry, model, version, approval, execution_arn)

    if action == "reject":
        reason = reason if evaluation.get("reasons") else "rejected by the gate"
        version, _ = _new_version(
            registry, run, evaluation, execution_started, asking, STATUS_REJECTED, reason
        )
        metrics.add_metric(name="Rejections", unit=MetricUnit.Count, value=1)
        in_a_row = consecutive_rejections(registry, model)
        metrics.add_metric(name="ConsecutiveRejections", unit=MetricUnit.Count, value=in_a_row)
        logger.info(
            "Challenger rejected",
            extra={"model": model, "version": version, "rejections_in_a_row": in_a_row},
        )
        rejection: Registration = {
            "model": model,
            "version": version,
            "status": STATUS_REJECTED,
            "promoted": False,
            "reason": reason,
            "production": registry.get_alias(model),
        }
        if "error" in evaluation:
            rejection["error"] = evaluation["error"]
        evidence = evaluation.get("evidence")
        advice = evidence["advice"] if evidence else None
        if advice:
            rejection["advice"] = advice  # what would let the next run show its worth
        return rejection

    if action == "request_approval":
        version, _ = _new_version(
            registry,
            run,
            evaluation,
            execution_started,
            asking,
            STATUS_PENDING_APPROVAL,
            f"awaiting approval: {reason}",
        )
        logger.info("Registered for approval", extra={"model": model, "version": version})
        return {"model": model, "version": version, "status": STATUS_PENDING_APPROVAL}

    version, document = _new_version(
        registry, run, evaluation, execution_started, asking, STATUS_REGISTERED
    )
    promotion = _promote(
        registry, model, version, evaluation, PIPELINE_ACTOR, reason, execution_arn
    )
    promotion["artifact"] = document["artifact"]
    return promotion


def recorded_approval(
    model: str, pending: Registration | None, execution_arn: str, approval: Approval
) -> Approval:
    """The answer that resumed the run, as the approval function recorded it for this run's
    pending version (``mlstack_core.approval_answers``): its actor and reason, never the
    payload's, which anyone who read the task token could have sent. ApprovalNotRecorded when
    no answer was recorded for the version, or the record answers another run or decides
    otherwise than the payload."""
    if pending is None:
        raise StepEventInvalid("an answer needs the pending version")
    version = int(pending["version"])
    if int(approval["version"]) != version:
        raise ApprovalForAnotherVersion(
            f"the run waits for version {version}; the answer names {approval['version']}"
        )
    table = boto3.resource("dynamodb").Table(stack_settings().approval_answers_table)
    record = table.get_item(Key=answer_key(model, version), ConsistentRead=True).get("Item")
    if (
        record is None
        or record.get("execution_arn") != execution_arn
        or record.get("approved") is not approval["approved"]
    ):
        raise ApprovalNotRecorded(
            f"the run was resumed with an answer for version {version} of {model!r} that the "
            "approval function did not record for this run: nothing is promoted or rejected"
        )
    return {
        "approved": bool(record["approved"]),
        "version": version,
        "actor": str(record["actor"]),
        "reason": str(record["reason"]),
    }


def read_evaluation(summary: EvaluationSummary) -> Evaluation:
    """The evaluation the run decided on: the state's summary, with the winner whole from the
    report version Evaluate wrote, checked against its hash (ArtifactTampered if it changed)."""
    body = read_verified(
        boto3.client("s3"),
        stack_settings().model_bucket,
        summary["report_key"],
        summary.get("report_version_id"),
        summary.get("report_sha256"),
    )
    report = json.loads(body)
    return cast(Evaluation, {**report, **summary, "best": report["best"]})


def handle(event: RegisterInput) -> Registration:
    """The Register step's payload, as the state machine sends it: the evaluation is read whole
    from its report (the state carries a summary), and a person's answer (``$.approval``) counts
    only as the approval function recorded it."""
    approval = event.get("approval")
    if approval is not None:
        approval = recorded_approval(
            event["run"]["model"], event.get("pending"), event["execution_arn"], approval
        )
    return apply_registry_action(
        action=event["action"],
        run=event["run"],
        evaluation=read_evaluation(event["evaluation"]),
        execution_started=event.get("execution_started"),
        pending=event.get("pending"),
        approval=approval,
        execution_arn=event["execution_arn"],
        step=event["step"],
    )
