"""A pipeline step with side effects acts once per execution and state, however often it is invoked.

Step Functions retries a Task on ``Lambda.ServiceException`` and its kin, which AWS raises even when
the function ran: a retried Register would allocate a second version and then meet the alias it had
already moved. Powertools Idempotency records each call's result in the idempotency table, keyed by
the execution and the state (``execution_arn`` and ``step`` in the event, which the state machine
fills from ``$$.Execution.Id`` and ``$$.State.Name``); a repeated call returns the recorded result.
A call that raised leaves no record, so its retry runs again, and so does a call that Lambda
stopped part-way at its timeout: for that, each of the step's writes finds what this execution
already did (``Registry.allocate_version``, ``move_alias`` and ``set_status`` with the
execution).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from mlstack_core.errors import IdempotencyKeyMissing
from mlstack_core.settings import stack_settings

Result = TypeVar("Result")

# What Powertools calls on the idempotency table; the template grants exactly these.
TABLE_ACTIONS = frozenset(
    {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
)
# A record outlives any retry of its step (minutes) and any duplicate delivery.
RECORD_SECONDS = 24 * 3600
EVENT_KEY = "[execution_arn, step]"
# Powertools' default layout (template.yaml's IdempotencyTable), for tests and the local cloud.
TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "BillingMode": "PAY_PER_REQUEST",
}

_stores: dict[tuple[str, str], DynamoDBPersistenceLayer] = {}
_stores_lock = threading.Lock()


def _store(step: str) -> DynamoDBPersistenceLayer:
    # One persistence layer per step: Powertools configures a layer once, for one function.
    table = stack_settings().idempotency_table
    with _stores_lock:
        store = _stores.get((step, table))
        if store is None:
            store = _stores[(step, table)] = DynamoDBPersistenceLayer(table_name=table)
        return store


def once_per_step(
    step: str, function: Callable[..., Result], event: dict[str, Any], context: Any
) -> Result:
    """``function(event=event)``, or the result it returned for the same execution and state."""
    if not event.get("execution_arn") or not event.get("step"):
        raise IdempotencyKeyMissing(f"{step} needs execution_arn and step in its event")
    config = IdempotencyConfig(
        event_key_jmespath=EVENT_KEY,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=RECORD_SECONDS,
    )
    config.register_lambda_context(context)
    once = idempotent_function(
        data_keyword_argument="event",
        persistence_store=_store(step),
        config=config,
        key_prefix=step,
    )(function)
    return once(event=event)
