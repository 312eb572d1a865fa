"""Typed configuration read from the function's environment.

Settings are read when a handler asks for them, never at import time, so tests and the local cloud
can set the environment after importing the code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class MissingSetting(RuntimeError):
    """A required environment variable is not set for this function."""


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class StackSettings:
    """Resource names every function may use, injected by template.yaml."""

    data_bucket: str
    model_bucket: str
    registry_table: str
    alerts_topic_arn: str
    state_machine_arn: str
    scoring_state_machine_arn: str
    run_lock_lease_seconds: int
    idempotency_table: str

    @classmethod
    def from_env(cls) -> StackSettings:
        return cls(
            data_bucket=os.environ.get("DATA_BUCKET", ""),
            model_bucket=_required("MODEL_BUCKET"),
            registry_table=_required("REGISTRY_TABLE"),
            alerts_topic_arn=os.environ.get("ALERTS_TOPIC_ARN", ""),
            state_machine_arn=os.environ.get("STATE_MACHINE_ARN", ""),
            scoring_state_machine_arn=os.environ.get("SCORING_STATE_MACHINE_ARN", ""),
            # Longer than a run takes from upload to its gate (the lock is released while a
            # version waits for a person, and on every ending of a run by the RunEnded rule), so
            # only a lock whose release was lost expires.
            run_lock_lease_seconds=int(os.environ.get("RUN_LOCK_LEASE_SECONDS", "7500")),
            idempotency_table=os.environ.get("IDEMPOTENCY_TABLE", ""),
        )


@dataclass(frozen=True)
class ServingSettings:
    """Knobs of serving: the prediction function, and the gate where it must match serving."""

    alias_ttl_seconds: float
    max_rows: int
    max_body_bytes: int
    session_cache_size: int
    session_cache_bytes: int
    intra_op_threads: int
    aws_client: str  # "boto3", or "http" for the prediction function's signed HTTPS reads
    # Ground-truth capture (mlstack_core.capture): share of requests recorded for models whose
    # spec turns it on, written at most this often per version (the drift interval).
    capture_sample_rate: float = 0.0
    capture_flush_seconds: float = 300.0

    @classmethod
    def from_env(cls) -> ServingSettings:
        return cls(
            alias_ttl_seconds=float(os.environ.get("ALIAS_TTL_SECONDS", "30")),
            max_rows=int(os.environ.get("MAX_ROWS", "10000")),
            max_body_bytes=int(os.environ.get("MAX_BODY_BYTES", str(5 * 1024 * 1024))),
            session_cache_size=int(os.environ.get("SESSION_CACHE_SIZE", "4")),
            # A forest's session takes about as much memory as its ONNX file.
            session_cache_bytes=int(os.environ.get("SESSION_CACHE_BYTES", str(256 * 2**20))),
            # One thread by default: with two, exact forest ties were broken differently and
            # flipped labels, so the gate and serving must agree on it.
            intra_op_threads=int(os.environ.get("ORT_INTRA_OP_THREADS", "1")),
            aws_client=os.environ.get("MLSTACK_AWS_CLIENT", "boto3"),
            capture_sample_rate=float(os.environ.get("CAPTURE_SAMPLE_RATE", "0")),
            capture_flush_seconds=float(os.environ.get("DRIFT_FLUSH_SECONDS", "300")),
        )


@dataclass(frozen=True)
class GuardSettings:
    """What the stack allows, whatever a spec.json says: the gate's floors and ceilings, which
    models always need a person's approval, and how big an upload may be (stack parameters)."""

    confidence: float
    cross_validate_below_rows: int
    min_improvement: float
    min_label_agreement: float
    max_output_diff: float
    manual_approval_models: frozenset[str]  # "*": every model
    auto_promote_incomparable: bool
    max_upload_bytes: int
    max_rows: int
    max_columns: int
    max_classes: int
    max_candidates: int

    @classmethod
    def from_env(cls) -> GuardSettings:
        listed = os.environ.get("MANUAL_APPROVAL_MODELS", "")
        return cls(
            confidence=float(os.environ.get("GATE_CONFIDENCE", "0.95")),
            cross_validate_below_rows=int(os.environ.get("CROSS_VALIDATE_BELOW_ROWS", "2500")),
            min_improvement=float(os.environ.get("GATE_MIN_IMPROVEMENT", "0")),
            min_label_agreement=float(os.environ.get("GATE_MIN_LABEL_AGREEMENT", "0.99")),
            max_output_diff=float(os.environ.get("GATE_MAX_OUTPUT_DIFF", "0.01")),
            manual_approval_models=frozenset(n.strip() for n in listed.split(",") if n.strip()),
            auto_promote_incomparable=os.environ.get("AUTO_PROMOTE_INCOMPARABLE", "false").lower()
            == "true",
            max_upload_bytes=int(float(os.environ.get("MAX_UPLOAD_MIB", "512")) * 2**20),
            max_rows=int(os.environ.get("MAX_DATASET_ROWS", "2000000")),
            max_columns=int(os.environ.get("MAX_DATASET_COLUMNS", "1000")),
            max_classes=int(os.environ.get("MAX_CLASSES", "200")),
            max_candidates=int(os.environ.get("MAX_CANDIDATES", "100")),
        )

    def requires_manual_approval(self, model: str) -> bool:
        return "*" in self.manual_approval_models or model in self.manual_approval_models


@lru_cache(maxsize=1)
def guard_settings() -> GuardSettings:
    return GuardSettings.from_env()


@dataclass(frozen=True)
class ApprovalSettings:
    """The approval function's table, and whether the uploader may approve their own data."""

    approvals_table: str
    distinct_approver: bool

    @classmethod
    def from_env(cls) -> ApprovalSettings:
        return cls(
            approvals_table=_required("APPROVALS_TABLE"),
            distinct_approver=os.environ.get("APPROVER_MUST_DIFFER", "false").lower() == "true",
        )


def gate_confidence(spec: Mapping[str, Any]) -> float:
    """The confidence the gate's evidence needs: the spec's ``gate_confidence`` when it asks for
    more than the stack's GateConfidence, else the stack's."""
    asked = spec.get("gate_confidence")
    floor = guard_settings().confidence
    return max(float(asked), floor) if asked is not None else floor


@lru_cache(maxsize=1)
def approval_settings() -> ApprovalSettings:
    return ApprovalSettings.from_env()


@lru_cache(maxsize=1)
def stack_settings() -> StackSettings:
    return StackSettings.from_env()


@lru_cache(maxsize=1)
def serving_settings() -> ServingSettings:
    return ServingSettings.from_env()


def forget() -> None:
    """Read every setting again on next use (a changed environment: tests, the local cloud), and
    make the clients made from them again."""
    from mlstack_core import clients

    clients.forget()
    stack_settings.cache_clear()
    serving_settings.cache_clear()
    approval_settings.cache_clear()
    guard_settings.cache_clear()
