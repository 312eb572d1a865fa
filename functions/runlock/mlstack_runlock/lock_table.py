"""The run lock table: one item per model, naming the execution that holds the model's lock and
when its lease runs out.

A table of its own, written by the RunLock function alone: the role that takes and frees locks can
delete lock items and nothing of the registry (template.yaml's RunLockTable).

==========  =================================================================================
attribute   meaning
==========  =================================================================================
``model``   the model (the table's key)
holder      the execution ARN that holds the lock
expires_at  epoch seconds; after it, another run may take the lock over (also the table's TTL)
==========  =================================================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBServiceResource

KEY = "model"
# The table as template.yaml's RunLockTable declares it, for tests and benchmarks that build it
# without the stack: dynamodb.create_table(TableName=..., **TABLE_DEFINITION).
TABLE_DEFINITION: dict[str, Any] = {
    "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": KEY, "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


@dataclass(frozen=True)
class Acquisition:
    """What an acquire found: ``held_by`` the run that holds the lock when it was not taken;
    ``taken_over_from`` the run whose lease had run out when it was."""

    held_by: str | None = None
    taken_over_from: str | None = None


def _conditional_check_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class RunLockTable:
    """Conditional writes on the lock items: only the holder renews or frees its lock."""

    def __init__(self, table_name: str, dynamodb: DynamoDBServiceResource | None = None) -> None:
        resource = dynamodb or boto3.resource("dynamodb")
        self._table = resource.Table(table_name)

    def acquire(self, model: str, holder: str, lease_seconds: int) -> Acquisition:
        """Take the model's lock for ``holder``, or say which run holds it.

        Re-entrant for the same holder (a retried step), and a lease that ran out (a run whose
        release was lost) can be taken over.
        """
        now = int(time.time())
        try:
            previous = self._table.put_item(
                Item={
                    KEY: model,
                    "holder": holder,
                    "acquired_at": datetime.now(UTC).isoformat(),
                    "expires_at": now + lease_seconds,
                },
                ConditionExpression=(
                    "attribute_not_exists(#k) OR holder = :holder OR expires_at < :now"
                ),
                ExpressionAttributeNames={"#k": KEY},
                ExpressionAttributeValues={":holder": holder, ":now": now},
                ReturnValues="ALL_OLD",
            ).get("Attributes")
        except ClientError as error:
            if not _conditional_check_failed(error):
                raise
            return Acquisition(held_by=self.holder(model) or "(released meanwhile)")
        earlier = None if previous is None else str(previous["holder"])
        return Acquisition(taken_over_from=earlier if earlier not in (None, holder) else None)

    def renew(self, model: str, holder: str, lease_seconds: int) -> bool:
        """Set the lease of ``holder``'s lock to run out ``lease_seconds`` from now; False when
        ``holder`` no longer has the lock (its lease ran out and another run took it over)."""
        try:
            self._table.update_item(
                Key={KEY: model},
                UpdateExpression="SET expires_at = :expires",
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={
                    ":holder": holder,
                    ":expires": int(time.time()) + lease_seconds,
                },
            )
        except ClientError as error:
            if _conditional_check_failed(error):
                return False
            raise
        return True

    def release(self, model: str, holder: str) -> bool:
        """Free the lock if ``holder`` still has it; False when it did not."""
        try:
            self._table.delete_item(
                Key={KEY: model},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": holder},
            )
        except ClientError as error:
            if _conditional_check_failed(error):
                return False
            raise
        return True

    def holder(self, model: str) -> str | None:
        item = self._table.get_item(Key={KEY: model}, ConsistentRead=True).get("Item")
        return None if item is None else str(item["holder"])
