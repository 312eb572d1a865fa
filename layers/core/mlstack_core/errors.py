"""Named pipeline errors.

Step Functions reports a Lambda failure under the exception's class name, so each class name is a
public error code that shows up in the execution history, the alert and the registry.
"""

from __future__ import annotations

# A message may quote the user's data (a cell, a column name), and it travels in the run's state
# (Catch puts it under $.error), which Step Functions caps at 256 KB: it is cut to this length.
MAX_MESSAGE_CHARS = 4000


class PipelineError(Exception):
    """Base class of every error a pipeline step raises on purpose."""

    def __init__(self, message: str = "") -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[: MAX_MESSAGE_CHARS - 40]}… ({len(message):,} characters in all)"
        super().__init__(message)


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


class ModelNotFound(LookupError):
    """No such model or version in the registry."""


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


class ServingRehearsalFailed(PipelineError):
    """The chosen model, served through the serving contract as JSON requests, did not answer
    what the gate scored: it would fail or answer differently in production."""


class ArtifactTampered(PipelineError):
    """A model file is not the one that was trained and evaluated: its bytes do not match the
    recorded sha256, or its key was written again after the evaluation."""


class ApprovalForAnotherVersion(PipelineError):
    """The answer that resumed a paused run names another version than the one it waits for."""


class SpecOutsideStackLimits(SpecError):
    """spec.json asks for a gate looser than the stack allows (GateMinImprovement,
    GateMinLabelAgreement, GateMaxOutputDiff): the uploader does not set the gate."""


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


class UnreadableDates(DatasetError):
    """A column declared datetime has no value that reads as a date in any format, or its dates
    read both day-first and month-first and spec.columns.date_formats does not say which."""
