"""One Map iteration: fit one candidate pipeline on the training split and export it to ONNX.

A run judged by cross-validation (mlstack_core.folds) also fits the candidate once per fold and
stores its out-of-fold answers beside the holdout outputs; the version that ships is fitted on all
rows.

The fitted pipeline's own outputs on the holdout are stored next to the export
(``sklearn_holdout.npz``): Evaluate runs on the serving layer, which has onnxruntime but not
scikit-learn (the two do not fit in one Lambda), so it measures ONNX/sklearn parity against them.

A candidate that fails to fit or convert is reported with status "failed" and the error text
instead of raising, so one bad grid point never fails the Map. Problems with the run itself
(split missing, S3 down) still raise, so Step Functions retries or fails the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import time
import warnings
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import boto3
import joblib
import numpy as np

from mlstack_core import storage_keys
from mlstack_core.folds import read_folds
from mlstack_core.kinds import TEXT
from mlstack_core.kinds.inputs import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    TEXT_INPUT,
    ModelInput,
    datetime_columns,
    input_widths,
    model_input,
)
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, tracer
from mlstack_core.payloads import Candidate, Run, TrainedEntry, TrainInput
from mlstack_core.settings import stack_settings
from mlstack_core.spec import greater_is_better
from mlstack_core.split_inputs import npz_bytes, read_split_inputs
from mlstack_core.tasks import CLASSIFICATION
from mlstack_train.zoo import (
    SCORERS,
    build_pipeline,
    export_onnx,
    feature_importance,
    float32_thresholds,
    frequent_categories,
    grid_search,
    search_params,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_ERROR_CHARS = 2000
MAX_FIT_WARNINGS = 5
_LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "numpy", "scipy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


@tracer.capture_method
def load_split(
    run: Run, s3: S3Client, which: Literal["train", "holdout"] = "train"
) -> tuple[ModelInput, np.ndarray]:
    """(model input, target) of one split, from the arrays Preprocess stored."""
    splits = run["splits"]
    key = splits["train_inputs_key"] if which == "train" else splits["holdout_inputs_key"]
    feeds, target = read_split_inputs(_read(s3, splits["bucket"], key))
    return model_input(feeds), target


def _read(s3: S3Client, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def load_training_data(run: Run, s3: S3Client) -> tuple[ModelInput, np.ndarray]:
    return load_split(run, s3, "train")


def _npz_array(values: Any) -> np.ndarray:
    """An array ``np.load(..., allow_pickle=False)`` can read: object (string) arrays become
    unicode arrays."""
    array = np.asarray(values)
    if array.dtype == object:
        array = array.astype(str)
    return array


def sklearn_holdout_outputs(pipeline: Any, task: str, inputs: ModelInput) -> dict[str, np.ndarray]:
    """The fitted pipeline's outputs on the holdout, shaped like the ONNX outputs Evaluate
    compares them with: classifiers ``label`` [N] (int64 or unicode, as the target),
    ``probabilities`` float64 [N, n_classes] and ``classes``; regressors ``variable``
    float64 [N]."""
    if task == CLASSIFICATION:
        return {
            "label": _npz_array(pipeline.predict(inputs)),
            "probabilities": np.asarray(pipeline.predict_proba(inputs), dtype=np.float64),
            "classes": _npz_array(pipeline.classes_),
        }
    return {"variable": np.asarray(pipeline.predict(inputs), dtype=np.float64).ravel()}


@tracer.capture_method
def out_of_fold_outputs(
    run: Run, candidate: Candidate, inputs: ModelInput, y: np.ndarray, assignment: np.ndarray
) -> dict[str, np.ndarray]:
    """A run judged by cross-validation (mlstack_core.folds): each row's answer from the pipeline
    fitted on the other folds, per repeat. Classifiers ``oof_label`` [R, N] and
    ``oof_probabilities`` [R, N, C] in the schema's class order (a class a fold's training rows
    lack gets probability 0); regressors ``oof_variable`` [R, N]."""
    task = run["task"]
    repeats, rows = assignment.shape
    classes = [str(c) for c in run["schema"].get("classes") or []]
    labels = np.empty((repeats, rows), dtype=y.dtype)
    probabilities = np.zeros((repeats, rows, len(classes)))
    values = np.zeros((repeats, rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for repeat in range(repeats):
            for fold in np.unique(assignment[repeat]).tolist():
                held = assignment[repeat] == fold
                pipeline, _, _ = fit_candidate(run, candidate, inputs[~held], y[~held])
                if task == CLASSIFICATION:
                    labels[repeat, held] = pipeline.predict(inputs[held])
                    columns = [classes.index(str(c)) for c in pipeline.classes_]
                    probabilities[repeat][np.ix_(held, columns)] = pipeline.predict_proba(
                        inputs[held]
                    )
                else:
                    values[repeat, held] = np.asarray(pipeline.predict(inputs[held])).ravel()
    if task == CLASSIFICATION:
        return {"oof_label": _npz_array(labels), "oof_probabilities": probabilities}
    return {"oof_variable": values}


def _finite(value: Any) -> float | None:
    """A score as JSON can carry it: NaN (a failed fold) becomes null."""
    number = float(value)
    return round(number, 6) if np.isfinite(number) else None


def cv_report(search: Any, candidate: Candidate, metric: str) -> dict[str, Any]:
    """What the search tried and chose, scores in the metric's own units and direction."""
    sign = 1.0 if greater_is_better(metric) else -1.0  # undo scikit-learn's "neg_" scorers
    results = search.cv_results_
    points = [
        {
            "params": search_params(params),
            "mean_score": _finite(sign * results["mean_test_score"][index]),
            "std_score": _finite(results["std_test_score"][index]),
            "fold_scores": [
                _finite(sign * results[f"split{fold}_test_score"][index])
                for fold in range(int(candidate["cv"]))
            ],
            "rank": int(results["rank_test_score"][index]),
        }
        for index, params in enumerate(results["params"])
    ]
    return {
        "folds": int(candidate["cv"]),
        "metric": metric,
        "scoring": SCORERS[metric],
        "grid": candidate["grid"],
        "best_params": search_params(search.best_params_),
        "best_score": _finite(sign * search.best_score_),
        "points": points,
        "refit_seconds": round(float(search.refit_time_), 4),
    }


