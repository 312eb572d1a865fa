"""Approvals: the paused run's task (Step Functions) and a person's answer (API Gateway).

``AwaitApproval`` invokes this function with the task token to hold; ``POST
/models/{model}/versions/{version}/approve`` and ``/reject`` (IAM-authorised, whatever
``ApiAuth`` says) answer it, with the caller's IAM ARN from the request context as the actor,
recorded in the approval answers table for Register before the run resumes. With
``ApproverMustDiffer``, CloudTrail's record of each dataset upload arrives here too.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_approval.approval import Answer, answer, hold, record_upload
from mlstack_core.errors import MlstackError
from mlstack_core.http import secured
from mlstack_core.observability.pipeline import MetricUnit, correlate, logger, metrics, tracer
from mlstack_core.settings import FunctionSettings, approval_settings, stack_settings

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings(
    "approval",
    required=("APPROVALS_TABLE", "APPROVAL_ANSWERS_TABLE"),
    reads=(stack_settings, approval_settings),
)


app = APIGatewayRestResolver()
MAX_REASON_CHARS = 1000


def _answer(model: str, version: str, approved: bool) -> dict[str, Any]:
    if not version.isdigit():
        raise BadRequestError(f"version must be a number, not {version[:20]!r}")
    body = app.current_event.json_body if app.current_event.body else {}
    reason = (body or {}).get("reason") or ("approved" if approved else "rejected")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise BadRequestError(f"reason must be text of at most {MAX_REASON_CHARS} characters")
    identity = app.current_event.request_context.identity
    return answer(Answer(model, int(version), approved, identity.user_arn or "", reason))


@app.post("/models/<model>/versions/<version>/approve")
def approve(model: str, version: str) -> dict[str, Any]:
    return _answer(model, version, approved=True)


@app.post("/models/<model>/versions/<version>/reject")
def reject(model: str, version: str) -> dict[str, Any]:
    return _answer(model, version, approved=False)


@app.exception_handler(MlstackError)
def refused(error: MlstackError) -> Response[Any]:
    """A refused answer (ApprovalRefused, ModelNotFound, ...): its class gives the status."""
    if error.http_status is None:
        raise error  # not the caller's doing: the function fails, as with any other error
    metrics.add_metric(name="ApprovalsRefused", unit=MetricUnit.Count, value=1)
    logger.warning("Approval refused", extra={"status": error.http_status, "reason": str(error)})
    return Response(
        status_code=error.http_status,
        content_type="application/json",
        body={"error": str(error), "details": []},
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    SETTINGS.check()
    if "requestContext" in event and "httpMethod" in event:
        return secured(app.resolve(event, context))
    if event.get("detail-type") == "AWS API Call via CloudTrail":
        record_upload(event)
        return None
    correlate(event)
    hold(event["model"], int(event["version"]), event["task_token"], event["execution_arn"])
    return None
