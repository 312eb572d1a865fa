"""Typed configuration read from the function's environment: the one module of the shipped code
that reads it.

Settings are read when a handler asks for them, never at import time, so tests and the local cloud
can set the environment after importing the code. Each function declares the settings it needs
(``FunctionSettings``, in its ``app.py``) and checks them at its cold start, its first invocation:
a variable template.yaml gives it that is missing fails there, by name, not at its first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mlstack_core.errors import MissingSetting


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


# The spellings of a boolean setting: template.yaml passes "true"/"false"; the others are what
# Powertools accepts for its own switches (POWERTOOLS_METRICS_DISABLED).
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def flag(name: str, default: bool) -> bool:
    """A boolean setting: one of ``TRUE_WORDS`` or ``FALSE_WORDS`` in any case, ``default`` when
    unset or empty. Anything else is refused by name rather than read as either."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"environment variable {name} must be true or false, not {value[:20]!r}")


@dataclass(frozen=True)
class StackSettings:
    """Resource names every function may use, injected by template.yaml."""

    data_bucket: str
    model_bucket: str
    registry_table: str
    alerts_topic_arn: str
    state_machine_arn: str
    scoring_state_machine_arn: str
    idempotency_table: str
    approval_answers_table: str  # the approval function writes it, Register reads it

    @classmethod
    def from_env(cls) -> StackSettings:
        return cls(
            data_bucket=os.environ.get("DATA_BUCKET", ""),
            model_bucket=_required("MODEL_BUCKET"),
            registry_table=_required("REGISTRY_TABLE"),
            alerts_topic_arn=os.environ.get("ALERTS_TOPIC_ARN", ""),
            state_machine_arn=os.environ.get("STATE_MACHINE_ARN", ""),
            scoring_state_machine_arn=os.environ.get("SCORING_STATE_MACHINE_ARN", ""),
            idempotency_table=os.environ.get("IDEMPOTENCY_TABLE", ""),
            approval_answers_table=os.environ.get("APPROVAL_ANSWERS_TABLE", ""),
        )


@dataclass(frozen=True)
class RunLockSettings:
    """The run lock's table and how long its lease lasts (template.yaml's RunTimeLimits).

    The lease is taken for the steps before the grid is known (``lease_seconds``: Preprocess and
    its retries), then renewed once the grid is known, for as long as the rest of the run can take
    until it frees the lock: ``candidate_seconds`` per round of the Map (candidates / concurrency,
    rounded up) plus ``after_training_seconds``. So the lease outlasts every legitimate run, and
    a lock whose release was lost still expires.
    """

    lock_table: str
    lease_seconds: int
    candidate_seconds: int
    after_training_seconds: int

    @classmethod
    def from_env(cls) -> RunLockSettings:
        return cls(
            lock_table=_required("RUN_LOCK_TABLE"),
            lease_seconds=int(os.environ.get("RUN_LOCK_LEASE_SECONDS", "1020")),
            candidate_seconds=int(os.environ.get("RUN_LOCK_CANDIDATE_SECONDS", "960")),
            after_training_seconds=int(os.environ.get("RUN_LOCK_AFTER_TRAINING_SECONDS", "1380")),
        )


