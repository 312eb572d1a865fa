"""A batch scoring job, step by step.

- ``resolve_job``: the version that scores the whole file (production unless pinned; a pinned
  version only if the API would serve it pinned, ``mlstack_core.servable``), resolved once, so a
  job uses one version even if production moves meanwhile; the file's S3 version fixed
  (``input.version_id``), so the header checked against the columns the version reads and the
  rows the Distributed Map reads are the same object version, whatever the key holds meanwhile.
- ``score_batch``: one batch of rows (the Distributed Map's ItemBatcher), scored through the
  serving contract (``mlstack_core.contract.batch``); its part file and refused rows written
  under ``batch/<model>/<job>/``.
- ``summarise_job``: the parts in order, ``manifest.json`` and ``errors.csv``; the job fails by
  name when more rows were refused than it allows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import ClientError

from mlstack_core.clients import client
from mlstack_core.contract import Batch, LoadedModel, load_model
from mlstack_core.contract.batch import (
    PART_ROWS_METADATA,
    max_refused_share,
    missing_cells,
    row_record,
    score_rows,
)
from mlstack_core.documents import VersionDocument
from mlstack_core.errors import (
    EmptyDataset,
    HeaderLacksFeature,
    ModelNotFound,
    NoExplanationBackground,
    TooManyRefusedRows,
    WrongDelimiter,
)
from mlstack_core.explain.served import Background, Budget, explain_batch
from mlstack_core.integrity import read_verified
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, per_model
from mlstack_core.registry import Registry
from mlstack_core.registry_keys import CANARY, PRODUCTION, SHADOW
from mlstack_core.servable import check_servable
from mlstack_core.settings import serving_settings, stack_settings
from mlstack_core.storage_keys import (
    job_errors_key,
    job_keep_key,
    job_manifest_key,
    job_part_key,
    job_prefix,
    job_refused_key,
    job_rows_key,
    model_name_problem,
)
from mlstack_core.tabular import HashingReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

HEADER_BYTES = 1 << 20  # the header must fit in the file's first MiB
BYTE_ORDER_MARK = "\ufeff"


# Object metadata a batch file may carry (``mlstack score`` sets it; ``aws s3 cp --metadata``
# can too): the job's options, for uploads that start the job themselves.
METADATA_OPTIONS = {
    "mlstack-version": "version",
    "mlstack-keep": "keep",
    "mlstack-max-refused-share": "max_refused_share",
    "mlstack-delimiter": "delimiter",
    "mlstack-explain": "explain",
}
# What the header check suggests when a file's header is one column holding one of these.
LIKELY_DELIMITERS = (",", ";", "\t", "|")


def resolve_job(request: dict[str, Any]) -> dict[str, Any]:
    """The job every batch carries (BatchInput): model, version, input, output place, columns."""
    dataset, options = _dataset_version(request["dataset"])
    request = {**options, **request, "dataset": dataset}
    model, name = str(request["model"]), str(request["job"])
    problem = model_name_problem(model)
    if problem:
        raise ModelNotFound(problem)
    per_model(model)
    registry = Registry(stack_settings().registry_table)
    allowed = max_refused_share(request.get("max_refused_share"))
    version, document = _version(registry, model, request.get("version"))
    delimiter = _delimiter(request.get("delimiter"), document)
    header = _header(dataset, delimiter)
    required = [*document["schema"].get("numeric", []), *document["schema"].get("categorical", [])]
    missing = [column for column in required if column not in header]
    if missing:
        raise HeaderLacksFeature(
            f"the header of {dataset['key']} lacks {', '.join(map(repr, missing[:20]))}, which "
            f"version {version} of {model!r} reads{_delimiter_hint(header, delimiter)}"
        )
    keep = request.get("keep") or header
    unknown = [column for column in keep if column not in header]
    if unknown:
        raise HeaderLacksFeature(f"columns to keep are not in the header: {unknown[:20]}")
    prefix = job_prefix(model, name)
    explain = str(request.get("explain") or "").lower() in ("true", "1", "yes")
    background = (document.get("files") or {}).get("background")
    if explain and not background:
        raise NoExplanationBackground(
            f"version {version} of {model!r} has no background rows to explain against (it was "
            "registered before explanations); score without --explain, or train again"
        )
    return {
        "model": model,
        "job": name,
        "version": version,
        "explain": explain,
        "background": background if explain else None,
        "input": dataset,
        "rows": dataset if delimiter == "," else _comma_copy(dataset, delimiter, prefix),
        "keep": _store_keep(dataset["bucket"], prefix, keep),
        "prefix": prefix,
        "max_refused_share": allowed,
        "started": datetime.now(UTC).isoformat(),
    }


def _delimiter(override: Any, document: VersionDocument) -> str:
    """The job's delimiter: its option (``mlstack score --delimiter``; ``\\t`` a tab, since
    object metadata holds no tab), else the one the version's training file was read with."""
    if override:
        delimiter = "\t" if str(override) in ("\\t", "tab") else str(override)
    else:
        delimiter = str((document.get("spec") or {}).get("delimiter") or ",")
    if len(delimiter) != 1 or delimiter in ('"', "\r", "\n"):
        raise WrongDelimiter(f"a delimiter is one character other than a quote, got {override!r}")
    return delimiter


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """What a header read as one column says about the file's delimiter, if anything."""
    if len(header) != 1:
        return ""
    for other in LIKELY_DELIMITERS:
        if other != delimiter and other in header[0]:
            shown = "\\t" if other == "\t" else other
            return (
                f"; the header is one column that contains {other!r}: the file looks "
                f"{other!r}-separated, but the job reads {delimiter!r} (the version's training "
                f"file's); score it with --delimiter {shown!r} (object metadata "
                f"mlstack-delimiter={shown})"
            )
    return ""


