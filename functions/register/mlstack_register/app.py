"""Step Functions task: register the evaluated challenger; promote it or record the rejection;
write a version's model card (``write_card``, a state of its own). Also the target of the RunEnded
rule: a run that ended while its version waited for a person leaves that version Rejected
(``mlstack_register.ended_run``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.idempotency import once_per_step
from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.payloads import CardInput, CardWritten, RegisterInput, Registration
from mlstack_core.settings import FunctionSettings, guard_settings, stack_settings
from mlstack_register.ended_run import reject_pending_of_ended_run
from mlstack_register.register import handle, write_card

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings(
    "register",
    required=("IDEMPOTENCY_TABLE", "APPROVAL_ANSWERS_TABLE"),
    reads=(stack_settings, guard_settings),
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(
    event: RegisterInput | CardInput, context: LambdaContext
) -> Registration | CardWritten | dict[str, Any]:
    SETTINGS.check()
    if "detail-type" in event:
        return reject_pending_of_ended_run(EventBridgeEvent(dict(event)))
    correlate(event)
    if event["action"] == "write_card":
        # Rewriting a card is harmless, so it is not recorded: a retry writes it again.
        return write_card(event)
    # A retried invocation (Step Functions retries errors AWS raises after the function ran)
    # returns the first one's result instead of registering again.
    return once_per_step("register", handle, dict(event), context)