@lru_cache(maxsize=1)
def run_lock_settings() -> RunLockSettings:
    return RunLockSettings.from_env()


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
    # Drift sampling (mlstack_core.drift.DriftRecorder): share of requests counted, at most this
    # many rows of each; the summaries are written every capture_flush_seconds per version.
    drift_sampling: bool = True
    drift_sample_rate: float = 1.0
    drift_max_rows_per_request: int = 100
    # After a failed registry read, the last known aliases are served (or, with none, 503 is
    # answered) for this long before the registry is read again: one slow, failing read per
    # window, not one per request, while the registry is throttled or unreachable.
    alias_error_ttl_seconds: float = 5.0
    # Explanations (mlstack_core.explain): rows per request, and graph rows spent on each row
    # (coalitions times background rows): at least explain_graph_rows, more for wide rows
    # (explain.served.Budget) up to explain_max_graph_rows, what keeps a request of
    # explain_max_rows rows within the function's timeout.
    explain_max_rows: int = 10
    explain_graph_rows: int = 4096
    explain_max_graph_rows: int = 16384

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
            drift_sampling=flag("DRIFT_SAMPLING", True),
            drift_sample_rate=float(os.environ.get("DRIFT_SAMPLE_RATE", "1")),
            drift_max_rows_per_request=int(os.environ.get("DRIFT_MAX_ROWS_PER_REQUEST", "100")),
            alias_error_ttl_seconds=float(os.environ.get("ALIAS_ERROR_TTL_SECONDS", "5")),
            explain_max_rows=int(os.environ.get("EXPLAIN_MAX_ROWS", "10")),
            explain_graph_rows=int(os.environ.get("EXPLAIN_GRAPH_ROWS", "4096")),
            explain_max_graph_rows=int(os.environ.get("EXPLAIN_MAX_GRAPH_ROWS", "16384")),
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
    min_threshold: float | None  # the least threshold a spec may set; None: no floor
    manual_approval_models: frozenset[str]  # "*": every model
    auto_promote_incomparable: bool
    max_upload_bytes: int
    max_rows: int
    max_columns: int
    max_classes: int
    max_candidates: int
    # What an imported ONNX file may be (mlstack_admit.inspection).
    max_import_bytes: int = 100 * 2**20
    max_import_nodes: int = 20_000

    @classmethod
    def from_env(cls) -> GuardSettings:
        listed = os.environ.get("MANUAL_APPROVAL_MODELS", "")
        return cls(
            confidence=float(os.environ.get("GATE_CONFIDENCE", "0.95")),
            cross_validate_below_rows=int(os.environ.get("CROSS_VALIDATE_BELOW_ROWS", "2500")),
            min_improvement=float(os.environ.get("GATE_MIN_IMPROVEMENT", "0")),
            min_label_agreement=float(os.environ.get("GATE_MIN_LABEL_AGREEMENT", "0.99")),
            max_output_diff=float(os.environ.get("GATE_MAX_OUTPUT_DIFF", "0.01")),
            min_threshold=_optional_number(os.environ.get("GATE_MIN_THRESHOLD", "")),
            manual_approval_models=frozenset(n.strip() for n in listed.split(",") if n.strip()),
            auto_promote_incomparable=flag("AUTO_PROMOTE_INCOMPARABLE", False),
            max_upload_bytes=int(float(os.environ.get("MAX_UPLOAD_MIB", "4096")) * 2**20),
            max_rows=int(os.environ.get("MAX_DATASET_ROWS", "50000000")),
            max_columns=int(os.environ.get("MAX_DATASET_COLUMNS", "1000")),
            max_classes=int(os.environ.get("MAX_CLASSES", "200")),
            max_candidates=int(os.environ.get("MAX_CANDIDATES", "100")),
            max_import_bytes=int(float(os.environ.get("MAX_IMPORT_MIB", "100")) * 2**20),
            max_import_nodes=int(os.environ.get("MAX_IMPORT_NODES", "20000")),
        )

    def requires_manual_approval(self, model: str) -> bool:
        return "*" in self.manual_approval_models or model in self.manual_approval_models


def _optional_number(text: str) -> float | None:
    """A number, or None for an empty parameter (the stack sets no such limit)."""
    return float(text) if text.strip() else None


@lru_cache(maxsize=1)
def guard_settings() -> GuardSettings:
    return GuardSettings.from_env()


@dataclass(frozen=True)
class TrainingComputeSettings:
    """Where a run trains (stack parameters): a CSV above ``large_dataset_threshold_mib``, or one
    whose estimated training memory is more than the Train function has, trains in ECS tasks on
    Fargate, each no larger than the maxima, stopped after ``task_timeout_seconds``; the tasks'
    network (the stack's own VPC unless the parameters name subnets and security groups)."""

    large_dataset_threshold_mib: int
    train_function_memory_mib: int
    task_max_cpu: int
    task_max_memory_mib: int
    task_timeout_seconds: int
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    assign_public_ip: str

    @classmethod
    def from_env(cls) -> TrainingComputeSettings:
        return cls(
            large_dataset_threshold_mib=int(os.environ.get("LARGE_DATASET_THRESHOLD_MIB", "256")),
            train_function_memory_mib=int(os.environ.get("TRAIN_FUNCTION_MEMORY_MIB", "3008")),
            task_max_cpu=int(os.environ.get("TRAINING_TASK_MAX_CPU", "4096")),
            task_max_memory_mib=int(os.environ.get("TRAINING_TASK_MAX_MEMORY_MIB", "30720")),
            task_timeout_seconds=int(os.environ.get("TRAINING_TASK_TIMEOUT_SECONDS", "14400")),
            subnet_ids=_names(os.environ.get("TRAINING_SUBNET_IDS", "")),
            security_group_ids=_names(os.environ.get("TRAINING_SECURITY_GROUP_IDS", "")),
            assign_public_ip=os.environ.get("TRAINING_ASSIGN_PUBLIC_IP", "ENABLED"),
        )