def _comma_copy(dataset: dict[str, Any], delimiter: str, prefix: str) -> dict[str, Any]:
    """The batch file as the Distributed Map's ItemReader reads it (comma-separated UTF-8),
    written beside the job's output: the ItemReader knows only a fixed set of delimiters, and
    only from the definition, while a job's comes from its version or its options."""
    request = {"Bucket": dataset["bucket"], "Key": dataset["key"]}
    if dataset.get("version_id"):
        request["VersionId"] = dataset["version_id"]
    body = client("s3").get_object(**request)["Body"]
    source = io.TextIOWrapper(
        io.BufferedReader(HashingReader(body)), encoding="utf-8-sig", newline=""
    )
    # Spooled to disk: a file can be larger than the function's memory.
    with tempfile.TemporaryFile() as spool:
        target = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        csv.writer(target, lineterminator="\r\n").writerows(csv.reader(source, delimiter=delimiter))
        target.flush()
        spool.seek(0)
        key = job_rows_key(prefix)
        put = client("s3").put_object(
            Bucket=dataset["bucket"], Key=key, Body=spool, ContentType="text/csv"
        )
        target.detach()
    return {"bucket": dataset["bucket"], "key": key, "version_id": put.get("VersionId")}


def _store_keep(bucket: str, prefix: str, keep: list[str]) -> dict[str, Any]:
    """The kept columns by reference: the whole header can be up to a MiB, and the job travels
    in every batch's input (Step Functions carries at most 256 KB; the Map's batches 192 KB)."""
    key = job_keep_key(prefix)
    body = json.dumps(keep).encode()
    put = client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return {
        "bucket": bucket,
        "key": key,
        "version_id": put.get("VersionId"),
        "sha256": hashlib.sha256(body).hexdigest(),
        "columns": len(keep),
    }


@lru_cache(maxsize=16)
def _kept_columns(
    bucket: str, key: str, version_id: str | None, sha256: str | None
) -> tuple[str, ...]:
    """The job's kept columns as resolve_job wrote them, read once per container and job."""
    return tuple(json.loads(read_verified(client("s3"), bucket, key, version_id, sha256)))


