"""A run that ended while its version waited for a person: the version is rejected.

The RunEnded rule (template.yaml) hands this function Step Functions' status change event of a
training run that ended FAILED, TIMED_OUT or ABORTED. Such a run can no longer be resumed, so a
version it registered as PendingApproval could never be answered: it becomes Rejected, with a
reason naming how the run ended, instead of staying pending for ever.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from mlstack_core.errors import StatusConflict
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics
from mlstack_core.registry import Registry
from mlstack_core.registry_keys import STATUS_PENDING_APPROVAL, STATUS_REJECTED
from mlstack_core.settings import stack_settings
from mlstack_register.register import PIPELINE_ACTOR

ENDINGS = {"FAILED": "failed", "TIMED_OUT": "timed out", "ABORTED": "was aborted"}


def reject_pending_of_ended_run(event: EventBridgeEvent) -> dict[str, Any]:
    """Reject each version the ended execution left PendingApproval; a version already answered
    (or a redelivered event) is left as it is."""
    detail = event.detail
    execution_arn = str(detail["executionArn"])
    status = str(detail["status"])
    model = str(json.loads(detail.get("input") or "{}").get("model") or "")
    logger.set_correlation_id(execution_arn)
    if not model or status not in ENDINGS:
        return {"model": model, "status": status, "rejected": []}
    registry = Registry(stack_settings().registry_table)
    reason = (
        f"the training run {ENDINGS[status]} ({status}) while the version waited for approval: "
        "nobody can approve it any more"
    )
    rejected = []
    for document in registry.list_versions(model):
        if (
            document.get("status") != STATUS_PENDING_APPROVAL
            or document.get("execution_arn") != execution_arn
        ):
            continue
        version = int(document["version"])
        try:
            registry.set_status(
                model,
                version,
                STATUS_REJECTED,
                PIPELINE_ACTOR,
                reason,
                expected=STATUS_PENDING_APPROVAL,
            )
        except StatusConflict:
            continue  # answered meanwhile
        rejected.append(version)
        metrics.add_metric(name="Rejections", unit=MetricUnit.Count, value=1)
        logger.info(
            "Pending version of an ended run rejected",
            extra={"model": model, "version": version, "status": status},
        )
    return {"model": model, "status": status, "rejected": rejected}
