"""InspectImport: one ``mlstack import`` upload checked and made a candidate, before the run joins
training's path.

The manifest (written last by the CLI, ``imports/<model>/<upload>/manifest.json``) names the ONNX
file, the holdout, the original model's answers on it and, when given, a training sample and a
spec. This step refuses by name what cannot be admitted (``mlstack_core.errors.ImportRefused``:
the file's contents, its inputs against the holdout's columns, its answers against the task),
then stores the candidate as Train stores one (the served graph, the original's answers as the
parity reference, the result Evaluate reads) and returns what Preprocess needs to prepare the
run from the holdout: the spec with the kinds the graph reads, and which rows are the holdout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import boto3
import numpy as np
from botocore.exceptions import ClientError

from mlstack_admit.graph import ColumnPlan, model_task, plan_columns, served_graph
from mlstack_admit.inspection import inspect_model
from mlstack_core import storage_keys
from mlstack_core.errors import (
    ForeignDataset,
    ImportContractMismatch,
    ImportedModelTooLarge,
    ImportRefused,
)
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model, tracer
from mlstack_core.payloads import Admitted, ExecutionInput, ImportLineage, TrainedEntry
from mlstack_core.settings import guard_settings, stack_settings
from mlstack_core.spec import load_spec
from mlstack_core.split_inputs import npz_bytes
from mlstack_core.tabular import Table, read_csv
from mlstack_core.tasks import CLASSIFICATION

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CANDIDATE_ID: Final = "imported"
FAMILY: Final = "imported"
MAX_MANIFEST_BYTES: Final = 64 * 1024
REQUIRED_FILES: Final = ("onnx", "holdout", "answers")
OPTIONAL_FILES: Final = ("train_sample", "spec")


def _read_version(
    s3: S3Client, bucket: str, key: str, limit: int, what: str
) -> tuple[bytes, str | None]:
    """The object's bytes and version, its size checked before a byte is read."""
    head = s3.head_object(Bucket=bucket, Key=key)
    size = int(head.get("ContentLength", 0))
    if size > limit:
        error = ImportedModelTooLarge if what == "the ONNX file" else ImportContractMismatch
        raise error(f"{what} has {size:,} bytes; this stack takes at most {limit:,}")
    version = head.get("VersionId")
    request: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version:
        request["VersionId"] = version
    body: bytes = s3.get_object(**request)["Body"].read()
    return body, version


def _read(s3: S3Client, bucket: str, key: str, limit: int, what: str) -> bytes:
    return _read_version(s3, bucket, key, limit, what)[0]


def read_manifest(s3: S3Client, event: ExecutionInput, data_bucket: str) -> dict[str, Any]:
    """The upload's manifest, its files all under the upload's own prefix."""
    model, dataset = event["model"], event["dataset"]
    match = storage_keys.IMPORT_MANIFEST_KEY.match(str(dataset.get("key", "")))
    if dataset.get("bucket") != data_bucket or match is None or match.group("model") != model:
        raise ForeignDataset(
            f"{str(dataset.get('key'))[:200]!r} is not imports/{model}/<upload>/manifest.json in "
            "this stack's data bucket"
        )
    request: dict[str, Any] = {"Bucket": data_bucket, "Key": dataset["key"]}
    if dataset.get("version_id"):
        request["VersionId"] = dataset["version_id"]
    body = s3.get_object(**request)["Body"].read(MAX_MANIFEST_BYTES + 1)
    if len(body) > MAX_MANIFEST_BYTES:
        raise ImportContractMismatch(f"the manifest has more than {MAX_MANIFEST_BYTES:,} bytes")
    try:
        manifest = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImportContractMismatch(f"the manifest is not JSON: {error}") from error
    problems = manifest_problems(manifest, model, match.group("upload"))
    if problems:
        raise ImportContractMismatch("the manifest: " + "; ".join(problems))
    return cast(dict[str, Any], manifest)


def manifest_problems(manifest: Any, model: str, upload: str) -> list[str]:
    if not isinstance(manifest, dict):
        return ["it is not a JSON object"]
    problems = []
    readable = storage_keys.IMPORT_MANIFEST_FORMAT
    if manifest.get("format") != readable:
        problems.append(f"format is {manifest.get('format')!r}, this stack reads {readable}")
    if manifest.get("model") != model:
        problems.append(f"it names model {manifest.get('model')!r}, uploaded under {model!r}")
    if not isinstance(manifest.get("target"), str) or not manifest["target"]:
        problems.append("it names no target column")
    if not isinstance(manifest.get("onnx_sha256"), str):
        problems.append("it has no onnx_sha256")
    files = manifest.get("files")
    if not isinstance(files, dict):
        return [*problems, "it lists no files"]
    prefix = storage_keys.import_prefix(model, upload)
    for name in (*REQUIRED_FILES, *OPTIONAL_FILES):
        key = files.get(name)
        if key is None and name in OPTIONAL_FILES:
            continue
        if not isinstance(key, str) or not key.startswith(prefix) or "/" in key[len(prefix) :]:
            problems.append(f"files.{name} is {key!r}, not a file under {prefix}")
    return problems


