"""The documents the stack stores and serves from, typed: the feature schema Preprocess writes,
the registry's version document, and the parts of Evaluate's result that travel into it.

One place to read what each key means, checked by mypy where the code reads and writes them, so a
misspelt key is a type error rather than a silent ``None``. Standard library only: the prediction
function imports this module on its cold path. JSON read from S3 or DynamoDB is cast to these
types once, where it is loaded (``mlstack_core.registry``, the CLI's views); nothing here checks
at run time.

The execution state that carries them between the pipeline's steps is in
``mlstack_core.payloads``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from mlstack_core.tasks import Task

if TYPE_CHECKING:
    from mlstack_core.evidence import EvidenceDocument, IntervalDocument

# A metric's name → its value (None: undefined on these rows, e.g. one class only).
Scores = dict[str, float | None]
# A metric's name → its interval (mlstack_core.evidence).
Intervals = dict[str, "IntervalDocument"]


class DataWarning(TypedDict):
    """An advisory finding about the data or the run (``UnknownColumn``, ``ConstantColumn``,
    ``SchemaHistoryUnavailable``, ...): shown by the run's output, the registry view and the
    card. ``column`` is None when it is about no one column."""

    code: str
    column: str | None
    message: str


class Feature(TypedDict):
    """One feature column as ``mlstack_core.kinds.inference`` read it, with why."""

    name: str
    kind: Literal["numeric", "categorical", "datetime", "text"]
    reason: str  # in words; may quote a cell of the training data
    # categorical: the categories of the training rows (at most MAX_SCHEMA_CATEGORIES)
    categories: NotRequired[list[str]]
    n_categories: NotRequired[int]
    categories_truncated: NotRequired[bool]
    # datetime: the format its values read as, the parts the graph takes, the range covered
    format: NotRequired[str]
    parts: NotRequired[list[str]]
    first: NotRequired[str | None]
    last: NotRequired[str | None]
    # text: the vocabulary's size and the word n-grams
    max_terms: NotRequired[int]
    ngrams: NotRequired[int]


class Identifier(TypedDict):
    """A column read as an identifier: no feature, but a request may carry it."""

    name: str
    kind: Literal["identifier"]
    reason: str


class FeatureSchema(TypedDict):
    """What Preprocess writes (``mlstack_core.tabular.prepare``) and serving builds a version's
    inputs and outputs from (``mlstack_core.contract.FeatureLayout``)."""

    target: str
    task: Task
    features: list[Feature]  # in file order; the kind lists below follow it
    numeric: list[str]
    categorical: list[str]
    datetime: list[str]
    text: list[str]
    label_type: str  # "str", "int" or "float": how labels are typed in answers
    identifiers: NotRequired[list[Identifier]]
    classes: NotRequired[list[Any]]  # classification: the labels, as label_type
    kept: NotRequired[list[str]]  # passthrough columns carried in the split files only


class Artifact(TypedDict):
    """A version's ONNX file in the model bucket, and the hash every reader checks it against."""

    bucket: str
    key: str
    version_id: str | None
    sha256: str
    bytes: int


class Champion(TypedDict):
    """Production as Evaluate scored it on this run's rows, or why it could not."""

    version: int
    metrics: Scores | None
    comparable: bool
    reason: str | None
    family: NotRequired[str | None]
    intervals: NotRequired[Intervals]


class Baseline(TypedDict):
    """The trivial model (``mlstack_evaluate.judges``): what any candidate must beat."""

    strategy: str
    metrics: Scores
    intervals: NotRequired[Intervals]


class Comparison(TypedDict, total=False):
    """The gate's figures: the best candidate's metric against production's or the baseline's.
    Empty when the metric is undefined on the holdout."""

    against: Literal["champion", "baseline"]
    value: float
    reference: float | None
    improvement: float | None
    interval: IntervalDocument | None


class Timings(TypedDict, total=False):
    fit_seconds: float | None
    export_seconds: float | None
    run_seconds_before_register: float | None


class ImportLineage(TypedDict):
    """Where an imported version came from, as its manifest and the upload's event say."""

    source: str  # "onnx", "scikit-learn", "lightgbm" or "xgboost"
    file_name: str
    file_sha256: str  # of the file the user named (a pickle never leaves their machine)
    onnx_sha256: str  # of the ONNX file uploaded
    libraries: dict[str, str]  # what fitted and converted it
    uploaded_by: str  # the S3 event's requester, else the identity the CLI recorded
    manifest_key: str
    manifest_version_id: str | None
    training_sample: bool


