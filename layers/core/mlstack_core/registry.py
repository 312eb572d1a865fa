"""Model registry on DynamoDB: versions, aliases and the history of every alias move.

One table, keyed by ``pk``/``sk``; the key layout and alias names are in
``mlstack_core.registry_keys``.

Version metadata is stored as a JSON document rather than DynamoDB maps: it holds floats, which
DynamoDB only takes as Decimal, and nothing queries inside it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

import boto3
from botocore.exceptions import ClientError

from mlstack_core.documents import (
    AliasEntry,
    FeatureSchema,
    HistoryEntry,
    VersionDocument,
)
from mlstack_core.errors import AliasConflict, ModelNotFound, StatusConflict
from mlstack_core.registry_keys import (
    ALIAS_PREFIX,
    CANARY,
    CHALLENGER_ALIASES,
    COUNTER_SK,
    HISTORY_PREFIX,
    MODELS_PK,
    PRODUCTION,
    STATUS_APPROVED,
    STATUS_ARCHIVED,
    VERSION_PREFIX,
    alias_sk,
    allocation_sk,
    model_pk,
    version_sk,
)
from mlstack_core.servable import check_servable
from mlstack_core.tasks import Task

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBServiceResource

    from mlstack_core.payloads import Run

# The table as template.yaml's RegistryTable declares it, for code that builds a registry without
# the stack (unit tests, benchmarks): dynamodb.create_table(TableName=..., **TABLE_DEFINITION).
TABLE_DEFINITION: dict[str, Any] = {
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


class ServingFields(TypedDict):
    task: Task
    schema: FeatureSchema
    classes: list[Any] | None


def serving_fields(run: Run) -> ServingFields:
    """The fields of a version document that serving reads to build a version's inputs and
    outputs (``mlstack_core.contract.FeatureLayout``), from the training run's state."""
    schema = run["schema"]
    return {"task": run["task"], "schema": schema, "classes": schema.get("classes")}


class RegistryReader(Protocol):
    """The registry reads the prediction function makes, and with it Preprocess and Evaluate:
    the boto3 ``Registry`` below has them, and so has ``mlstack_predict.awshttp.HttpRegistry``,
    which serves them without boto3."""

    def aliases(self, model: str) -> dict[str, AliasEntry]: ...

    def get_alias(self, model: str, alias: str = PRODUCTION) -> int | None: ...

    def get_version(self, model: str, version: int) -> VersionDocument: ...

    def list_versions(self, model: str) -> list[VersionDocument]: ...

    def list_models(self) -> list[str]: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    version: int
    previous: int | None
    actor: str
    reason: str
    at: str