def _names(text: str) -> tuple[str, ...]:
    """A comma-joined list parameter (CloudFormation's ``!Join``), without empty entries."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@lru_cache(maxsize=1)
def training_compute_settings() -> TrainingComputeSettings:
    return TrainingComputeSettings.from_env()


@dataclass(frozen=True)
class ApprovalSettings:
    """The approval function's table, and whether the uploader may approve their own data."""

    approvals_table: str
    distinct_approver: bool

    @classmethod
    def from_env(cls) -> ApprovalSettings:
        return cls(
            approvals_table=_required("APPROVALS_TABLE"),
            distinct_approver=flag("APPROVER_MUST_DIFFER", False),
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


@dataclass(frozen=True)
class PowertoolsSettings:
    """Powertools' own variables (template.yaml), for the code that reads them besides
    Powertools: the prediction path's metric writer (mlstack_core.observability.requests)."""

    service_name: str  # "" when unset
    metrics_namespace: str
    metrics_disabled: bool

    @classmethod
    def from_env(cls) -> PowertoolsSettings:
        return cls(
            service_name=os.environ.get("POWERTOOLS_SERVICE_NAME", ""),
            metrics_namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", ""),
            metrics_disabled=flag("POWERTOOLS_METRICS_DISABLED", False),
        )


@dataclass(frozen=True)
class AwsEnvironment:
    """What the Lambda runtime (or the local cloud) gives the function for its AWS calls: the
    role's credentials, the region, endpoint overrides. boto3 reads them itself; the prediction
    function's signed HTTPS reads (mlstack_predict.awshttp) read them here. Read on each call,
    never cached: credentials are secrets, and they are the runtime's, not the stack's."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    region: str
    endpoint_url: str  # every service's, unless its own is set
    service_endpoint_urls: dict[str, str]  # "s3"/"dynamodb" -> AWS_ENDPOINT_URL_<SERVICE>

    @classmethod
    def from_env(cls) -> AwsEnvironment:
        return cls(
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", ""),
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            session_token=os.environ.get("AWS_SESSION_TOKEN", ""),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", ""),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL", ""),
            service_endpoint_urls={
                service: os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}", "")
                for service in ("s3", "dynamodb")
            },
        )


@dataclass(frozen=True)
class FunctionSettings:
    """The settings one function needs, as template.yaml gives them to it.

    ``required``: the variables it cannot work without beyond the stack's buckets and table
    (which ``StackSettings`` always requires), e.g. the topic of a function that publishes.
    ``reads``: the typed settings it uses (``stack_settings``, ``guard_settings``, ...), read by
    ``check`` so that a malformed number or flag fails at the cold start too.
    """

    function: str
    required: tuple[str, ...] = ()
    reads: tuple[Callable[[], object], ...] = (stack_settings,)

    def check(self) -> None:
        """At the function's cold start (its handler's first line): MissingSetting naming the
        first missing variable and the function. Once per environment (``forget``)."""
        if self.function in _checked:
            return
        try:
            for name in self.required:
                _required(name)
            for read in self.reads:
                read()
        except MissingSetting as missing:
            raise MissingSetting(f"{missing} for the {self.function} function") from None
        _checked.add(self.function)


# The functions whose settings were checked in this environment.
_checked: set[str] = set()


def forget() -> None:
    """Read every setting again on next use (a changed environment: tests, the local cloud), and
    make the clients made from them again."""
    from mlstack_core import clients

    _checked.clear()
    clients.forget()
    stack_settings.cache_clear()
    serving_settings.cache_clear()
    approval_settings.cache_clear()
    guard_settings.cache_clear()
    run_lock_settings.cache_clear()
    training_compute_settings.cache_clear()