def fit_candidate(
    run: Run, candidate: Candidate, inputs: ModelInput, y: np.ndarray
) -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
    """(fitted pipeline, the params it was fitted with, cv report or None). A candidate with
    ``cv`` grid-searches its grid on the training split and returns the refitted best point."""
    schema, task = run["schema"], run["task"]
    seed = int(run["spec"]["random_seed"])
    widths = input_widths(schema)
    n_numeric, n_categorical = widths.get(NUMERIC_INPUT, 0), widths.get(CATEGORICAL_INPUT, 0)
    pipeline = build_pipeline(
        candidate["family"],
        candidate["params"],
        task=task,
        seed=seed,
        n_numeric=n_numeric,
        n_categorical=n_categorical,
        categories=(
            frequent_categories(inputs[:, n_numeric : n_numeric + n_categorical])
            if n_categorical
            else None
        ),
        text=[f for f in schema["features"] if f["kind"] == TEXT],
    )
    if candidate.get("cv") is None:
        pipeline.fit(inputs, y)
        return pipeline, dict(candidate["params"]), None
    metric = run["spec"]["metric"]
    search = grid_search(
        pipeline,
        candidate["grid"],
        task=task,
        folds=int(candidate["cv"]),
        metric=metric,
        seed=seed,
    )
    search.fit(inputs, y)
    chosen = {**candidate["params"], **search_params(search.best_params_)}
    return search.best_estimator_, chosen, cv_report(search, candidate, metric)


