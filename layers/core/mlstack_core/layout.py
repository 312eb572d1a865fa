"""Where each step keeps its files in the model bucket (docs/internals.md, "S3 layout")."""

from __future__ import annotations

import re

# A model's name: it is an S3 key segment, a DynamoDB key part, an execution-name prefix and a
# metric dimension, so it keeps to characters all of them take.
MODEL_NAME_RULE = (
    "1 to 64 characters: letters, digits, '-' and '_', starting with a letter or digit"
)
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
DATASET_KEY = re.compile(r"^datasets/(?P<model>[^/]+)/[^/]+\.csv$")
# A batch scoring job: its file, and (under batch/<model>/<job>/) its output.
BATCH_KEY = re.compile(r"^batch/(?P<model>[^/]+)/(?P<job>[^/]+)\.csv$")


def batch_file_key(model: str, job: str) -> str:
    """``batch/<model>/<job>.csv`` in the data bucket: uploading it starts the job."""
    return f"{job_prefix(model, job)}.csv"


def job_prefix(model: str, job: str) -> str:
    """``batch/<model>/<job>``: where the job's parts, errors.csv and manifest.json go."""
    return f"batch/{model}/{job}"


def model_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a model, or None when it can."""
    if MODEL_NAME.fullmatch(name):
        return None
    return f"{name!r} is not a model name: use {MODEL_NAME_RULE}"


def run_prefix(model: str, run_id: str) -> str:
    return f"runs/{model}/{run_id}"


def folds_key(model: str, run_id: str) -> str:
    """A run judged by cross-validation: which fold each row is in, per repeat (folds.py)."""
    return f"{run_prefix(model, run_id)}/folds.npy"


def candidates_key(model: str, run_id: str) -> str:
    """The candidate list of a grid too large for the execution state (Distributed Map)."""
    return f"{run_prefix(model, run_id)}/candidates.json"


def candidate_prefix(model: str, run_id: str, candidate_id: str) -> str:
    return f"{run_prefix(model, run_id)}/candidates/{candidate_id}"


def evaluation_key(model: str, run_id: str) -> str:
    return f"{run_prefix(model, run_id)}/evaluation.json"


def feature_baseline_key(model: str, run_id: str) -> str:
    """Preprocess: the training split's per-feature drift baseline."""
    return f"{run_prefix(model, run_id)}/feature_baseline.json"


def drift_baseline_key(model: str, run_id: str) -> str:
    """Evaluate: the feature baseline plus the winner's prediction distribution on the holdout."""
    return f"{run_prefix(model, run_id)}/drift_baseline.json"


def holdout_predictions_key(model: str, run_id: str) -> str:
    """Evaluate: the holdout target and the winner's and production's outputs on it (reports)."""
    return f"{run_prefix(model, run_id)}/holdout_predictions.npz"


def version_prefix(model: str, version: int) -> str:
    return f"models/{model}/{version}"


# Files Register copies next to each version's model.onnx, by name.
VERSION_FILES = {
    "baseline": "baseline.json",
    "evaluation": "evaluation.json",
    "predictions": "holdout_predictions.npz",
}

# Up to this size a version's drift baseline is also inlined in its registry document (DynamoDB
# items are limited to 400 KB, and the document also holds the schema); above it, it stays in S3
# only and serving records no drift summaries for the version.
INLINE_BASELINE_BYTES = 128 * 1024
