"""Which versions may serve when a caller names one: the one rule that a pinned request
(``?version=N``), a batch job's version (``mlstack score --version N``) and a canary or shadow
alias move all apply.

A version serves by number only if it was approved for service and not refused since:

- Approved: always (production is Approved by construction: ``Registry.move_alias`` approves the
  version it points production at, in the same transaction);
- Archived (it was Approved and in production until another version replaced it, or a rollback
  moved production away from it): only while production, the canary or the shadow points at it.
  Putting it back as a canary or shadow is a recorded decision; otherwise it left service, and it
  serves again when one of those aliases (``mlstack canary|shadow|promote|rollback``) moves to it;
- Registered, PendingApproval, Rejected (or anything else): never, whatever alias points at it.

So a canary or shadow may be pointed at an Approved or Archived version only. The status is read
when the version is named (each pinned request, each job's start, each alias move), never taken
from an alias: an alias grants nothing to a version that was not approved.

Standard library only: the prediction function imports it without boto3.
"""

from __future__ import annotations

from typing import Any

from mlstack_core.errors import VersionNotServed
from mlstack_core.registry_keys import STATUS_APPROVED, STATUS_ARCHIVED


def check_servable(model: str, version: int, status: Any, *, aliased: bool) -> None:
    """Raise VersionNotServed unless a version in ``status`` may serve by number; ``aliased``:
    production, the canary or the shadow points at it (or is about to, for an alias move)."""
    if status == STATUS_APPROVED or (status == STATUS_ARCHIVED and aliased):
        return
    if status == STATUS_ARCHIVED:
        why = "it left production and serves again only as production, the canary or the shadow"
    else:
        why = "it was never approved for service, and no alias changes that"
    raise VersionNotServed(
        f"version {version} of {model!r} is {status}: only approved versions are served by "
        f"number (a pinned request or batch job, a canary, a shadow); {why}"
    )