class VersionDocument(TypedDict, total=False):
    """A registry version (``mlstack_core.registry``): everything needed to explain, reproduce
    and serve it. Register writes it (``mlstack_register.register.version_document``); the
    registry adds ``model``, ``version``, ``status`` and ``created_at``, and each status change
    its ``status_*`` fields. Every key is optional for readers: documents written by older
    versions of the stack lack the newer ones."""

    model: str
    version: int
    status: str  # mlstack_core.registry_keys.STATUS_*
    created_at: str
    status_reason: str
    status_changed_at: str
    status_changed_by: str
    status_changed_in: str  # the execution that made the change (set_status with execution_arn)
    # what it is
    family: str
    candidate_id: str
    params: dict[str, Any]
    cv: dict[str, Any] | None
    task: Task
    schema: FeatureSchema
    classes: list[Any] | None
    artifact: Artifact
    # how well it did, and why it was (not) promoted
    metric: str
    metrics: Scores
    intervals: Intervals | None
    evidence: EvidenceDocument | None
    parity: dict[str, Any]
    rehearsal: Rehearsal | None
    champion: Champion | None
    baseline: Baseline | None
    decision_reasons: list[str]
    evaluation_key: str | None
    feature_importance: dict[str, Any] | None
    # Every family's: mean absolute contribution on holdout rows (mlstack_core.explain).
    explained_importance: dict[str, Any] | None
    # where it came from
    dataset: DatasetRef
    splits: Splits
    warnings: list[DataWarning]
    spec: dict[str, Any]  # mlstack_core.spec: spec.json with every default filled in
    run_id: str
    execution_arn: str | None
    library_versions: dict[str, str]
    imported: ImportLineage | None  # a model trained elsewhere (``mlstack import``)
    timings: Timings
    # what monitoring reads (mlstack_core.drift, the Monitor function)
    files: dict[str, str]  # what Register copied next to it: name (layout.VERSION_FILES) → key
    drift_baseline: dict[str, Any] | None


class HistoryEntry(TypedDict):
    """One change in a model's registry history (``Registry.history``), oldest first: a version's
    status, a production alias move, or a challenger set or cleared."""

    kind: Literal["status", "alias", "challenger"]
    version: int | None  # None: a challenger cleared
    actor: str
    reason: str
    model: str
    at: str
    status: NotRequired[str]  # kind "status"
    alias: NotRequired[str]  # kinds "alias" and "challenger"
    previous: NotRequired[int | None]
    rollback: NotRequired[bool]  # kind "alias": a rollback, undone when replayed
    share: NotRequired[float | None]  # a canary's share of requests
    execution_arn: NotRequired[str]  # the run whose step made the change, when one did


class AliasEntry(TypedDict):
    """One alias of a model as the serving path reads it (``Registry.aliases``)."""

    version: int
    share: NotRequired[float]  # the canary's share of requests


class DatasetRef(TypedDict):
    """The uploaded CSV: one object version. Preprocess adds the fingerprint and counts."""

    bucket: str
    key: str
    version_id: str | None
    etag: NotRequired[str]
    size: NotRequired[int]
    sha256: NotRequired[str]
    bytes: NotRequired[int]
    rows: NotRequired[int]
    columns: NotRequired[int]
    requester: NotRequired[str]  # who wrote the object, as the S3 event says


class Splits(TypedDict):
    """The split files: each split as CSV (``*_key``) and as model-input arrays (``*_inputs_key``,
    mlstack_core.split_inputs). Judged by cross-validation (mlstack_core.folds), both splits hold
    every row and ``folds_key`` the fold assignment."""

    bucket: str
    train_key: str
    holdout_key: str
    train_inputs_key: str
    holdout_inputs_key: str
    train_rows: int
    holdout_rows: int
    columns: list[str]
    judged_on: NotRequired[Literal["holdout", "cross_validation"]]
    folds_key: NotRequired[str]
    folds: NotRequired[int]
    repeats: NotRequired[int]


class Rehearsal(TypedDict):
    """The serving rehearsal (mlstack_core.contract.rehearsal)."""

    passed: bool
    requests: NotRequired[list[dict[str, Any]]]
    max_abs_diff: NotRequired[float]
    error: NotRequired[str]
    reason: NotRequired[str]