def resolve_spec(
    s3: S3Client, bucket: str, model: str, manifest: Mapping[str, Any]
) -> dict[str, Any]:
    """The upload's spec, else the model's stored one, else only the target; its target must be
    the manifest's."""
    raw: bytes | None = None
    spec_file = manifest["files"].get("spec")
    if spec_file:
        raw = s3.get_object(Bucket=bucket, Key=spec_file)["Body"].read()
    else:
        try:
            raw = s3.get_object(Bucket=bucket, Key=storage_keys.spec_key(model))["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchKey", "404", "NotFound"):
                raise
    document = json.loads(raw.decode("utf-8-sig")) if raw else {}
    if not isinstance(document, dict):
        raise ImportContractMismatch("the spec is not a JSON object")
    document.setdefault("target", manifest["target"])
    if document["target"] != manifest["target"]:
        raise ImportContractMismatch(
            f"the spec's target is {document['target']!r}, the import's {manifest['target']!r}"
        )
    load_spec(json.dumps(document).encode())  # every problem of the spec by name (SpecError)
    return document


def holdout_answers(
    body: bytes, task: str, rows: int, labels: list[str]
) -> tuple[dict[str, np.ndarray], list[Any] | None]:
    """The original's answers as Evaluate's parity reads Train's (``sklearn_holdout.npz``), and a
    classifier's classes in its probabilities' order."""
    try:
        answers = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImportContractMismatch(f"the original's answers are not JSON: {error}") from error
    if task == CLASSIFICATION:
        try:
            classes = list(answers["classes"])
            label = np.asarray(answers["labels"])
            probabilities = np.asarray(answers["probabilities"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise ImportContractMismatch(
                "the original's answers lack a classifier's classes, labels and probabilities"
            ) from error
        if label.shape != (rows,) or probabilities.shape != (rows, len(classes)):
            raise ImportContractMismatch(
                f"the original's answers cover {label.shape[0]} rows and {probabilities.shape} "
                f"probabilities; the holdout has {rows} rows and the model {len(classes)} classes"
            )
        unknown = sorted(set(labels) - {str(c) for c in classes})
        if unknown:
            raise ImportContractMismatch(
                f"the holdout has label(s) {', '.join(map(repr, unknown[:10]))} the model never "
                f"answers (its classes: {', '.join(map(repr, map(str, classes)))})"
            )
        stored = {
            "label": label.astype(str) if label.dtype == object else label,
            "probabilities": probabilities,
            "classes": np.asarray(classes).astype(str)
            if not all(isinstance(c, int) for c in classes)
            else np.asarray(classes, dtype=np.int64),
        }
        return stored, classes
    try:
        values = np.asarray(answers["values"], dtype=np.float64).ravel()
    except (KeyError, TypeError, ValueError) as error:
        raise ImportContractMismatch("the original's answers lack a regressor's values") from error
    if values.shape != (rows,):
        raise ImportContractMismatch(
            f"the original's answers cover {values.size} rows; the holdout has {rows}"
        )
    return {"variable": values}, None


def rows_with_sample(holdout: bytes, sample: bytes) -> bytes:
    """The holdout's rows, then the training sample's, under the holdout's header (the two headers
    must be the same line)."""
    head, _, rest = sample.partition(b"\n")
    own = holdout.split(b"\n", 1)[0]
    if head.rstrip(b"\r").removeprefix(b"\xef\xbb\xbf") != own.rstrip(b"\r").removeprefix(
        b"\xef\xbb\xbf"
    ):
        raise ImportContractMismatch(
            "the training sample's header differs from the holdout's: give both files the same "
            "columns in the same order"
        )
    joined = holdout if holdout.endswith(b"\n") else holdout + b"\n"
    return joined + rest


@tracer.capture_method
def admit(event: ExecutionInput, *, s3: S3Client, data_bucket: str, model_bucket: str) -> Admitted:
    model = event["model"]
    run_id = event.get("execution_name") or ""
    guards = guard_settings()
    manifest = read_manifest(s3, event, data_bucket)
    files = manifest["files"]
    onnx_bytes = _read(s3, data_bucket, files["onnx"], guards.max_import_bytes, "the ONNX file")
    if hashlib.sha256(onnx_bytes).hexdigest() != manifest["onnx_sha256"]:
        raise ImportRefused(
            "the ONNX file's hash is not the one the manifest records: it changed after the "
            "upload was written; import it again"
        )
    graph = inspect_model(
        onnx_bytes, max_bytes=guards.max_import_bytes, max_nodes=guards.max_import_nodes
    )
    document = resolve_spec(s3, data_bucket, model, manifest)
    spec = load_spec(json.dumps(document).encode())
    target = manifest["target"]
    holdout_bytes, holdout_version = _read_version(
        s3, data_bucket, files["holdout"], guards.max_upload_bytes, "the holdout"
    )
    holdout: Table = read_csv(
        holdout_bytes,
        delimiter=spec["delimiter"],
        na_values=spec["na_values"],
        required=[target],
        skip=spec["columns"]["drop"],
    )
    labels = holdout.columns[target]
    unlabelled = sum(1 for cell in labels if not cell)
    if unlabelled:
        raise ImportContractMismatch(
            f"{unlabelled} holdout row(s) have no {target!r}: every holdout row needs its label "
            "to be scored"
        )
    task = model_task(graph)
    if spec.get("task") not in (None, task):
        raise ImportContractMismatch(f"the spec says {spec['task']}, the model is a {task} model")
    plan: ColumnPlan = plan_columns(graph, holdout.header, target)
    served = served_graph(graph, plan).SerializeToString()
    answers, classes = holdout_answers(
        _read(s3, data_bucket, files["answers"], guards.max_upload_bytes, "the answers"),
        task,
        holdout.n_rows,
        list(labels),
    )

    # PrepareImport reads exactly the version checked here.
    dataset: dict[str, Any] = {
        "bucket": data_bucket,
        "key": files["holdout"],
        "version_id": holdout_version,
    }
    if files.get("train_sample"):
        sample = _read(
            s3, data_bucket, files["train_sample"], guards.max_upload_bytes, "the training sample"
        )
        key = storage_keys.import_rows_key(model, run_id)
        put = s3.put_object(
            Bucket=model_bucket,
            Key=key,
            Body=rows_with_sample(holdout_bytes, sample),
            ContentType="text/csv; charset=utf-8",
        )
        dataset = {"bucket": model_bucket, "key": key, "version_id": put.get("VersionId")}

    lineage: ImportLineage = {
        "source": str(manifest.get("source") or "onnx"),
        "file_name": str((manifest.get("file") or {}).get("name") or ""),
        "file_sha256": str((manifest.get("file") or {}).get("sha256") or ""),
        "onnx_sha256": manifest["onnx_sha256"],
        "libraries": {str(k): str(v) for k, v in (manifest.get("libraries") or {}).items()},
        "uploaded_by": str(event["dataset"].get("requester") or manifest.get("uploaded_by") or ""),
        "manifest_key": event["dataset"]["key"],
        "manifest_version_id": event["dataset"].get("version_id"),
        "training_sample": bool(files.get("train_sample")),
    }
    candidate = store_candidate(model, run_id, served, answers, lineage, s3=s3, bucket=model_bucket)
    document["task"] = task
    columns = document.setdefault("columns", {})
    columns["types"] = {**columns.get("types", {}), **plan.kinds}
    columns["drop"] = list(dict.fromkeys([*columns.get("drop", []), *plan.dropped]))
    per_model(model)
    metrics.add_metric(name="ImportsAdmitted", unit=MetricUnit.Count, value=1)
    logger.info(
        "Import admitted",
        extra={"model": model, "source": lineage["source"], "columns": plan.kinds},
    )
    admitted: Admitted = {
        "spec": document,
        "dataset": cast(Any, dataset),
        "holdout_rows": holdout.n_rows,
        "numeric": plan.numeric,
        "categorical": plan.categorical,
        "classes": classes,
        "candidate": candidate,
        "lineage": lineage,
    }
    return admitted


def store_candidate(
    model: str,
    run_id: str,
    served: bytes,
    answers: Mapping[str, np.ndarray],
    lineage: ImportLineage,
    *,
    s3: S3Client,
    bucket: str,
) -> dict[str, Any]:
    """The imported candidate stored as Train stores one: the graph, the reference answers and
    the result Evaluate reads; returns the Map's item for it (the result's key, version, hash)."""
    stored_as = (model, run_id, CANDIDATE_ID)
    onnx_key = storage_keys.candidate_onnx_key(*stored_as)
    answers_key = storage_keys.candidate_holdout_outputs_key(*stored_as)
    put = s3.put_object(
        Bucket=bucket, Key=onnx_key, Body=served, ContentType="application/octet-stream"
    )
    s3.put_object(
        Bucket=bucket,
        Key=answers_key,
        Body=npz_bytes(answers),
        ContentType="application/octet-stream",
    )
    result: TrainedEntry = {
        "candidate_id": CANDIDATE_ID,
        "family": FAMILY,
        "params": {"source": lineage["source"], "file": lineage["file_name"]},
        "status": "trained",
        "error": None,
        "warnings": [],
        "onnx_key": onnx_key,
        "onnx_version_id": put.get("VersionId"),
        "onnx_sha256": hashlib.sha256(served).hexdigest(),
        "sklearn_key": None,
        "sklearn_holdout_key": answers_key,
        "fit_seconds": None,
        "export_seconds": None,
        "onnx_bytes": len(served),
        "feature_importance": None,
        "library_versions": dict(lineage["libraries"]),
        "imported": lineage,
    }
    key = storage_keys.candidate_result_key(*stored_as)
    body = json.dumps(result).encode()
    stored = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return {
        "candidate_id": CANDIDATE_ID,
        "family": FAMILY,
        "params": result["params"],
        "result_key": key,
        "result_version_id": stored.get("VersionId"),
        "result_sha256": hashlib.sha256(body).hexdigest(),
    }


def handle(event: ExecutionInput) -> Admitted:
    settings = stack_settings()
    return admit(
        event,
        s3=boto3.client("s3"),
        data_bucket=settings.data_bucket,
        model_bucket=settings.model_bucket,
    )