def _dataset_version(dataset: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batch file fixed to one S3 version (the event's, else the key's current one) and the
    job options its metadata carries. Every later read of the file (the header here, the
    Distributed Map's ItemReader) names this VersionId, so a file written again under the same
    key while the job runs is not what gets scored (it starts a job of its own)."""
    request = {"Bucket": dataset["bucket"], "Key": dataset["key"]}
    if dataset.get("version_id"):
        request["VersionId"] = dataset["version_id"]
    head = client("s3").head_object(**request)
    # The data bucket is versioned (template.yaml): every object has a VersionId.
    dataset = {**dataset, "version_id": dataset.get("version_id") or head["VersionId"]}
    metadata = head.get("Metadata", {})
    options: dict[str, Any] = {}
    for key, option in METADATA_OPTIONS.items():
        value = metadata.get(key)
        if value:
            options[option] = [c for c in value.split(",") if c] if option == "keep" else value
    return dataset, options


def _version(registry: Registry, model: str, pinned: Any) -> tuple[int, VersionDocument]:
    """The job's version and its document: production, or a pinned version the API would serve
    pinned (``mlstack_core.servable``: VersionNotServed otherwise)."""
    aliases = registry.aliases(model)
    if pinned is None:
        if PRODUCTION not in aliases:
            raise ModelNotFound(f"no model named {model!r} is in production")
        version = int(aliases[PRODUCTION]["version"])
        return version, registry.get_version(model, version)
    version = int(pinned)
    aliased = {
        entry["version"] for name, entry in aliases.items() if name in (PRODUCTION, CANARY, SHADOW)
    }
    document = registry.get_version(model, version)
    check_servable(model, version, document.get("status"), aliased=version in aliased)
    return version, document


def _header(dataset: dict[str, Any], delimiter: str = ",") -> list[str]:
    request = {
        "Bucket": dataset["bucket"],
        "Key": dataset["key"],
        "Range": f"bytes=0-{HEADER_BYTES - 1}",
    }
    if dataset.get("version_id"):
        request["VersionId"] = dataset["version_id"]
    try:
        head = client("s3").get_object(**request)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] != "InvalidRange":  # what S3 says of an empty object
            raise
        head = b""
    text = head.decode("utf-8-sig", errors="replace")
    first = next(csv.reader(io.StringIO(text), delimiter=delimiter), None)
    if not first or not any(cell.strip() for cell in first):
        raise EmptyDataset(f"{dataset['key']} is empty: a batch file needs a header and rows")
    return first


_LOADING = threading.Lock()


def _loaded(model: str, version: int, table: str) -> LoadedModel:
    """The version's session, once per container. Locked: batches that arrive together in one
    process (the local cloud's threads) load it once, not once each."""
    with _LOADING:
        return _load(model, version, table)


@lru_cache(maxsize=4)
def _load(model: str, version: int, table: str) -> LoadedModel:
    """The version's session, its artifact verified by hash."""
    document = Registry(table).get_version(model, version)
    artifact = document["artifact"]
    body = read_verified(
        client("s3"),
        artifact["bucket"],
        artifact["key"],
        artifact.get("version_id"),
        artifact.get("sha256"),
    )
    return load_model(body, document, serving_settings(), model=model, version=version)


def score_batch(job: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Score one batch; write its part and its refused rows; say where they are."""
    per_model(job["model"])
    loaded = _loaded(job["model"], int(job["version"]), stack_settings().registry_table)
    rows = _without_byte_order_mark([item["values"] for item in items])
    positions = [int(item["row"]) for item in items]
    scores = score_rows(loaded, rows)
    explained = _explanations(job, loaded, rows, scores.scored) if job.get("explain") else None
    first = positions[0] if positions else 0
    s3 = client("s3")
    bucket = job["input"]["bucket"]
    part_key = job_part_key(job["prefix"], first)
    s3.put_object(
        Bucket=bucket,
        Key=part_key,
        Body=_part(job, loaded, rows, scores, explained).encode(),
        ContentType="text/csv",
        Metadata={PART_ROWS_METADATA: str(len(rows))},
    )
    errors_key = None
    if scores.refused:
        errors_key = job_refused_key(job["prefix"], first)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([positions[p] + 1, reason] for p, reason in scores.refused)
        s3.put_object(
            Bucket=bucket, Key=errors_key, Body=buffer.getvalue().encode(), ContentType="text/csv"
        )
    metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=len(scores.scored))
    metrics.add_metric(name="BatchRowsRefused", unit=MetricUnit.Count, value=len(scores.refused))
    return {
        "first_row": first,
        "rows": len(rows),
        "scored": len(scores.scored),
        "refused": len(scores.refused),
        "part_key": part_key,
        "refused_key": errors_key,
    }


def _without_byte_order_mark(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows with the header's first name as training reads it (``tabular.read_csv``
    decodes utf-8-sig): the ItemReader keeps a UTF-8 byte order mark in the first name."""
    first = next(iter(rows[0]), "") if rows else ""
    if not first.startswith(BYTE_ORDER_MARK):
        return rows
    name = first.removeprefix(BYTE_ORDER_MARK)
    return [{(name if key == first else key): value for key, value in row.items()} for row in rows]


def _explanations(
    job: dict[str, Any], loaded: LoadedModel, rows: list[dict[str, str]], scored: list[int]
) -> list[list[float]]:
    """Per scored row, the base and each input column's contribution, as the explain route gives
    them (``mlstack_core.explain``): to a regressor's value, or to the probability of the class a
    classifier predicted."""
    stored = json.loads(
        client("s3")
        .get_object(Bucket=stack_settings().model_bucket, Key=job["background"])["Body"]
        .read()
    )
    background = Background.of(stored["columns"], stored["data"], loaded.layout)
    missing = missing_cells(loaded.document)
    records = [row_record(rows[position], loaded, missing) for position in scored]
    if not records:
        return []
    outputs, explained = explain_batch(
        loaded,
        Batch.of_instances([r for r in records if isinstance(r, dict)]),
        background,
        Budget.of(serving_settings(), background.rows),
    )
    picked = (
        np.asarray(outputs[1]).argmax(axis=1)
        if loaded.layout.classes
        else np.zeros(len(explained), dtype=int)
    )
    return [
        [float(row.base[k]), *row.contributions[:, k].tolist()]
        for row, k in zip(explained, picked.tolist(), strict=True)
    ]


def _part(
    job: dict[str, Any],
    loaded: LoadedModel,
    rows: list[dict[str, str]],
    scores: Any,
    explained: list[list[float]] | None = None,
) -> str:
    """The kept columns, the prediction and, for a classifier, one probability per class; with
    ``explained``, the explained base and one ``contribution_<column>`` per input column. Every
    part of a job has the same header, also one whose rows were all refused."""
    stored = job["keep"]
    keep = _kept_columns(
        stored["bucket"], stored["key"], stored.get("version_id"), stored.get("sha256")
    )
    classes = loaded.layout.classes or []
    buffer = io.StringIO()
    # CSV's own line ending, so a kept cell holding a bare "\r" is quoted, not split.
    writer = csv.writer(buffer, lineterminator="\r\n")
    explaining = job.get("explain") and explained is not None
    names = [*loaded.layout.inputs] if explaining else []
    writer.writerow(
        [
            *keep,
            "prediction",
            *(f"probability_{c}" for c in classes),
            *(["explained_base"] if explaining else []),
            *(f"contribution_{name}" for name in names),
        ]
    )
    predictions = list(map(_text, _values(scores.fields.get("predictions", []))))
    scored_rows = map(rows.__getitem__, scores.scored)
    kept = ([row.get(column, "") for column in keep] for row in scored_rows)
    probabilities = scores.fields.get("probabilities")
    # Each float32 probability as the exact text of its float64 value.
    texts: Iterator[list[str]] = (
        ([repr(p) for p in row] for row in _values(probabilities))
        if probabilities is not None
        else ([] for _ in predictions)
    )
    reasons = (map(repr, row) for row in explained) if explaining and explained else None
    writer.writerows(
        [*cells, prediction, *text, *(next(reasons) if reasons is not None else [])]
        for cells, prediction, text in zip(kept, predictions, texts, strict=True)
    )
    return buffer.getvalue()


def _values(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def summarise_job(job: dict[str, Any], scored: dict[str, Any]) -> dict[str, Any]:
    """The job's account: every batch's part in order, manifest.json, errors.csv."""
    s3 = client("s3")
    batches = sorted(_batch_outputs(s3, scored), key=lambda b: b["first_row"])
    bucket, prefix = job["input"]["bucket"], job["prefix"]
    rows_in = sum(b["rows"] for b in batches)
    rows_scored = sum(b["scored"] for b in batches)
    rows_refused = sum(b["refused"] for b in batches)
    errors = io.StringIO()
    csv.writer(errors, lineterminator="\n").writerow(["data_row", "reason"])
    for batch in batches:
        if batch["refused_key"]:
            errors.write(
                s3.get_object(Bucket=bucket, Key=batch["refused_key"])["Body"].read().decode()
            )
    errors_key = job_errors_key(prefix)
    s3.put_object(
        Bucket=bucket, Key=errors_key, Body=errors.getvalue().encode(), ContentType="text/csv"
    )
    seconds = (datetime.now(UTC) - datetime.fromisoformat(job["started"])).total_seconds()
    share = rows_refused / rows_in if rows_in else 0.0
    allowed = float(job["max_refused_share"])
    manifest = {
        "model": job["model"],
        "version": job["version"],
        "job": job["job"],
        "input": job["input"],
        "rows_in": rows_in,
        "rows_scored": rows_scored,
        "rows_refused": rows_refused,
        # A job that refused more rows than it allows failed, with its parts and errors.csv kept.
        "status": "failed" if share > allowed else "succeeded",
        "parts": [b["part_key"] for b in batches],
        "errors": errors_key,
        "started": job["started"],
        "finished": datetime.now(UTC).isoformat(),
        "seconds": round(seconds, 3),
    }
    s3.put_object(
        Bucket=bucket,
        Key=job_manifest_key(prefix),
        Body=json.dumps(manifest, indent=2).encode(),
        ContentType="application/json",
    )
    per_model(job["model"])
    metrics.add_metric(name="BatchJobSeconds", unit=MetricUnit.Seconds, value=seconds)
    logger.info(
        "Batch job scored", extra={"manifest": {k: v for k, v in manifest.items() if k != "parts"}}
    )
    if share > allowed:
        raise TooManyRefusedRows(
            f"{rows_refused} of {rows_in} rows were refused ({share:.1%}); this job allows "
            f"{allowed:.1%}: see {errors_key}"
        )
    return {
        **{k: v for k, v in manifest.items() if k != "parts"},
        "parts": len(batches),
        "manifest": job_manifest_key(prefix),
    }


def _batch_outputs(s3: S3Client, scored: dict[str, Any]) -> list[dict[str, Any]]:
    """The batches' outputs, from the Distributed Map's ResultWriter files (as Evaluate reads
    Train's); a batch that failed fails the job."""
    writer = scored["result_writer"]
    manifest = json.loads(s3.get_object(Bucket=writer["Bucket"], Key=writer["Key"])["Body"].read())
    outputs = []
    for listed in manifest["ResultFiles"].get("SUCCEEDED", []):
        body = s3.get_object(Bucket=manifest["DestinationBucket"], Key=listed["Key"])["Body"].read()
        outputs += [json.loads(child["Output"]) for child in json.loads(body)]
    return outputs