class Registry:
    """Reads and writes the registry table. Every write that can race is conditional."""

    def __init__(self, table_name: str, dynamodb: DynamoDBServiceResource | None = None) -> None:
        resource = dynamodb or boto3.resource("dynamodb")
        self._table = resource.Table(table_name)

    # versions -----------------------------------------------------------------------------------
    def allocate_version(
        self, model: str, *, execution_arn: str | None = None, step: str = ""
    ) -> int:
        """Hand out the next version number; atomic, so concurrent runs never share one.

        With ``execution_arn``, once per execution and state (``step``): the number and who asked
        for it are written in one transaction, and a retried step that asks again gets the same
        number back, never a second one (nor a gap).
        """
        if execution_arn is None:
            response = self._table.update_item(
                Key={"pk": model_pk(model), "sk": COUNTER_SK},
                UpdateExpression="ADD next_version :one",
                ExpressionAttributeValues={":one": 1},
                ReturnValues="UPDATED_NEW",
            )
            version = int(str(response["Attributes"]["next_version"]))
        else:
            version = self._allocate_once(model, execution_arn, step)
        self._table.put_item(Item={"pk": MODELS_PK, "sk": model, "model": model})
        return version

    def allocated_version(self, model: str, execution_arn: str, step: str = "") -> int | None:
        """The version number ``allocate_version`` gave this execution's state, if it gave one."""
        item = self._table.get_item(
            Key={"pk": model_pk(model), "sk": allocation_sk(execution_arn, step)},
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else int(str(item["version"]))

    def _allocate_once(self, model: str, execution_arn: str, step: str) -> int:
        # Optimistic: read the counter, then move it on by one only if nobody else did meanwhile,
        # together with the execution's claim; a lost race reads both again.
        while True:
            claimed = self.allocated_version(model, execution_arn, step)
            if claimed is not None:
                return claimed
            counter = self._table.get_item(
                Key={"pk": model_pk(model), "sk": COUNTER_SK}, ConsistentRead=True
            ).get("Item")
            last = int(str(counter["next_version"])) if counter else 0
            update: dict[str, Any] = {
                "TableName": self._table.name,
                "Key": {"pk": model_pk(model), "sk": COUNTER_SK},
                "UpdateExpression": "SET next_version = :next",
                "ExpressionAttributeValues": {":next": last + 1},
                "ConditionExpression": "attribute_not_exists(next_version)",
            }
            if counter:
                update["ConditionExpression"] = "next_version = :last"
                update["ExpressionAttributeValues"][":last"] = last
            claim: dict[str, Any] = {
                "TableName": self._table.name,
                "Item": {
                    "pk": model_pk(model),
                    "sk": allocation_sk(execution_arn, step),
                    "version": last + 1,
                    "at": _now(),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            try:
                client = self._table.meta.client
                writes: list[dict[str, Any]] = [{"Update": update}, {"Put": claim}]
                client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    continue
                raise
            return last + 1

    def put_version(
        self,
        model: str,
        version: int,
        status: str,
        document: VersionDocument,
    ) -> None:
        """Create a version; refuses to overwrite an existing one."""
        body = {**document, "model": model, "version": version, "status": status}
        body.setdefault("created_at", _now())
        item: dict[str, Any] = {
            "pk": model_pk(model),
            "sk": version_sk(version),
            "version": version,
            "status": status,
            "created_at": body["created_at"],
            "doc": json.dumps(body, default=str),
        }
        self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")

    def set_status(
        self,
        model: str,
        version: int,
        status: str,
        actor: str,
        reason: str,
        *,
        expected: str | None = None,
        execution_arn: str | None = None,
    ) -> None:
        """Change a version's status; with ``expected``, only from that status (else raises
        StatusConflict). A settled approval drops the task token.

        With ``execution_arn``, once per execution: a status this execution already set is left
        as it is (a retried step finds its change done, not a conflict)."""
        record = self.get_version(model, version)
        if (
            execution_arn is not None
            and record.get("status") == status
            and record.get("status_changed_in") == execution_arn
        ):
            return
        record.update(
            {
                "status": status,
                "status_reason": reason,
                "status_changed_at": _now(),
                "status_changed_by": actor,
            }
        )
        if execution_arn is not None:
            record["status_changed_in"] = execution_arn
        condition = "attribute_exists(pk)"
        values: dict[str, Any] = {":s": status, ":d": json.dumps(record, default=str)}
        if expected is not None:
            condition += " AND #s = :expected"
            values[":expected"] = expected
        try:
            self._table.update_item(
                Key={"pk": model_pk(model), "sk": version_sk(version)},
                UpdateExpression="SET #s = :s, doc = :d",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                ConditionExpression=condition,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                current = self.get_version(model, version)["status"]
                raise StatusConflict(
                    f"version {version} of {model!r} is {current}, not {expected}"
                ) from error
            raise
        entry: dict[str, Any] = {
            "kind": "status",
            "version": version,
            "status": status,
            "actor": actor,
            "reason": reason,
        }
        if execution_arn is not None:
            entry["execution_arn"] = execution_arn
        self._record_history(model, entry)

    def get_version(self, model: str, version: int) -> VersionDocument:
        item = self._table.get_item(
            Key={"pk": model_pk(model), "sk": version_sk(version)}, ConsistentRead=True
        ).get("Item")
        if item is None:
            raise ModelNotFound(f"model {model!r} has no version {version}")
        return cast(VersionDocument, json.loads(str(item["doc"])))

    def list_versions(self, model: str) -> list[VersionDocument]:
        items = self._query(model, VERSION_PREFIX)
        return [cast(VersionDocument, json.loads(str(item["doc"]))) for item in items]

    def list_models(self) -> list[str]:
        response = self._table.query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": MODELS_PK}
        )
        return [str(item["sk"]) for item in response.get("Items", [])]

    # aliases ------------------------------------------------------------------------------------
    def get_alias(self, model: str, alias: str = PRODUCTION) -> int | None:
        item = self._table.get_item(
            Key={"pk": model_pk(model), "sk": alias_sk(alias)}, ConsistentRead=True
        ).get("Item")
        return None if item is None else int(str(item["version"]))

    def move_alias(
        self,
        model: str,
        version: int,
        *,
        expected: int | None,
        actor: str,
        reason: str,
        alias: str = PRODUCTION,
        rollback: bool = False,
        execution_arn: str | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``version`` only if it still points at ``expected``.

        ``expected=None`` means the alias must not exist yet. A lost race raises AliasConflict and
        changes nothing. The move, its history entry and, for production, the statuses it implies
        (the version that left is Archived, the version that arrived is Approved) are one
        TransactWriteItems: a reader never sees the alias moved without its history, so a rollback
        never replays a history that lost an entry.

        With ``execution_arn``, once per execution: when the history shows this execution already
        moved ``alias`` to ``version``, that move is returned and nothing is written (a retried
        step finds its move done, not a conflict with itself).
        """
        if execution_arn is not None:
            done = self.recorded_move(model, alias, version, execution_arn)
            if done is not None:
                return done
        target = self.get_version(model, version)  # refuse to point an alias at a missing version
        at = _now()
        alias_put: dict[str, Any] = {
            "TableName": self._table.name,
            "Item": {
                "pk": model_pk(model),
                "sk": alias_sk(alias),
                "version": version,
                "previous": expected,
                "updated_at": at,
                "actor": actor,
                "reason": reason,
            },
        }
        if expected is None:
            alias_put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            alias_put["ConditionExpression"] = "version = :expected"
            alias_put["ExpressionAttributeValues"] = {":expected": expected}
        writes: list[dict[str, Any]] = [
            {"Put": alias_put},
            self._history_put(
                model,
                {
                    "kind": "alias",
                    "alias": alias,
                    "version": version,
                    "previous": expected,
                    "actor": actor,
                    "reason": reason,
                    "rollback": rollback,
                    **({"execution_arn": execution_arn} if execution_arn is not None else {}),
                },
                at,
            ),
        ]
        if alias == PRODUCTION and expected is not None and expected != version:
            # The version that left production stays servable and can be rolled back to.
            left = f"replaced in production by version {version}"
            writes += self._status_writes(model, expected, STATUS_ARCHIVED, actor, left, at)
        if alias == PRODUCTION and target.get("status") != STATUS_APPROVED:
            # In production means Approved, with who and why; back from Archived says so.
            arrived = reason
            if target.get("status") == STATUS_ARCHIVED:
                arrived = f"{'rolled back to' if rollback else 'promoted again'}: {reason}"
            writes += self._status_writes(model, version, STATUS_APPROVED, actor, arrived, at)
        try:
            # The resource's client serialises Python values, as the Table's methods do.
            client = self._table.meta.client
            client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]
        except ClientError as error:
            reasons = error.response.get("CancellationReasons") or [{}]
            if reasons[0].get("Code") == "ConditionalCheckFailed":
                current = self.get_alias(model, alias)
                raise AliasConflict(
                    f"{alias} of {model!r} points at version {current}, expected {expected}"
                ) from error
            raise
        return AliasMove(model, alias, version, expected, actor, reason, at)

    def _status_writes(
        self, model: str, version: int, status: str, actor: str, reason: str, at: str
    ) -> list[dict[str, Any]]:
        """A status change and its history entry, as transaction items."""
        record = self.get_version(model, version)
        record.update(
            {
                "status": status,
                "status_reason": reason,
                "status_changed_at": at,
                "status_changed_by": actor,
            }
        )
        update = {
            "Update": {
                "TableName": self._table.name,
                "Key": {"pk": model_pk(model), "sk": version_sk(version)},
                "UpdateExpression": "SET #s = :s, doc = :d",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    ":s": status,
                    ":d": json.dumps(record, default=str),
                },
            }
        }
        entry = {"kind": "status", "version": version, "status": status}
        return [update, self._history_put(model, {**entry, "actor": actor, "reason": reason}, at)]

    def recorded_move(
        self, model: str, alias: str, version: int, execution_arn: str
    ) -> AliasMove | None:
        """The move of ``alias`` to ``version`` that ``execution_arn`` made, if the history has
        one."""
        for entry in self.history(model):
            if (
                entry.get("kind") == "alias"
                and entry.get("alias") == alias
                and entry.get("version") == version
                and entry.get("execution_arn") == execution_arn
            ):
                previous = entry.get("previous")
                return AliasMove(
                    model, alias, version, previous, entry["actor"], entry["reason"], entry["at"]
                )
        return None

    def rollback_target(self, model: str, alias: str = PRODUCTION) -> int | None:
        """The version ``alias`` pointed at before its current version, rollbacks undone.

        Replays the alias moves: a forward move pushes the version it replaced, a rollback pops
        one, so repeated rollbacks walk back through earlier versions instead of flip-flopping.
        """
        replaced: list[int] = []
        for entry in self.history(model):
            if entry.get("kind") != "alias" or entry.get("alias") != alias:
                continue
            if entry.get("rollback"):
                if replaced:
                    replaced.pop()
            elif (previous := entry.get("previous")) is not None:
                replaced.append(int(previous))
        return replaced[-1] if replaced else None

    def history(self, model: str) -> list[HistoryEntry]:
        items = self._query(model, HISTORY_PREFIX)
        return [cast(HistoryEntry, json.loads(str(item["doc"]))) for item in items]

    # challengers (canary, shadow) ---------------------------------------------------------------
    def aliases(self, model: str) -> dict[str, AliasEntry]:
        """Every alias of ``model`` in one consistent query: ``{alias: {"version", "share"?}}``.

        The prediction function reads production, canary and shadow with this single request.
        """
        aliases: dict[str, AliasEntry] = {}
        for item in self._query(model, ALIAS_PREFIX):
            entry: AliasEntry = {"version": int(str(item["version"]))}
            if item.get("share") is not None:
                entry["share"] = float(str(item["share"]))
            aliases[str(item["sk"]).removeprefix(ALIAS_PREFIX)] = entry
        return aliases

    def set_challenger(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        share: float | None = None,
    ) -> None:
        """Point the ``canary`` (with a traffic ``share`` in (0, 1]) or ``shadow`` alias at
        ``version``, which must be Approved or Archived (``mlstack_core.servable``; else
        VersionNotServed). Unconditional: a challenger replaces the previous one; the move is
        recorded."""
        if alias not in CHALLENGER_ALIASES:
            raise ValueError(f"alias must be one of {CHALLENGER_ALIASES}, not {alias!r}")
        if alias == CANARY and (share is None or not 0.0 < share <= 1.0):
            raise ValueError(f"a canary needs a traffic share in (0, 1], got {share!r}")
        # A missing version is refused by name (ModelNotFound), an unapproved one by the rule.
        status = self.get_version(model, version).get("status")
        check_servable(model, version, status, aliased=True)
        at = _now()
        item: dict[str, Any] = {
            "pk": model_pk(model),
            "sk": alias_sk(alias),
            "version": version,
            "updated_at": at,
            "actor": actor,
            "reason": reason,
        }
        if alias == CANARY:
            item["share"] = str(share)  # DynamoDB numbers are Decimal; text keeps it exact
        self._table.put_item(Item=item)
        self._record_history(
            model,
            {
                "kind": "challenger",
                "alias": alias,
                "version": version,
                "share": share,
                "actor": actor,
                "reason": reason,
            },
        )

    def clear_challenger(self, model: str, alias: str, *, actor: str, reason: str) -> int | None:
        """Remove the ``canary`` or ``shadow`` alias; returns the version it pointed at, if any."""
        if alias not in CHALLENGER_ALIASES:
            raise ValueError(f"alias must be one of {CHALLENGER_ALIASES}, not {alias!r}")
        old = self._table.delete_item(
            Key={"pk": model_pk(model), "sk": alias_sk(alias)}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        previous = None if not old else int(str(old["version"]))
        if previous is not None:
            self._record_history(
                model,
                {
                    "kind": "challenger",
                    "alias": alias,
                    "version": None,
                    "previous": previous,
                    "actor": actor,
                    "reason": reason,
                },
            )
        return previous

    # internals ----------------------------------------------------------------------------------
    def _record_history(self, model: str, entry: dict[str, Any]) -> None:
        self._table.put_item(Item=self._history_put(model, entry, _now())["Put"]["Item"])

    def _history_put(self, model: str, entry: dict[str, Any], at: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table.name,
                "Item": {
                    "pk": model_pk(model),
                    "sk": f"{HISTORY_PREFIX}{at}#{uuid.uuid4().hex[:8]}",
                    "doc": json.dumps({**entry, "model": model, "at": at}, default=str),
                },
            }
        }

    def _query(self, model: str, prefix: str) -> list[dict[str, Any]]:
        items: list[Any] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": model_pk(model), ":prefix": prefix},
            "ConsistentRead": True,
        }
        while True:
            response = self._table.query(**kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
