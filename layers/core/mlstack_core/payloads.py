"""What the training state machine passes between its steps, typed: one place to read each step's
input and output (docs/internals.md, "Execution state", describes every field), checked by mypy
where the handlers take and return them.

The execution state keeps ``model`` and ``dataset`` at the top level and adds one key per step
(``run``, ``trained``, ``evaluation``, ``registration``), so a Catch anywhere still sees which model
and file failed. Step Functions carries at most 256 KB per state: what grows with the number of
candidates or columns travels as an S3 key (Train's ``result_key``, Evaluate's ``report_key``).
The documents they carry (the feature schema, the parts of the evaluation a version keeps) are in
``mlstack_core.documents``; the spec and a candidate's cross-validation report stay
``dict[str, Any]`` here and are described where they are made.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from mlstack_core.documents import (
    Artifact,
    Baseline,
    Champion,
    Comparison,
    DatasetRef,
    DataWarning,
    FeatureSchema,
    ImportLineage,
    Intervals,
    Rehearsal,
    Scores,
    Splits,
)
from mlstack_core.evidence import EvidenceDocument
from mlstack_core.tasks import Task


class ExecutionInput(TypedDict):
    """What Trigger starts an execution with; also Preprocess's input.

    An import (``mlstack import``) starts with ``source`` "import" and its manifest as the
    dataset; InspectImport's output is PrepareImport's ``admitted``."""

    model: str
    dataset: DatasetRef
    execution_arn: NotRequired[str]
    execution_name: NotRequired[str]
    # MeasureDataset's event says ``"action": "measure"``; Preprocess's has none.
    action: NotRequired[Literal["measure"]]
    source: NotRequired[Literal["import"]]
    admitted: NotRequired[Admitted]


class Admitted(TypedDict):
    """InspectImport's output (``$.admitted``): what PrepareImport prepares the run from."""

    spec: dict[str, Any]  # the spec document, the kinds the graph reads in columns.types
    dataset: DatasetRef  # the holdout, or its rows followed by the training sample's
    holdout_rows: int  # the dataset's first rows are the holdout
    numeric: list[str]  # the columns of each of the graph's inputs, in order
    categorical: list[str]
    classes: list[Any] | None  # a classifier's, in its probabilities' order
    candidate: dict[str, Any]  # the Map's item: the stored candidate's result key, version, hash
    lineage: ImportLineage


class TaskNetwork(TypedDict):
    """A Fargate task's AwsvpcConfiguration, as RunTask takes it."""

    Subnets: list[str]
    SecurityGroups: list[str]
    AssignPublicIp: Literal["ENABLED", "DISABLED"]


class Compute(TypedDict):
    """MeasureDataset's output (``$.compute``): where this run trains, and why.

    ``path`` "lambda" is today's functions; "fargate" runs Preprocess and each candidate's Train
    as ECS tasks of ``cpu`` units and ``memory`` MiB (strings, as RunTask's overrides take them),
    stopped after ``task_timeout_seconds``. The lock's lease covers the longest step either way.
    """

    path: Literal["lambda", "fargate"]
    reason: str
    dataset_bytes: int
    estimated_rows: int
    columns: int
    estimated_train_mib: int
    cpu: str
    memory: str
    task_timeout_seconds: int
    preprocess_lease_seconds: int
    candidate_seconds: int | None
    preprocess_command: list[str]
    network: TaskNetwork


class Candidate(TypedDict):
    candidate_id: str
    family: str
    params: dict[str, Any]
    grid: NotRequired[dict[str, list[Any]]]
    cv: NotRequired[int]


class Run(TypedDict):
    """Preprocess's output (``$.run``): everything later steps need about this training run."""

    model: str
    run_id: str
    execution_arn: str | None
    task: Task
    spec: dict[str, Any]  # mlstack_core.spec: spec.json with every default filled in
    dataset: DatasetRef
    schema: FeatureSchema
    splits: Splits
    warnings: list[DataWarning]
    candidates: list[Candidate]
    candidate_count: NotRequired[int]
    candidates_key: NotRequired[str]  # Distributed Map: the candidate list in S3
    feature_baseline_key: NotRequired[str | None]
    background_split_key: NotRequired[str | None]
    imported: NotRequired[ImportLineage]  # a model trained elsewhere (``mlstack import``)


class TrainInput(TypedDict):
    """One Map iteration."""

    run: Run
    candidate: Candidate


class TaskOutcome(TypedDict, total=False):
    """How a training task's state ended: ``task_arn`` when the task stopped with exit code 0,
    Step Functions' ``Error`` and ``Cause`` (the task's description) when it did not."""

    task_arn: str
    Error: str
    Cause: str


class TaskResultInput(TypedDict):
    """CollectPreparedRun's and CollectTrainedCandidate's input."""

    step: Literal["preprocess", "train"]
    model: str
    run_id: str
    task: TaskOutcome
    candidate: NotRequired[Candidate]


class CollectedCandidate(TypedDict):
    """What the Map keeps of a trained candidate, as TrainCandidate's ResultSelector keeps it."""

    candidate_id: str
    family: str
    status: Literal["trained", "failed"]
    fit_seconds: float | None
    result_key: str
    result_version_id: str | None
    result_sha256: str


