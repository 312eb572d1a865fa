"""The stack's errors: one family, rooted at ``MlstackError``, for every error it raises on purpose.

Each class knows three things about itself:

- its name: Step Functions reports a Lambda failure under the exception's class name, so each
  class name is a public error code that shows up in the execution history, the alert and the
  registry (a state machine's Catch and Retry match it: never rename one);
- ``http_status``: the status an API answers with when the error ends a request, or None when it
  is not a request's answer (the API then answers 500 without saying more);
- ``exit_code``: what ``mlstack`` exits with when the error ends a command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

# A message may quote the user's data (a cell, a column name), and it travels in the run's state
# (Catch puts it under $.error), which Step Functions caps at 256 KB: it is cut to this length.
MAX_MESSAGE_CHARS = 4000
# Error details are capped so a 10,000-row request full of mistakes still gets a small response.
MAX_DETAILS: Final = 20

# ``mlstack``'s exit codes, one per kind of ending (README "Exit codes"; ``mlstack --help``):
EXIT_OK: Final = 0
# the command ran and the training run or batch job it followed ended FAILED;
EXIT_RUN_FAILED: Final = 1
# the command as given cannot run (argparse's own code: a missing argument, no such file, bad JSON);
EXIT_USAGE: Final = 2
# the stack refused it (no such model or version, a version it does not serve, a move it forbids,
# a conflicting write, a request it rejects);
EXIT_REFUSED: Final = 3
# the stack cannot be reached (no region or credentials, nothing at the endpoint, no such stack).
EXIT_UNREACHABLE: Final = 4


class MlstackError(Exception):
    """The root of every error the stack raises on purpose."""

    http_status: ClassVar[int | None] = None
    exit_code: ClassVar[int] = EXIT_REFUSED


class PipelineError(MlstackError):
    """Base class of every error a pipeline step raises on purpose."""

    def __init__(self, message: str = "") -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[: MAX_MESSAGE_CHARS - 40]}… ({len(message):,} characters in all)"
        super().__init__(message)


class StepEventInvalid(PipelineError):
    """A step's event lacks what its action needs, or contradicts it: the state machine passed the
    wrong state, which no data can cause."""


class IdempotencyKeyMissing(StepEventInvalid):
    """The event lacks ``execution_arn`` and ``step``: the state machine must pass them."""


class SpecError(PipelineError):
    """datasets/<model>/spec.json is missing, not JSON, or breaks the schema."""


class DatasetError(PipelineError):
    """Base class of problems with the uploaded CSV."""


class EmptyDataset(DatasetError):
    """The file has no bytes or no header."""


class HeaderOnly(DatasetError):
    """The file has a header but no data rows."""


class TargetColumnMissing(DatasetError):
    """The spec's target column is not in the header."""


class TargetAllMissing(DatasetError):
    """Every value of the target column is missing."""


class SingleClass(DatasetError):
    """A classification target has only one class."""


class TooFewRowsPerClass(DatasetError):
    """A class has too few rows to appear on both sides of the split."""


class UnparseableNumber(DatasetError):
    """A column declared or inferred numeric holds a value that is not a number."""


class ColumnAllMissing(DatasetError):
    """A feature column has no values at all."""


class NotUtf8(DatasetError):
    """The file is not valid UTF-8."""


class WrongDelimiter(DatasetError):
    """The file uses another delimiter than the one the spec expects."""


class DuplicateColumns(DatasetError):
    """Two header cells have the same name."""


class RaggedRows(DatasetError):
    """A row has a different number of cells than the header."""


class NoViableCandidate(PipelineError):
    """Every candidate failed to train, export or pass the parity check."""


class NotBetterThanBaseline(PipelineError):
    """A model's first version is not better than the trivial baseline beyond the holdout's
    noise (mlstack_core.evidence): nothing is promoted. The run ends Rejected with this name."""


class NotBetterThanProduction(PipelineError):
    """The challenger is not better than production beyond the holdout's noise: production
    stays. The run ends Rejected with this name."""


class ChampionChanged(PipelineError):
    """Production moved while this run was evaluating; promoting would overwrite it."""


class ModelNotFound(MlstackError):
    """No such model or version in the registry."""

    http_status = 404


# Added with spec.py / tabular.py -----------------------------------------------------------------