def fit_and_export(
    run: Run, candidate: Candidate, inputs: ModelInput, y: np.ndarray
) -> tuple[Any, bytes, FitDetails]:
    """(fitted pipeline, ONNX bytes, details: params fitted, cv report, timings and fit
    warnings). Raises on any failure."""
    schema, task = run["schema"], run["task"]
    widths = input_widths(schema)
    shape = {
        "n_numeric": widths.get(NUMERIC_INPUT, 0),
        "n_categorical": widths.get(CATEGORICAL_INPUT, 0),
        "n_text": widths.get(TEXT_INPUT, 0),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        # With cv this is the whole search: points x folds fits plus the refit.
        pipeline, params, cv = fit_candidate(run, candidate, inputs, y)
        fit_seconds = time.perf_counter() - started
    float32_thresholds(pipeline)
    started = time.perf_counter()
    model = export_onnx(
        pipeline,
        task=task,
        metadata={
            "mlstack.model": run["model"],
            "mlstack.run_id": run["run_id"],
            "mlstack.candidate_id": candidate["candidate_id"],
            "mlstack.family": candidate["family"],
        },
        **shape,
    )
    onnx_bytes = model.SerializeToString()
    export_seconds = time.perf_counter() - started
    fit_warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return (
        pipeline,
        onnx_bytes,
        {
            "params": params,
            "cv": cv,
            "fit_seconds": round(fit_seconds, 4),
            "export_seconds": round(export_seconds, 4),
            "warnings": [w[:500] for w in fit_warnings[:MAX_FIT_WARNINGS]],
        },
    )


class FitDetails(TypedDict):
    """What fitting adds to a trained entry."""

    params: dict[str, Any]
    cv: dict[str, Any] | None
    fit_seconds: float
    export_seconds: float
    warnings: list[str]


def train_candidate(run: Run, candidate: Candidate, *, s3: S3Client, bucket: str) -> TrainedEntry:
    """Fit and export one candidate, and store the whole result in S3. The Map's output (in the
    state for the inline Map, through the ResultWriter's files for the Distributed Map) is the
    part the state machine's ResultSelector keeps: names, status and the result's key, since a
    cross-validation report per candidate would not fit Step Functions' 256 KB."""
    return store_result(
        run, train_and_store(run, candidate, s3=s3, bucket=bucket), s3=s3, bucket=bucket
    )


def store_result(run: Run, result: TrainedEntry, *, s3: S3Client, bucket: str) -> TrainedEntry:
    """The entry with ``result_key``: where this whole entry is stored, version and hash, so
    Evaluate reads exactly what this invocation wrote."""
    key = storage_keys.candidate_result_key(run["model"], run["run_id"], result["candidate_id"])
    body = json.dumps(result).encode()
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return {
        **result,
        "result_key": key,
        "result_version_id": put.get("VersionId"),
        "result_sha256": hashlib.sha256(body).hexdigest(),
    }


def train_and_store(run: Run, candidate: Candidate, *, s3: S3Client, bucket: str) -> TrainedEntry:
    stored_as = (run["model"], run["run_id"], candidate["candidate_id"])
    onnx_key = storage_keys.candidate_onnx_key(*stored_as)
    pipeline_key = storage_keys.candidate_pipeline_key(*stored_as)
    holdout_outputs_key = storage_keys.candidate_holdout_outputs_key(*stored_as)
    result: TrainedEntry = {
        "candidate_id": candidate["candidate_id"],
        "family": candidate["family"],
        "params": candidate["params"],
        "cv": None,
        "status": "failed",
        "error": None,
        "warnings": [],
        "onnx_key": None,
        "sklearn_key": None,
        "sklearn_holdout_key": None,
        "fit_seconds": None,
        "export_seconds": None,
        "onnx_bytes": None,
        "feature_importance": None,
        "library_versions": library_versions(),
    }
    inputs, y = load_training_data(run, s3)
    holdout_inputs, _ = load_split(run, s3, "holdout")
    folds = run["splits"].get("folds_key")
    try:
        started = time.perf_counter()
        out_of_fold = (
            out_of_fold_outputs(
                run, candidate, inputs, y, read_folds(_read(s3, run["splits"]["bucket"], folds))
            )
            if folds
            else {}
        )
        cross_validation_seconds = time.perf_counter() - started
        pipeline, onnx_bytes, details = fit_and_export(run, candidate, inputs, y)
        holdout_outputs = {
            **sklearn_holdout_outputs(pipeline, run["task"], holdout_inputs),
            **out_of_fold,
        }
    except Exception as error:  # a bad candidate must not fail the Map
        result["error"] = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        logger.warning("Candidate failed", extra={"candidate": candidate, "error": result["error"]})
        metrics.add_metric(name="CandidateFailures", unit=MetricUnit.Count, value=1)
        return result

    pickled = io.BytesIO()
    joblib.dump(pipeline, pickled, compress=3)
    onnx_put = s3.put_object(
        Bucket=bucket,
        Key=onnx_key,
        Body=onnx_bytes,
        ContentType="application/octet-stream",
    )
    s3.put_object(
        Bucket=bucket,
        Key=pipeline_key,
        Body=pickled.getvalue(),
        ContentType="application/octet-stream",
    )
    s3.put_object(
        Bucket=bucket,
        Key=holdout_outputs_key,
        Body=npz_bytes(holdout_outputs),
        ContentType="application/octet-stream",
    )
    result["status"] = "trained"
    result["onnx_key"] = onnx_key
    # Later steps read exactly these bytes: this version, checked against this hash.
    result["onnx_version_id"] = onnx_put.get("VersionId")
    result["onnx_sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
    result["sklearn_key"] = pipeline_key
    result["sklearn_holdout_key"] = holdout_outputs_key
    result["onnx_bytes"] = len(onnx_bytes)
    result["feature_importance"] = _importance(pipeline, run)
    result["params"] = details["params"]
    result["cv"] = details["cv"]
    result["fit_seconds"] = details["fit_seconds"]
    if folds:
        result["cross_validation_seconds"] = round(cross_validation_seconds, 4)
    result["export_seconds"] = details["export_seconds"]
    result["warnings"] = details["warnings"]
    metrics.add_metric(name="CandidateFailures", unit=MetricUnit.Count, value=0)
    metrics.add_metric(name="FitSeconds", unit=MetricUnit.Seconds, value=details["fit_seconds"])
    metrics.add_metric(
        name="ExportSeconds", unit=MetricUnit.Seconds, value=details["export_seconds"]
    )
    metrics.add_metric(name="OnnxBytes", unit=MetricUnit.Bytes, value=len(onnx_bytes))
    logger.info(
        "Candidate trained",
        extra={k: result[k] for k in ("candidate_id", "fit_seconds", "onnx_bytes")},
    )
    return result


def _importance(pipeline: Any, run: Run) -> dict[str, Any] | None:
    """Feature importance for the report; a failure here never fails the candidate."""
    schema = run["schema"]
    try:
        owners = [
            *schema["numeric"],
            *(c.name for c in datetime_columns(schema) for _ in c.parts),
        ]
        text = [f["name"] for f in schema["features"] if f["kind"] == TEXT]
        return feature_importance(pipeline, owners, list(schema["categorical"]), text)
    except Exception as error:
        logger.warning("Feature importance unavailable", extra={"error": repr(error)})
        return None


def handle(event: TrainInput) -> TrainedEntry:
    run, candidate = event["run"], event["candidate"]
    # Metadata, not dimensions: the local cloud runs Map iterations as threads sharing one
    # Metrics object, and concurrent add_dimension calls overwrite each other.
    metrics.add_metadata(key="family", value=candidate["family"])
    metrics.add_metadata(key="model", value=run["model"])
    metrics.add_metadata(key="candidate_id", value=candidate["candidate_id"])
    return train_candidate(
        run, candidate, s3=boto3.client("s3"), bucket=stack_settings().model_bucket
    )
