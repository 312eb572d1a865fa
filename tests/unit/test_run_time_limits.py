"""The training run's time limits are derived from its parts, never picked by hand.

template.yaml's ``RunTimeLimits`` mapping spells the parts and their sums (CloudFormation has no
arithmetic); these tests derive each bound from what actually limits a step, the function's
Timeout in template.yaml and the state's Retry and TimeoutSeconds in the ASL, and check the
mapping, the ASL's TimeoutSeconds and the lock lease's settings against them. Changing a function's
timeout, a Retry, the approval wait or MaxCandidates without the limits fails here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from mlstack.sam import load_template
from mlstack_core.settings import RunLockSettings
from tests.helpers import ROOT
from tests.helpers.template import ASL

pytestmark = pytest.mark.unit

TEMPLATE = load_template(ROOT / "template.yaml")
DEFINITION: dict[str, Any] = json.loads((ROOT / ASL).read_text())
LIMITS: dict[str, int] = {
    name: int(value) for name, value in TEMPLATE["Mappings"]["RunTimeLimits"]["Seconds"].items()
}
# Errors the Lambda and ECS services raise in place of a run of the function or task
# (throttling, service faults): an attempt that ends in one costs its backoff, not the function's
# timeout. Any other error (the function's own, Sandbox.Timedout, States.ALL) may end a
# full-length attempt.
SERVICE_ERRORS = frozenset(
    {
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "ECS.AmazonECSException",
        "ECS.ThrottlingException",
        "ECS.ServerException",
    }
)
ECS_TASK = "arn:aws:states:::ecs:runTask.sync"
# The longest a training task may run (TimeoutSecondsPath: MeasureDataset's copy of the stack's
# TrainingTaskTimeoutSeconds, at its MaxValue).
TASK_LIMIT = int(TEMPLATE["Parameters"]["TrainingTaskTimeoutSeconds"]["MaxValue"])
# An SNS publish from the state machine has no timeout of its own; it takes well under a second.
SERVICE_CALL_SECONDS = 60
MINUTE, HOUR = 60, 3600


def _function_timeout(placeholder: str) -> int:
    """``${XFunctionArn}`` → the Timeout of the function it names (or the Globals' default)."""
    machine = TEMPLATE["Resources"]["TrainingStateMachine"]["Properties"]
    target = machine["DefinitionSubstitutions"][placeholder.strip("${}")]
    function = target["Fn::GetAtt"][0] if isinstance(target, dict) else target.split(".")[0]
    properties = TEMPLATE["Resources"][function]["Properties"]
    return int(properties.get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"]))


def _retry_bound(state: dict[str, Any], attempt_seconds: int) -> int:
    """The longest a Task state can take over all its attempts, with the backoff between them."""
    full_attempts, backoff = 1, 0.0
    for retrier in state.get("Retry", []):
        attempts = int(retrier.get("MaxAttempts", 3))
        interval = float(retrier.get("IntervalSeconds", 1))
        rate = float(retrier.get("BackoffRate", 2.0))
        cap = float(retrier.get("MaxDelaySeconds", math.inf))
        backoff += sum(min(interval * rate**i, cap) for i in range(attempts))
        if not set(retrier["ErrorEquals"]) <= SERVICE_ERRORS:
            full_attempts += attempts
    return full_attempts * attempt_seconds + math.ceil(backoff)


def state_bound(state: dict[str, Any], map_items: int, task_limit: int = TASK_LIMIT) -> int:
    """Seconds a state can take; a Map runs ``map_items`` items one after another; a training
    task runs at most ``task_limit``."""
    if state["Type"] == "Map":
        processor = state["ItemProcessor"]
        return map_items * path_bound(processor["States"], processor["StartAt"], map_items)
    if state["Type"] != "Task":
        return 0
    resource = state["Resource"]
    if resource.startswith("${"):
        seconds = _function_timeout(resource)
    elif resource == ECS_TASK:
        assert state["TimeoutSecondsPath"] == "$.compute.task_timeout_seconds"
        seconds = task_limit
    elif resource.endswith(".waitForTaskToken"):
        seconds = int(state["TimeoutSeconds"])
    else:
        seconds = SERVICE_CALL_SECONDS
    return _retry_bound(state, min(seconds, int(state.get("TimeoutSeconds", seconds))))


def _successors(state: dict[str, Any]) -> list[str]:
    following = [state.get("Next"), state.get("Default")]
    following += [choice["Next"] for choice in state.get("Choices", [])]
    following += [catcher["Next"] for catcher in state.get("Catch", [])]
    return [name for name in following if name]


def path_bound(
    states: dict[str, Any],
    start: str,
    map_items: int,
    until: frozenset[str] = frozenset(),
    task_limit: int = TASK_LIMIT,
) -> int:
    """The longest path from ``start`` (the graph has no cycles), ending at a terminal state or
    after a state in ``until``."""

    def longest(name: str) -> int:
        here = state_bound(states[name], map_items, task_limit)
        if name in until:
            return here
        return here + max((longest(n) for n in _successors(states[name])), default=0)

    return longest(start)


def _max_candidates() -> int:
    return int(TEMPLATE["Parameters"]["MaxCandidates"]["MaxValue"])


def _round_up(seconds: int, unit: int) -> int:
    return math.ceil(seconds / unit) * unit


STATES: dict[str, Any] = DEFINITION["States"]
RELEASES = frozenset({"ReleaseRunLock", "ReleaseRunLockWhileWaiting"})


def test_the_approval_wait_is_the_mapping_s() -> None:
    assert STATES["AwaitApproval"]["TimeoutSeconds"] == LIMITS["ApprovalWait"]


def test_the_execution_timeout_is_the_approval_wait_plus_the_longest_training_path() -> None:
    """Before: 612,000 s, the approval wait plus 2 h, which a 40-candidate grid at concurrency 4
    (ten rounds of up to 15 minutes) already exceeds before its version starts to wait: the run
    timed out while a person still had days to answer."""
    # Every step at its limit, one candidate at a time, MaxCandidates at its largest allowed value.
    longest = path_bound(STATES, DEFINITION["StartAt"], _max_candidates())
    training = longest - LIMITS["ApprovalWait"]
    assert LIMITS["LongestTrainingPath"] == _round_up(training, HOUR), training
    assert LIMITS["ExecutionTimeout"] == LIMITS["ApprovalWait"] + LIMITS["LongestTrainingPath"]
    assert DEFINITION["TimeoutSeconds"] == LIMITS["ExecutionTimeout"]


def test_the_lock_lease_covers_each_stretch_until_its_renewal_or_release() -> None:
    """Acquired, the lease covers Preprocess until RenewRunLock (or, if it fails, until the lock
    is released); renewed, it covers the grid's rounds of the per-candidate limit and then the
    steps until the lock is released (lease_for_grid)."""
    renewals = RELEASES | {"RenewRunLock", "RenewRunLockForPreprocessTask"}
    until_grid = path_bound(STATES, "MeasureDataset", 1, until=renewals)
    assert LIMITS["LeaseUntilGridKnown"] == _round_up(until_grid, MINUTE), until_grid
    for mode in ("TrainCandidates", "TrainCandidatesDistributed"):
        processor = STATES[mode]["ItemProcessor"]
        candidate = path_bound(processor["States"], "TrainCandidate", 1)
        assert LIMITS["Candidate"] == _round_up(candidate, MINUTE), candidate
    after_training = path_bound(STATES, "Evaluate", 1, until=RELEASES)
    assert LIMITS["AfterTraining"] == _round_up(after_training, MINUTE), after_training


def test_the_lock_function_gets_the_limits_from_the_mapping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variables = TEMPLATE["Resources"]["RunLockFunction"]["Properties"]["Environment"]["Variables"]
    given = {
        "RUN_LOCK_LEASE_SECONDS": "LeaseUntilGridKnown",
        "RUN_LOCK_CANDIDATE_SECONDS": "Candidate",
        "RUN_LOCK_AFTER_TRAINING_SECONDS": "AfterTraining",
    }
    for variable, part in given.items():
        assert variables[variable] == {"Fn::FindInMap": ["RunTimeLimits", "Seconds", part]}
    # The settings' defaults (a function run without the stack) are the mapping's values too.
    for variable in given:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("RUN_LOCK_TABLE", "locks")
    defaults = RunLockSettings.from_env()
    assert (
        defaults.lease_seconds,
        defaults.candidate_seconds,
        defaults.after_training_seconds,
    ) == tuple(LIMITS[part] for part in given.values())


def test_renewal_sits_between_the_grid_and_the_map() -> None:
    assert STATES["Preprocess"]["Next"] == "RenewRunLock"
    assert STATES["RenewRunLock"]["Next"] == "ChooseMapMode"
    assert STATES["RenewRunLock"]["Parameters"] == {
        "action": "renew",
        "model.$": "$.model",
        "execution_arn.$": "$$.Execution.Id",
        "candidate_count.$": "$.run.candidate_count",
        "max_concurrency.$": "$.run.spec.max_concurrency",
        "candidate_seconds.$": "$.compute.candidate_seconds",
    }


@pytest.mark.parametrize("task_limit", [600, 14400, TASK_LIMIT])
def test_on_fargate_the_lease_covers_each_task_and_the_state_that_collects_it(
    task_limit: int,
) -> None:
    """MeasureDataset gives the lock a training task's limit plus a margin, for the preprocess
    task (until RenewRunLock, or on failure the release) and for each candidate's task (per round
    of the Map): enough for the task at its TimeoutSecondsPath, the collecting state and their
    retries."""
    from mlstack_preprocess.sizing import (
        PREPROCESS_TASK_LEASE_MARGIN_SECONDS,
        TASK_COLLECT_SECONDS,
    )

    renewals = RELEASES | {"RenewRunLock"}
    preprocess = path_bound(STATES, "PreprocessTask", 1, until=renewals, task_limit=task_limit)
    assert preprocess <= task_limit + PREPROCESS_TASK_LEASE_MARGIN_SECONDS, preprocess - task_limit
    for mode in ("TrainCandidates", "TrainCandidatesDistributed"):
        processor = STATES[mode]["ItemProcessor"]
        candidate = path_bound(processor["States"], "TrainCandidateTask", 1, task_limit=task_limit)
        assert candidate <= task_limit + TASK_COLLECT_SECONDS, candidate - task_limit
