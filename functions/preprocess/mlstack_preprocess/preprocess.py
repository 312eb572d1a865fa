"""First pipeline step: spec + CSV validation, type inference, split, fingerprint, candidates.

Reads ``datasets/<model>/spec.json`` next to the uploaded CSV, streams the CSV version that
started the run (hashing it on the way), and writes normalised ``train.csv`` / ``holdout.csv``
(',' delimiter, missing as empty cells, features in schema order then the target) to the model
bucket. Every data or spec problem raises a named error from mlstack_core.errors, which Step
Functions reports under that name.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

import boto3
import numpy as np
from botocore.exceptions import ClientError

from mlstack_core.candidates import (
    INLINE_MAP_LIMIT,
    cv_fold_problems,
    entry_folds,
    expand_candidates,
)
from mlstack_core.documents import DatasetRef, DataWarning, FeatureSchema, Splits, VersionDocument
from mlstack_core.drift import feature_baseline
from mlstack_core.errors import ImportContractMismatch, SpecError
from mlstack_core.explain import BACKGROUND_ROWS
from mlstack_core.folds import (
    CROSS_VALIDATION,
    FOLDS,
    HOLDOUT,
    REPEATS,
    Judgement,
    assign_folds,
    folds_bytes,
    judgement_for,
)
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model, tracer
from mlstack_core.payloads import Admitted, Candidate, Compute, ExecutionInput, Run
from mlstack_core.registry import Registry
from mlstack_core.settings import (
    GuardSettings,
    guard_settings,
    stack_settings,
    training_compute_settings,
)
from mlstack_core.spec import load_spec, resolve_task
from mlstack_core.split_inputs import EncodedInputs
from mlstack_core.storage_keys import (
    background_split_key,
    candidates_key,
    feature_baseline_key,
    folds_key,
    holdout_inputs_key,
    holdout_split_key,
    import_rows_key,
    spec_key,
    train_inputs_key,
    train_split_key,
)
from mlstack_core.tabular import (
    MAX_WARNINGS,
    HashingReader,
    Prepared,
    Table,
    feature_feeds,
    prepare,
    schema_change_warnings,
    split_columns,
    target_values,
    target_vector,
    write_split_to,
)
from mlstack_core.tabular import read_csv as read_csv_cells
from mlstack_core.tasks import CLASSIFICATION
from mlstack_preprocess.guards import (
    check_candidate_count,
    check_classes,
    check_gate_limits,
    check_own_input,
    check_run_state_size,
    check_shape,
    check_size,
    stack_approval,
    threshold_floor,
)
from mlstack_preprocess.sizing import measure

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef

_READ_BUFFER = 1 << 20


@dataclass(frozen=True)
class CsvEngine:
    """How Preprocess reads the upload and writes the split files: the functions' ``csv``-module
    code (``mlstack_core.tabular``) by default; the training image passes Arrow's
    (``mlstack_task.columnar``), which returns the same tables, bytes and errors."""

    read_csv: Callable[..., Table] = read_csv_cells
    write_split_to: Callable[[IO[bytes], Table, Mapping[str, Any], np.ndarray], None] = (
        write_split_to
    )


class VersionLister(Protocol):
    """The registry reads Preprocess makes (``mlstack_core.registry.Registry`` has them)."""

    def list_versions(self, model: str) -> list[VersionDocument]: ...

    def get_alias(self, model: str) -> int | None: ...

    def get_version(self, model: str, version: int) -> VersionDocument: ...


@tracer.capture_method
def read_spec(s3: S3Client, bucket: str, model: str) -> bytes | None:
    """The spec's bytes, or None when there is none (load_spec turns that into SpecError)."""
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=spec_key(model))["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return body


def production_columns(registry: VersionLister, model: str) -> list[str]:
    """The input columns of the model's production version; none when there is none or the
    registry cannot be read (scoring production on this holdout is then left to Evaluate)."""
    try:
        version = registry.get_alias(model)
        if version is None:
            return []
        schema: Mapping[str, Any] = registry.get_version(model, version).get("schema") or {}
    except ClientError:
        return []
    return [str(feature["name"]) for feature in schema.get("features", [])]


@tracer.capture_method
def read_dataset(
    s3: S3Client,
    dataset: DatasetRef,
    spec: dict[str, Any],
    keep: Sequence[str] = (),
    guards: GuardSettings | None = None,
    engine: CsvEngine = CsvEngine(),
) -> tuple[Table, DatasetRef]:
    """Stream the exact object version that started the run; returns the table and its lineage.
    A file above the stack's size limit is refused before a byte of it is read."""
    request: GetObjectRequestTypeDef = {"Bucket": dataset["bucket"], "Key": dataset["key"]}
    version_id = dataset.get("version_id")
    if version_id:
        request["VersionId"] = version_id
    response = s3.get_object(**request)
    if guards is not None:
        check_size(response.get("ContentLength"), guards)
    hasher = HashingReader(response["Body"])
    table = engine.read_csv(
        io.BufferedReader(hasher, _READ_BUFFER),
        delimiter=spec["delimiter"],
        na_values=spec["na_values"],
        required=[spec["target"]],
        skip=[name for name in spec["columns"]["drop"] if name not in keep],
    )
    lineage: DatasetRef = {
        "bucket": dataset["bucket"],
        "key": dataset["key"],
        "version_id": response.get("VersionId") or dataset.get("version_id"),
        "etag": response.get("ETag", dataset.get("etag", "")).strip('"'),
        "sha256": hasher.sha256.hexdigest(),
        "bytes": hasher.bytes_read,
        "rows": table.n_rows,
        "columns": table.file_columns,
    }
    return table, lineage


@tracer.capture_method
def last_registered_schema(registry: VersionLister, model: str) -> tuple[int, FeatureSchema] | None:
    """(version, schema) of the model's highest registered version, whatever its status: a
    rejected version was still trained on the data the user last sent. None for a new model."""
    versions = [v for v in registry.list_versions(model) if v.get("schema")]
    if not versions:
        return None
    latest = max(versions, key=lambda v: int(v["version"]))
    return int(latest["version"]), latest["schema"]


def schema_history_warnings(
    registry: VersionLister, model: str, schema: FeatureSchema
) -> list[DataWarning]:
    """Warnings comparing ``schema`` with the last registered one. The comparison is advisory,
    so a registry that cannot be read (throttling, a missing permission) costs a warning saying
    so, not the run."""
    try:
        previous = last_registered_schema(registry, model)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        logger.warning("Registry not readable; schema not compared", extra={"error": code})
        return [
            {
                "code": "SchemaHistoryUnavailable",
                "column": None,
                "message": f"the registry could not be read ({code}); columns were not compared "
                "with the last registered version",
            }
        ]
    if previous is None:
        return []
    version, previous_schema = previous
    return schema_change_warnings(previous_schema, schema, version)


def check_cv_folds(spec: dict[str, Any], prepared: Prepared, judged_on: str) -> None:
    """Cross-validated candidates must find every class (classification) or a row (regression)
    in each fold of the training split; caught here, where the run fails fast and by name,
    rather than in Train, where it would quietly become a failed candidate. A run judged by
    cross-validation fits each candidate on the other folds' rows, which hold fewer of each."""
    task = spec["task"]
    if not any(entry_folds(entry) for entry in spec["candidates"]):
        return
    if task == CLASSIFICATION:
        labels = prepared.table.columns[spec["target"]]
        smallest = min(Counter(labels[i] for i in prepared.train_index.tolist()).values())
    else:
        smallest = int(prepared.train_index.size)
    if judged_on == CROSS_VALIDATION:
        smallest = smallest * (FOLDS - 1) // FOLDS
    problems = cv_fold_problems(spec["candidates"], smallest, task)
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"- {p}" for p in problems)
        raise SpecError(f"spec.json has {len(problems)} {noun} with this data:\n{lines}")