class TrainedEntry(TypedDict):
    """Train's output (one element of ``$.trained``)."""

    candidate_id: str
    family: str
    params: dict[str, Any]
    status: Literal["trained", "failed"]
    cv: NotRequired[dict[str, Any] | None]
    error: NotRequired[str | None]
    warnings: NotRequired[list[str]]
    onnx_key: NotRequired[str | None]
    onnx_version_id: NotRequired[str | None]
    onnx_sha256: NotRequired[str]
    sklearn_key: NotRequired[str | None]
    sklearn_holdout_key: NotRequired[str | None]
    fit_seconds: NotRequired[float | None]
    cross_validation_seconds: NotRequired[float]
    export_seconds: NotRequired[float | None]
    onnx_bytes: NotRequired[int | None]
    library_versions: NotRequired[dict[str, str]]
    feature_importance: NotRequired[dict[str, Any] | None]
    explained_importance: NotRequired[dict[str, Any] | None]
    imported: NotRequired[ImportLineage]
    # Where Train stored this whole entry (``storage_keys.candidate_result_key``), which Evaluate
    # reads: the Map's state carries only the fields the state machine selects and these.
    result_key: NotRequired[str]
    result_version_id: NotRequired[str | None]
    result_sha256: NotRequired[str]


class EvaluateInput(TypedDict):
    """``trained`` is the inline Map's list, or the Distributed Map's result reference."""

    run: Run
    trained: list[TrainedEntry] | dict[str, Any]


class ScoredCandidate(TrainedEntry):
    """A trained entry as Evaluate scored it: its metrics, ONNX/scikit-learn parity, and why it
    cannot ship (``excluded``, None when it can)."""

    metrics: Scores | None
    parity: dict[str, Any] | None
    excluded: str | None
    intervals: NotRequired[Intervals]


Decision = Literal["promote", "reject"]


class Evaluation(TypedDict):
    """The whole evaluation, as Evaluate stores it at ``report_key`` (see ``EvaluationReport``);
    the state carries its ``EvaluationSummary``."""

    decision: Decision
    reasons: list[str]
    metric: str
    greater_is_better: bool
    best: ScoredCandidate  # the winner
    candidates: list[ScoredCandidate]
    champion: Champion | None  # production on the same rows; None when there is none
    baseline: Baseline
    comparison: Comparison
    evidence: EvidenceDocument | None  # how sure the comparison is (mlstack_core.evidence)
    judged_on: Literal["holdout", "cross_validation"]
    rehearsal: Rehearsal
    requires_approval: bool  # promote, but production was not comparable: a person decides
    # The named outcome of a rejection: NotBetterThanBaseline, NotBetterThanProduction or
    # ServingRehearsalFailed.
    error: NotRequired[str]
    holdout_rows: int
    report_key: str
    predictions_key: NotRequired[str]
    drift_baseline_key: NotRequired[str]
    background_key: NotRequired[str]


class EvaluationSummary(TypedDict):
    """Evaluate's output (``$.evaluation``): what the Gate and the progress view read, bounded
    whatever the number of candidates and columns. The whole evaluation (every candidate with its
    cross-validation report) is the report at ``report_key``, checked against ``report_sha256``
    by whoever reads it (Register)."""

    decision: Decision
    reasons: list[str]
    metric: str
    greater_is_better: bool
    # The winner without what grows with the grid and the columns (its cross-validation report,
    # feature importance, warnings): those are in the report.
    best: ScoredCandidate
    candidate_count: int
    champion: Champion | None
    baseline: Baseline
    comparison: Comparison
    evidence: EvidenceDocument | None
    judged_on: Literal["holdout", "cross_validation"]
    rehearsal: Rehearsal
    requires_approval: bool
    error: NotRequired[str]
    holdout_rows: int
    report_key: str
    report_version_id: str | None
    report_sha256: str
    predictions_key: NotRequired[str]
    drift_baseline_key: NotRequired[str]
    background_key: NotRequired[str]


class EvaluationReport(Evaluation):
    """The evaluation as Evaluate stores it (``layout.evaluation_key``), which Register copies
    next to the version and the card and ``mlstack report`` read."""

    run_id: str
    model: str
    metrics_computed: list[str]


Action = Literal["promote", "reject", "request_approval", "promote_approved", "reject_pending"]


class Approval(TypedDict):
    """A person's answer, as the approval function sends it to the paused run (``$.approval``):
    ``actor`` is the caller's IAM ARN from API Gateway's request context."""

    approved: bool
    version: int
    actor: str
    reason: str


class RegisterInput(TypedDict):
    action: Action
    run: Run
    evaluation: EvaluationSummary
    execution_started: NotRequired[str | None]
    # The version registered before the pause ($.pending), and the answer to it ($.approval).
    pending: NotRequired[Registration]
    approval: NotRequired[Approval | None]
    # The idempotency key ($$.Execution.Id, $$.State.Name): one effect per execution and state.
    execution_arn: str
    step: str


class Registration(TypedDict):
    """Register's output (``$.registration``)."""

    model: str
    version: int
    status: str
    promoted: NotRequired[bool]
    previous: NotRequired[int | None]
    reason: NotRequired[str]
    error: NotRequired[str]
    advice: NotRequired[str]
    production: NotRequired[int | None]
    artifact: NotRequired[Artifact]
    actor: NotRequired[str]


class CardInput(TypedDict):
    """The WriteCard states' payload: the version whose model card Register writes, after the
    registry action and outside it (the card is repeatable; the action is done once)."""

    action: Literal["write_card"]
    model: str
    version: int
    execution_arn: NotRequired[str]  # the run's correlation id in the logs


class CardWritten(TypedDict):
    """WriteCard's output: the key of ``card.md``, or None when no card was written."""

    model: str
    version: int
    card: str | None
