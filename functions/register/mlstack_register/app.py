"""Step Functions task: register the evaluated challenger; promote it or record the rejection;
write a version's model card (``write_card``, a state of its own)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from mlstack_core.idempotency import once_per_step
from mlstack_core.observability.pipeline import correlate, logger, metrics, tracer
from mlstack_core.payloads import CardInput, CardWritten, RegisterInput, Registration
from mlstack_core.settings import FunctionSettings, guard_settings, stack_settings
from mlstack_register.register import handle, write_card

# What template.yaml gives this function and it needs: checked at its cold start.
SETTINGS = FunctionSettings(
    "register", required=("IDEMPOTENCY_TABLE",), reads=(stack_settings, guard_settings)
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: RegisterInput | CardInput, context: LambdaContext) -> Registration | CardWritten:
    SETTINGS.check()
    correlate(event)
    if event["action"] == "write_card":
        # Rewriting a card is harmless, so it is not recorded: a retry writes it again.
        return write_card(event)
    # A retried invocation (Step Functions retries errors AWS raises after the function ran)
    # returns the first one's result instead of registering again.
    return once_per_step("register", handle, dict(event), context)