class MalformedCsv(DatasetError):
    """The csv module cannot read the file (NUL bytes, a cell over the field limit, ...)."""


class BlankColumnName(DatasetError):
    """A header cell is empty (often an unnamed index column written by pandas)."""


class NoFeatureColumns(DatasetError):
    """After dropping the target and spec.columns.drop, no feature column is left."""


class TooFewRows(DatasetError):
    """Too few usable rows to hold out a meaningful evaluation set."""


class ModelBusy(PipelineError):
    """Another run of the same model holds the run lock; the state machine retries (queues)."""


class RunLockLost(PipelineError):
    """The run's lock lease ran out before RenewRunLock and another run of the model took the
    lock over: this run stops rather than train beside it."""


class ServingRehearsalFailed(PipelineError):
    """The chosen model, served through the serving contract as JSON requests, did not answer
    what the gate scored: it would fail or answer differently in production."""


class ArtifactTampered(PipelineError):
    """A model file is not the one that was trained and evaluated: its bytes do not match the
    recorded sha256, or its key was written again after the evaluation."""


class ArtifactHashMissing(ArtifactTampered):
    """A model file has no recorded sha256 to check it against: a trained entry or a version
    document without its hash was forged or damaged (Train and Register record one for every
    file they write), so the file is not read as the one that was evaluated."""


class ApprovalForAnotherVersion(PipelineError):
    """The answer that resumed a paused run names another version than the one it waits for."""


class ApprovalNotRecorded(PipelineError):
    """The answer that resumed a paused run is not one the approval function recorded for this
    run's version (a task token used directly with ``states:SendTaskSuccess``), or it says
    otherwise than the record: nothing is promoted or rejected on its word."""


class SpecOutsideStackLimits(SpecError):
    """spec.json asks for a gate looser than the stack allows (GateMinImprovement,
    GateMinLabelAgreement, GateMaxOutputDiff, GateMinThreshold): the uploader does not set the
    gate."""


class ForeignDataset(PipelineError):
    """The run was started for an object that is not a dataset of this stack: another bucket, a
    key outside datasets/<model>/, or a model name the stack does not accept."""


class DatasetTooLarge(DatasetError):
    """The uploaded file is larger than MaxUploadMiB."""


class TooManyRows(DatasetError):
    """The table has more rows than MaxDatasetRows."""


class TooManyColumns(DatasetError):
    """The table has more columns than MaxDatasetColumns."""


class TooManyClasses(DatasetError):
    """A classification target has more classes than MaxClasses."""


class RunStateTooLarge(DatasetError):
    """What the run carries between steps (schema, column names, categories, warnings) is too big
    for Step Functions' 256 KB state: the run would fail where no Catch reaches."""


class DatasetTooLargeForStack(PipelineError):
    """Training this table needs more memory than the largest training task the stack allows
    (TrainingTaskMaxMemoryMiB): MeasureDataset refuses it before anything is read."""


class ComputeOutsideStackLimits(SpecError):
    """spec.json asks for a training task larger than the stack allows (TrainingTaskMaxCpu,
    TrainingTaskMaxMemoryMiB): the uploader does not size the stack's bill."""


class TrainingTaskFailed(PipelineError):
    """A training task on Fargate stopped with a failure that names no error of its own (it could
    not start, or it crashed before writing one)."""


class TrainingTaskOutOfMemory(TrainingTaskFailed):
    """A training task on Fargate ran out of the memory it was given and was stopped."""


class TrainingTaskStopped(TrainingTaskFailed):
    """A training task on Fargate was stopped before it finished (by a person, by ECS, or by the
    state machine at TrainingTaskTimeoutSeconds)."""


class TrainingTaskTimedOut(TrainingTaskStopped):
    """A training task on Fargate ran longer than TrainingTaskTimeoutSeconds and was stopped."""


class UnreadableDates(DatasetError):
    """A column declared datetime has no value that reads as a date in any format, or its dates
    read both day-first and month-first and spec.columns.date_formats does not say which."""


# Batch scoring (functions/score) -----------------------------------------------------------------


class ImportRefused(PipelineError):
    """A model brought with ``mlstack import`` cannot be admitted as it is: the run fails by this
    name before anything loads the file into a serving runtime, and production stays as it was."""