def model_feeds(prepared: Prepared) -> dict[str, np.ndarray]:
    """The whole table's model inputs (``kinds.inputs``), converted once for the drift baseline
    and both splits' input files."""
    # The numeric columns as the profile parsed them: a million rows' cells are not parsed twice.
    return feature_feeds(prepared.table, prepared.schema, parsed=prepared.numeric_arrays)


def background_rows(train_index: np.ndarray, seed: int) -> np.ndarray:
    """The training rows explanations compare with: a seeded sample, in file order."""
    count = min(BACKGROUND_ROWS, int(train_index.size))
    chosen = np.random.default_rng(seed).choice(train_index, size=count, replace=False)
    return np.sort(chosen)


@tracer.capture_method
def training_baseline(prepared: Prepared, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The drift baseline's feature part: the training split as the model sees it (quantile bins
    per numeric feature, frequencies per categorical one; mlstack_core.drift)."""
    index = prepared.train_index
    return feature_baseline(prepared.schema, {name: feed[index] for name, feed in feeds.items()})


@tracer.capture_method
def write_split_inputs(
    s3: S3Client, splits: Splits, prepared: Prepared, feeds: Mapping[str, np.ndarray]
) -> None:
    """Each split's model inputs and target as arrays (mlstack_core.split_inputs), so Train
    loads them instead of parsing the CSV files again."""
    encoded = EncodedInputs(feeds, target_vector(prepared.table, prepared.schema))
    for key, index in (
        (splits["train_inputs_key"], prepared.train_index),
        (splits["holdout_inputs_key"], prepared.holdout_index),
    ):
        body = encoded.split_bytes(index)
        s3.put_object(
            Bucket=splits["bucket"], Key=key, Body=body, ContentType="application/octet-stream"
        )
        del body


def imported_split(prepared: Prepared, admitted: Admitted) -> Prepared:
    """An import's rows: the holdout first, then the training sample's (the holdout again when
    there is none: the drift baseline and the background rows come from it). The schema is the
    one InspectImport fitted the graph to, with the model's classes in its probabilities' order."""
    schema = prepared.schema
    expected = (admitted["numeric"], admitted["categorical"])
    if (
        (schema["numeric"], schema["categorical"]) != expected
        or schema["datetime"]
        or schema["text"]
    ):
        raise ImportContractMismatch(
            f"the holdout's columns are numeric {schema['numeric']}, categorical "
            f"{schema['categorical']}, datetime {schema['datetime']}, text {schema['text']}; the "
            f"graph reads numeric {expected[0]} and categorical {expected[1]}"
        )
    rows = admitted["holdout_rows"]
    holdout = np.arange(rows)
    train = np.arange(rows, prepared.table.n_rows) if prepared.table.n_rows > rows else holdout
    classes = admitted["classes"]
    if classes is not None:
        typed = int if schema["label_type"] == "int" else str
        schema = {**schema, "classes": [typed(c) for c in classes]}
    return replace(prepared, schema=schema, train_index=train, holdout_index=holdout)


def check_import_rows(
    model: str, run_id: str, dataset: DatasetRef, model_bucket: str, dataset_import: DatasetRef
) -> None:
    """An import's rows are its own holdout, or the run's joined rows InspectImport wrote."""
    prefix = dataset_import["key"].rsplit("/", 1)[0] + "/"
    own = dataset["bucket"] == dataset_import["bucket"] and dataset["key"].startswith(prefix)
    joined = dataset["bucket"] == model_bucket and dataset["key"] == import_rows_key(model, run_id)
    if not (own or joined):
        raise ImportContractMismatch(
            f"the import's rows {dataset['key'][:200]!r} are neither under {prefix} nor the run's"
        )


def preprocess(
    event: ExecutionInput,
    *,
    s3: S3Client,
    model_bucket: str,
    data_bucket: str,
    registry: VersionLister,
    engine: CsvEngine = CsvEngine(),
) -> Run:
    model, dataset = event["model"], event["dataset"]
    run_id = event.get("execution_name") or ""
    guards = guard_settings()
    admitted = event.get("admitted")
    if admitted is None:
        check_own_input(model, dataset, data_bucket)
        check_size(dataset.get("size"), guards)
        spec = load_spec(read_spec(s3, dataset["bucket"], model))
    else:  # an import: its holdout (and training sample), as InspectImport checked them
        check_own_input(model, dataset, data_bucket, imported=True)
        dataset = admitted["dataset"]
        check_import_rows(model, run_id, dataset, model_bucket, dataset_import=event["dataset"])
        spec = load_spec(json.dumps(admitted["spec"]).encode())
    check_gate_limits(spec, guards)
    spec, stack_warnings = stack_approval(model, spec, guards)
    # Columns this spec drops but production reads stay in the split files, so Evaluate can
    # score production on the same holdout.
    needed = set(production_columns(registry, model))
    keep = [name for name in spec["columns"]["drop"] if name in needed]
    table, lineage = read_dataset(s3, dataset, spec, keep, guards, engine)
    check_shape(table.n_rows, lineage["columns"], guards)
    values = target_values(table, spec["target"])
    spec = resolve_task(spec, values)
    # The metric is known only now: a spec may leave it to the target column.
    spec = threshold_floor(spec, guards)
    if spec["task"] == CLASSIFICATION:
        check_classes(len(set(values)), guards)
    prepared = prepare(table, spec, passthrough=[name for name in keep if name in table.header])
    judged_on: Judgement = HOLDOUT  # an import is judged on its own holdout
    if admitted is None:
        judged_on = judgement_for(prepared.table.n_rows, spec, guards.cross_validate_below_rows)
    else:
        prepared = imported_split(prepared, admitted)
    if judged_on == CROSS_VALIDATION:
        # Every row trains and is judged out of fold; the "holdout" file is the whole table.
        every_row = np.arange(prepared.table.n_rows)
        prepared = replace(prepared, train_index=every_row, holdout_index=every_row)
    check_cv_folds(spec, prepared, judged_on)
    warnings = [
        *stack_warnings,
        *prepared.warnings,
        *schema_history_warnings(registry, model, prepared.schema),
    ][:MAX_WARNINGS]

    splits: Splits = {
        "bucket": model_bucket,
        "train_key": train_split_key(model, run_id),
        "holdout_key": holdout_split_key(model, run_id),
        "train_inputs_key": train_inputs_key(model, run_id),
        "holdout_inputs_key": holdout_inputs_key(model, run_id),
        "train_rows": int(prepared.train_index.size),
        "holdout_rows": int(prepared.holdout_index.size),
        "columns": split_columns(prepared.schema),
        "judged_on": judged_on,
    }
    if judged_on == CROSS_VALIDATION:
        labels = prepared.table.columns[spec["target"]] if spec["task"] == CLASSIFICATION else None
        assignment = assign_folds(
            None if labels is None else np.asarray(labels, dtype=object),
            prepared.table.n_rows,
            folds=FOLDS,
            repeats=REPEATS,
            seed=int(spec["random_seed"]),
        )
        splits["folds_key"] = folds_key(model, run_id)
        splits["folds"], splits["repeats"] = FOLDS, REPEATS
        s3.put_object(
            Bucket=model_bucket,
            Key=splits["folds_key"],
            Body=folds_bytes(assignment),
            ContentType="application/octet-stream",
        )
    for key, index in (
        (splits["train_key"], prepared.train_index),
        (splits["holdout_key"], prepared.holdout_index),
    ):
        # Streamed into one buffer and uploaded from it: no second copy of the file as bytes.
        body = io.BytesIO()
        engine.write_split_to(body, prepared.table, prepared.schema, index)
        body.seek(0)
        s3.put_object(
            Bucket=model_bucket, Key=key, Body=body, ContentType="text/csv; charset=utf-8"
        )
        del body

    background = io.BytesIO()
    engine.write_split_to(
        background,
        prepared.table,
        prepared.schema,
        background_rows(prepared.train_index, int(spec["random_seed"])),
    )
    background_key = background_split_key(model, run_id)
    s3.put_object(
        Bucket=model_bucket,
        Key=background_key,
        Body=background.getvalue(),
        ContentType="text/csv; charset=utf-8",
    )

    feeds = model_feeds(prepared)
    write_split_inputs(s3, splits, prepared, feeds)
    baseline_key = feature_baseline_key(model, run_id)
    s3.put_object(
        Bucket=model_bucket,
        Key=baseline_key,
        Body=json.dumps(training_baseline(prepared, feeds)).encode(),
        ContentType="application/json",
    )
    del feeds

    candidates = (
        expand_candidates(spec, spec["task"])
        if admitted is None
        else [cast(Candidate, admitted["candidate"])]
    )
    check_candidate_count(len(candidates), guards)
    per_model(model)
    metrics.add_metric(name="DatasetRows", unit=MetricUnit.Count, value=lineage["rows"])
    metrics.add_metric(name="TrainingRows", unit=MetricUnit.Count, value=prepared.train_index.size)
    metrics.add_metric(name="HoldoutRows", unit=MetricUnit.Count, value=prepared.holdout_index.size)
    metrics.add_metric(name="DatasetColumns", unit=MetricUnit.Count, value=lineage["columns"])
    metrics.add_metric(name="DataWarnings", unit=MetricUnit.Count, value=len(warnings))
    metrics.add_metric(name="Candidates", unit=MetricUnit.Count, value=len(candidates))
    logger.info(
        "Dataset prepared",
        extra={
            "model": model,
            "task": spec["task"],
            "rows": lineage["rows"],
            "sha256": lineage["sha256"],
            "warnings": warnings,
        },
    )
    run: Run = {
        "model": model,
        "run_id": run_id,
        "execution_arn": event.get("execution_arn"),
        "task": spec["task"],
        "spec": spec,
        "dataset": lineage,
        "schema": prepared.schema,
        "splits": splits,
        "warnings": warnings,
        "candidates": candidates,
        "candidate_count": len(candidates),
        "feature_baseline_key": baseline_key,
        "background_split_key": background_key,
    }
    if admitted is not None:
        run["imported"] = admitted["lineage"]
    if len(candidates) > INLINE_MAP_LIMIT:
        # Too many for the execution state: the Distributed Map reads them from S3.
        key = candidates_key(model, run_id)
        s3.put_object(
            Bucket=model_bucket,
            Key=key,
            Body=json.dumps(candidates).encode(),
            ContentType="application/json",
        )
        run["candidates"] = []
        run["candidates_key"] = key
    check_run_state_size(run)
    return run


def measure_dataset(event: ExecutionInput) -> Compute:
    """MeasureDataset: where this run trains (``mlstack_preprocess.sizing``)."""
    # Never read an object of another bucket, not even its first bytes.
    check_own_input(event["model"], event["dataset"], stack_settings().data_bucket)
    s3 = boto3.client("s3")
    return measure(
        event,
        s3=s3,
        spec_body=read_spec(s3, event["dataset"]["bucket"], event["model"]),
        settings=training_compute_settings(),
    )


def handle(event: ExecutionInput, engine: CsvEngine = CsvEngine()) -> Run:
    metrics.add_metadata(key="model", value=event.get("model", ""))
    settings = stack_settings()
    return preprocess(
        event,
        s3=boto3.client("s3"),
        model_bucket=settings.model_bucket,
        data_bucket=settings.data_bucket,
        registry=Registry(settings.registry_table),
        engine=engine,
    )
