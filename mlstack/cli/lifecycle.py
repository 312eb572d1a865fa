"""Human decisions on registered versions: approve, reject, promote, roll back.

Every move of the production alias is a conditional write recorded with who, when and why.
"""

from __future__ import annotations

import getpass
import time
from typing import Any

from mlstack.cli.errors import CommandError, CommandRefused
from mlstack.cli.stack import StackClient
from mlstack_core.compatibility import request_incompatibilities
from mlstack_core.errors import VersionNotServed
from mlstack_core.registry import Registry
from mlstack_core.registry_keys import (
    CANARY,
    SHADOW,
    STATUS_PENDING_APPROVAL,
    STATUS_REJECTED,
)
from mlstack_core.servable import check_servable

# How long approve and reject follow the run they resumed (Register and the lock's release).
RUN_END_SECONDS = 60.0


class LifecycleError(CommandRefused):
    """The requested move is not allowed; the message says why (the command exits
    ``EXIT_REFUSED``)."""


def current_actor(client: StackClient) -> str:
    """The caller's IAM identity, or the local user name where there is none."""
    try:
        arn: str = client.session.client("sts").get_caller_identity()["Arn"]
    except Exception:  # no credentials or no STS: still record someone
        return getpass.getuser()
    return arn


def _answer_approval(
    client: StackClient, model: str, version: int, approved: bool, reason: str
) -> dict[str, Any]:
    """POST the answer to the stack's IAM-authorised approve/reject route: the approval function
    resumes the paused run, with the caller's IAM identity as the actor; the run then records
    the decision in the registry."""
    verb = "approve" if approved else "reject"
    response = client.request(
        "POST", f"/models/{model}/versions/{version}/{verb}", {"reason": reason}
    )
    if response.status != 200:
        body = response.body if isinstance(response.body, dict) else {"error": response.body}
        raise LifecycleError(str(body.get("error") or body.get("message") or body))
    answer: dict[str, Any] = dict(response.body)
    stepfunctions = client.session.client("stepfunctions")
    answer["run"] = _run_ending(stepfunctions, answer.pop("execution_arn"))
    answer["status"] = client.registry.get_version(model, version)["status"]
    answer["production"] = client.registry.get_alias(model)
    return answer


def _run_ending(stepfunctions: Any, execution_arn: str, timeout: float = RUN_END_SECONDS) -> str:
    """The resumed run's status once it ends (it registers or rejects, then releases the model's
    lock), so the next command sees production where the run left it; RUNNING after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        status: str = stepfunctions.describe_execution(executionArn=execution_arn)["status"]
        if status != "RUNNING" or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def approve(client: StackClient, model: str, version: int, reason: str) -> dict[str, Any]:
    """Resume the paused run; it promotes the version if production is still where it was."""
    return _answer_approval(client, model, version, True, reason)


def reject(client: StackClient, model: str, version: int, reason: str) -> dict[str, Any]:
    """End the paused run without promotion."""
    return _answer_approval(client, model, version, False, reason)


def _refuse_unapproved(
    registry: Registry, model: str, version: int, action: str, force: bool
) -> None:
    """A rejected or unapproved version serves traffic only when the caller insists."""
    status = registry.get_version(model, version)["status"]
    if status in (STATUS_REJECTED, STATUS_PENDING_APPROVAL) and not force:
        raise LifecycleError(
            f"version {version} of {model!r} is {status}; use --force to {action} it anyway"
        )


def promote(
    client: StackClient, model: str, version: int, actor: str, reason: str, force: bool = False
) -> dict[str, Any]:
    registry: Registry = client.registry
    _refuse_unapproved(registry, model, version, "promote", force)
    current = registry.get_alias(model)
    if current == version:
        raise LifecycleError(f"version {version} of {model!r} is already in production")
    registry.move_alias(model, version, expected=current, actor=actor, reason=reason)
    return {"model": model, "production": version, "previous": current}


def rollback(client: StackClient, model: str, actor: str, reason: str) -> dict[str, Any]:
    registry = client.registry
    current = registry.get_alias(model)
    target = registry.rollback_target(model)
    if current is None or target is None:
        raise LifecycleError(f"{model!r} has no earlier production version to roll back to")
    registry.move_alias(model, target, expected=current, actor=actor, reason=reason, rollback=True)
    return {"model": model, "production": target, "previous": current}


# Alias changes reach the prediction function when its cached aliases expire.
REACHES_SERVING = (
    "serving picks this up within the prediction function's ALIAS_TTL_SECONDS "
    "(30 s unless template.yaml says otherwise)"
)


def _refuse_unservable(registry: Registry, model: str, version: int, role: str) -> None:
    """A canary or shadow serves real requests: only an Approved or Archived version may be one,
    the rule every path that names a version follows (``mlstack_core.servable``; the registry
    enforces it too). Checked first, so the refusal names the status, not a column."""
    status = registry.get_version(model, version).get("status")
    try:
        check_servable(model, version, status, aliased=True)
    except VersionNotServed as error:
        raise LifecycleError(f"{error}: it cannot be the {role}") from error


def _check_compatible(
    registry: Registry, model: str, production: int | None, version: int, role: str
) -> None:
    """A challenger must answer every request production accepts."""
    if production is None:
        raise LifecycleError(f"{model!r} has no production version to put a {role} beside")
    problems = request_incompatibilities(
        registry.get_version(model, production), registry.get_version(model, version)
    )
    if problems:
        raise LifecycleError(
            f"version {version} of {model!r} cannot be the {role} of production version "
            f"{production}: " + "; ".join(problems)
        )


def canary(
    client: StackClient,
    model: str,
    version: int,
    share: float,
    actor: str,
    reason: str,
) -> dict[str, Any]:
    """Send ``share`` of the model's prediction requests to ``version`` (served within the
    function's ALIAS_TTL_SECONDS); the rest stay on production. Approved versions only."""
    registry: Registry = client.registry
    if not 0.0 < share <= 1.0:
        raise CommandError(f"--share must be in (0, 1], got {share}")
    _refuse_unservable(registry, model, version, "canary")
    production = registry.get_alias(model)
    if production == version:
        raise LifecycleError(f"version {version} of {model!r} is already in production")
    _check_compatible(registry, model, production, version, "canary")
    registry.set_challenger(model, CANARY, version, share=share, actor=actor, reason=reason)
    return {
        "model": model,
        "canary": version,
        "share": share,
        "production": production,
        "note": REACHES_SERVING,
    }


def shadow(
    client: StackClient, model: str, version: int, actor: str, reason: str
) -> dict[str, Any]:
    """Score ``version`` beside production on every request, silently; the comparison goes to
    the ShadowAgreement and ShadowMaxAbsDiff metrics. Approved versions only."""
    registry: Registry = client.registry
    _refuse_unservable(registry, model, version, "shadow")  # a missing one: ModelNotFound
    production = registry.get_alias(model)
    if production == version:
        raise LifecycleError(f"version {version} of {model!r} is already in production")
    _check_compatible(registry, model, production, version, "shadow")
    registry.set_challenger(model, SHADOW, version, actor=actor, reason=reason)
    return {"model": model, "shadow": version, "production": production, "note": REACHES_SERVING}


def clear_challenger(
    client: StackClient, model: str, alias: str, actor: str, reason: str
) -> dict[str, Any]:
    """Turn the canary or the shadow off."""
    previous = client.registry.clear_challenger(model, alias, actor=actor, reason=reason)
    if previous is None:
        raise LifecycleError(f"{model!r} has no {alias}")
    return {"model": model, alias: None, "previous": previous}