class ImportedModelUnreadable(ImportRefused):
    """The uploaded file is not an ONNX model (its bytes do not parse, or it has no graph)."""


class ImportedModelTooLarge(ImportRefused):
    """The ONNX file has more bytes or nodes than the stack allows (MaxImportMiB and
    MaxImportNodes)."""


class ExternalDataRefused(ImportRefused):
    """The ONNX file points at tensor data outside itself; the stack serves self-contained files."""


class CustomOperatorRefused(ImportRefused):
    """The ONNX file uses an operator domain the serving runtime does not ship."""


class OpsetUnsupported(ImportRefused):
    """The ONNX file needs an IR or opset version newer than the serving runtime loads."""


class ImportContractMismatch(ImportRefused):
    """The ONNX graph's inputs or outputs do not match the holdout's columns, the kinds the stack
    infers for them, or the answers the stack serves; the message names each difference."""


class HeaderLacksFeature(PipelineError):
    """The batch file's header lacks a column the version reads."""


class VersionNotServed(PipelineError):
    """A version named by a pinned request or batch job, or for a canary or shadow, that the rule
    in ``mlstack_core.servable`` does not serve (never approved, or Archived and not aliased): the
    API answers 404, the scoring job fails by this name, and a refused command exits
    ``EXIT_REFUSED``."""

    http_status = 404


class RefusedShareOutOfRange(PipelineError):
    """A batch job's ``max_refused_share`` (``mlstack-max-refused-share``) is not a finite number
    in [0, 1): a job allowed to refuse every row would succeed having scored nothing."""

    exit_code = EXIT_USAGE  # `mlstack score --max-refused-share` checks it before the upload


class TooManyRefusedRows(PipelineError):
    """More rows were refused than the job allows (``max_refused_share``)."""


# The registry (mlstack_core.registry) ------------------------------------------------------------


class RegistryConflict(MlstackError):
    """A conditional registry write lost: the registry is not in the state the caller expected."""


class AliasConflict(RegistryConflict):
    """The alias no longer points where the caller expected: someone else moved it first."""


class StatusConflict(RegistryConflict):
    """The version is not in the status the caller expected (e.g. already approved)."""


# Configuration (mlstack_core.settings) -----------------------------------------------------------


class MissingSetting(MlstackError):
    """A required environment variable is not set for this function."""


# Serving: the contract (mlstack_core.contract) and the prediction function -----------------------


class HttpError(MlstackError):
    """An answer other than 200: its HTTP status, a message and per-field details."""

    http_status: ClassVar[int] = 500

    def __init__(self, message: str, details: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class RequestError(HttpError):
    """The caller's request is unusable (400)."""

    http_status = 400


class PayloadTooLargeError(RequestError):
    http_status = 413


class NoExplanationBackground(HttpError):
    """The version has no background rows to explain against: it was registered before
    explanations, or its run could not store them. Retraining gives the next version some."""

    http_status = 409


class ModelUnavailableError(HttpError):
    """Production points at a version that cannot be loaded, and no earlier version is loaded."""

    http_status = 503


class ModelLoadError(MlstackError):
    """One version's artifact could not be turned into a session (checksum, S3, ONNX, schema).

    The message is for the log (it may name keys, hashes and AWS errors); ``public`` is what a
    client is told in the 503."""

    def __init__(self, message: str, public: str = "the model could not be loaded") -> None:
        super().__init__(message)
        self.public = public


class AwsHttpError(MlstackError):
    """A failed AWS call of the prediction function's own HTTPS client (transport error or an
    error response), like botocore's ClientError: ``code`` is AWS's error code, ``aws_status``
    the status AWS answered with (0 when no answer came)."""

    def __init__(self, message: str, code: str = "", aws_status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.aws_status = aws_status


# Approvals (functions/approval) ------------------------------------------------------------------


class ApprovalRefused(MlstackError):
    """The answer cannot be accepted now: the version does not await one, or its run no longer
    waits, or the uploader's identity is not known yet."""

    http_status = 409


class ApprovalForbidden(ApprovalRefused):
    """The caller may not answer: no IAM identity, or the uploader answering its own upload where
    the stack requires another principal."""

    http_status = 403


def shown(name: str) -> str:
    """A caller-supplied name, short enough to echo back in an error."""
    return name if len(name) <= 64 else f"{name[:61]}..."


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as error messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
