"""The answers people gave to paused runs, as the approval function recorded them: the one
definition of the approval answers table's items, which the approval function writes and Register
reads.

The answer that resumes a run (``SendTaskSuccess``'s output, ``$.approval``) can be sent by anyone
who reads the task token in the execution's history and may call ``states:SendTaskSuccess``, with
any actor in it. The record cannot: only the approval function's role writes the table, after API
Gateway checked the caller's IAM signature. Register promotes or rejects from the record, and
fails the run (``ApprovalNotRecorded``) when the run was resumed without one.

Standard library only.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict


class RecordedAnswer(TypedDict):
    """One person's answer for one version, written before the run it answers is resumed."""

    model: str
    version: int
    execution_arn: str  # the run the answer resumes
    approved: bool
    actor: str  # the caller's ARN, from API Gateway's IAM-authorised request context
    approver: (
        str  # the principal behind it (an assumed role's role), as ApproverMustDiffer compares
    )
    reason: str
    answered_at: str  # ISO 8601, UTC


# template.yaml's ApprovalAnswersTable, for tests and benchmarks that make it themselves.
TABLE_DEFINITION: Final[dict[str, Any]] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


def answer_key(model: str, version: int) -> dict[str, str]:
    """A version's answer: a version number is handed out once, so it is answered at most once."""
    return {"pk": f"{model}#{version}"}
