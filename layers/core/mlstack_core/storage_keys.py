"""The keys of the data bucket and the model bucket: every S3 key and prefix the stack writes or
reads, spelled here and nowhere else (docs/internals.md, "S3 layout", draws them), and the rule
for a model's name, which is a segment of most of them. Standard library only: the CLI and the
prediction function import it.

The registry table's keys (DynamoDB, another store) are in ``registry_keys``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# A model's name: it is an S3 key segment, a DynamoDB key part, an execution-name prefix and a
# metric dimension, so it keeps to characters all of them take.
MODEL_NAME_RULE = (
    "1 to 64 characters: letters, digits, '-' and '_', starting with a letter or digit"
)
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def model_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a model, or None when it can."""
    if MODEL_NAME.fullmatch(name):
        return None
    return f"{name!r} is not a model name: use {MODEL_NAME_RULE}"


# ------------------------------------------------------------------------------ data bucket
DATASETS_PREFIX = "datasets/"
BATCH_PREFIX = "batch/"
FEEDBACK_PREFIX = "feedback/"
IMPORTS_PREFIX = "imports/"

# Datasets the Monitor derives from captured requests (quality retraining) have a prefix of their
# own, so one lifecycle rule gives them the captures' retention (CaptureRetentionDays). It stays
# under datasets/, so an upload there starts a run as any other does; "_" cannot start a model
# name, so the prefix is never a model's.
DERIVED_DATASETS_PREFIX = f"{DATASETS_PREFIX}_derived/"

# A CSV that starts a training run: an upload, or a dataset the Monitor derived.
DATASET_KEY = re.compile(r"^datasets/(?:_derived/)?(?P<model>[^/]+)/[^/]+\.csv$")
# A batch scoring job: its file, and (under batch/<model>/<job>/) its output.
BATCH_KEY = re.compile(r"^batch/(?P<model>[^/]+)/(?P<job>[^/]+)\.csv$")
# A model trained elsewhere (``mlstack import``): its manifest, written last, starts the run.
IMPORT_MANIFEST_KEY = re.compile(r"^imports/(?P<model>[^/]+)/(?P<upload>[^/]+)/manifest\.json$")


def dataset_prefix(model: str) -> str:
    """``datasets/<model>/``: the model's spec and datasets (a CSV directly under it starts a
    run)."""
    return f"{DATASETS_PREFIX}{model}/"


def dataset_key(model: str, file_name: str) -> str:
    return f"{dataset_prefix(model)}{file_name}"


def spec_key(model: str) -> str:
    """``datasets/<model>/spec.json``: the training spec (mlstack_core.spec)."""
    return dataset_key(model, "spec.json")


def derived_dataset_prefix(model: str) -> str:
    """``datasets/_derived/<model>/``: the datasets the Monitor derived for ``model``, expired
    after CaptureRetentionDays as the captures they hold are."""
    return f"{DERIVED_DATASETS_PREFIX}{model}/"


def feedback_dataset_key(model: str, production: int, identity: str) -> str:
    """The Monitor's dataset of the newest upload plus the labelled rows (its upload starts a
    run): named after the production version and the feedback it holds, under the derived
    datasets' prefix."""
    return f"{derived_dataset_prefix(model)}feedback-v{production}-{identity}.csv"


# Where the Monitor wrote its derived datasets before they had a prefix of their own: directly
# under datasets/<model>/. Such a file is never the original upload a retraining starts from.
EARLIER_FEEDBACK_DATASET_NAME = re.compile(r"^feedback-v[0-9]+-[0-9a-f]{16}\.csv$")


def batch_file_key(model: str, job: str) -> str:
    """``batch/<model>/<job>.csv`` in the data bucket: uploading it starts the job."""
    return f"{job_prefix(model, job)}.csv"


def job_prefix(model: str, job: str) -> str:
    """``batch/<model>/<job>``: where the job's parts, errors.csv and manifest.json go."""
    return f"{BATCH_PREFIX}{model}/{job}"


def job_parts_prefix(job: str) -> str:
    """The parts of the job at prefix ``job``, one per batch, named by its first row."""
    return f"{job}/parts/"


def job_part_key(job: str, first_row: int) -> str:
    return f"{job_parts_prefix(job)}{first_row:012d}.csv"


def job_refused_key(job: str, first_row: int) -> str:
    """One batch's refused rows; summarise_job gathers them into errors.csv."""
    return f"{job}/refused/{first_row:012d}.csv"


def job_keep_key(job: str) -> str:
    """The columns a job keeps in its output, as JSON: every batch reads them from here, since a
    whole header does not fit the Map's batch input."""
    return f"{job}/keep.json"


def job_rows_key(job: str) -> str:
    """A batch file not separated by commas, rewritten as comma-separated UTF-8 for the
    Distributed Map's ItemReader."""
    return f"{job}/rows.csv"


def job_errors_key(job: str) -> str:
    return f"{job}/errors.csv"


def job_manifest_key(job: str) -> str:
    return f"{job}/manifest.json"


# The manifest's format: what ``mlstack import`` writes and InspectImport reads.
IMPORT_MANIFEST_FORMAT = 1


def import_prefix(model: str, upload: str) -> str:
    """``imports/<model>/<upload>/``: one ``mlstack import``'s files (the ONNX file, the holdout,
    the original's answers, a training sample and a spec when given) and, last, its manifest."""
    return f"{IMPORTS_PREFIX}{model}/{upload}/"


def import_file_key(model: str, upload: str, file_name: str) -> str:
    return f"{import_prefix(model, upload)}{file_name}"


def feedback_prefix(model: str) -> str:
    """``feedback/<model>/`` in the data bucket: the labels users upload."""
    return f"{FEEDBACK_PREFIX}{model}/"


def feedback_key(model: str, file_name: str) -> str:
    return f"{feedback_prefix(model)}{file_name}"


# ----------------------------------------------------------------------------- model bucket
RUNS_PREFIX = "runs/"
MODELS_PREFIX = "models/"  # Register's alone (the bucket policy)
# The Distributed Map's ResultWriter writes here (statemachine/training.asl.json), and only it.
MAP_RUNS_PREFIX = "map-runs/"
REPORTS_PREFIX = "reports/"
# Captures have a prefix of their own, so one lifecycle rule expires them (CaptureRetentionDays).
CAPTURES_PREFIX = "captures/"
MONITORING_PREFIX = "monitoring/"


def run_prefix(model: str, run_id: str) -> str:
    return f"{RUNS_PREFIX}{model}/{run_id}"


def train_split_key(model: str, run_id: str) -> str:
    return f"{run_prefix(model, run_id)}/train.csv"


def holdout_split_key(model: str, run_id: str) -> str:
    return f"{run_prefix(model, run_id)}/holdout.csv"


def train_inputs_key(model: str, run_id: str) -> str:
    """The training split's model inputs and target as arrays (split_inputs.py)."""
    return f"{run_prefix(model, run_id)}/train.npz"


def holdout_inputs_key(model: str, run_id: str) -> str:
    return f"{run_prefix(model, run_id)}/holdout.npz"


def folds_key(model: str, run_id: str) -> str:
    """A run judged by cross-validation: which fold each row is in, per repeat (folds.py)."""
    return f"{run_prefix(model, run_id)}/folds.npy"


def candidates_key(model: str, run_id: str) -> str:
    """The candidate list of a grid too large for the execution state (Distributed Map)."""
    return f"{run_prefix(model, run_id)}/candidates.json"


def candidate_prefix(model: str, run_id: str, candidate_id: str) -> str:
    return f"{run_prefix(model, run_id)}/candidates/{candidate_id}"


def candidate_onnx_key(model: str, run_id: str, candidate_id: str) -> str:
    """Train: the candidate's ONNX export, what Evaluate scores and Register copies."""
    return f"{candidate_prefix(model, run_id, candidate_id)}/model.onnx"


def candidate_pipeline_key(model: str, run_id: str, candidate_id: str) -> str:
    """Train: the fitted scikit-learn pipeline (joblib)."""
    return f"{candidate_prefix(model, run_id, candidate_id)}/model.joblib"


def candidate_holdout_outputs_key(model: str, run_id: str, candidate_id: str) -> str:
    """Train: the pipeline's own outputs on the holdout, for Evaluate's parity check."""
    return f"{candidate_prefix(model, run_id, candidate_id)}/sklearn_holdout.npz"


def import_rows_key(model: str, run_id: str) -> str:
    """An import's holdout rows followed by its training sample's: the run's dataset."""
    return f"{run_prefix(model, run_id)}/import/rows.csv"


def prepared_run_key(model: str, run_id: str) -> str:
    """The preprocess task (the Fargate path): the run it prepared, which CollectPreparedRun
    puts into the state as Preprocess's Lambda returns it."""
    return f"{run_prefix(model, run_id)}/run.json"


def preprocess_task_error_key(model: str, run_id: str) -> str:
    """The preprocess task's named error, written before it exits with a failure."""
    return f"{run_prefix(model, run_id)}/tasks/preprocess/error.json"


def candidate_task_error_key(model: str, run_id: str, candidate_id: str) -> str:
    """A train task's named error, written before it exits with a failure."""
    return f"{candidate_prefix(model, run_id, candidate_id)}/error.json"


def candidate_result_key(model: str, run_id: str, candidate_id: str) -> str:
    """Train: the candidate's whole result (its cross-validation report, feature importance,
    warnings), which Evaluate reads; the Map's state carries only this key."""
    return f"{candidate_prefix(model, run_id, candidate_id)}/result.json"


def evaluation_key(model: str, run_id: str) -> str:
    return f"{run_prefix(model, run_id)}/evaluation.json"


def feature_baseline_key(model: str, run_id: str) -> str:
    """Preprocess: the training split's per-feature drift baseline."""
    return f"{run_prefix(model, run_id)}/feature_baseline.json"


def background_split_key(model: str, run_id: str) -> str:
    """Preprocess: a sample of the training rows, in the split files' format, that explanations
    compare each explained row with (mlstack_core.explain)."""
    return f"{run_prefix(model, run_id)}/background.csv"


def background_key(model: str, run_id: str) -> str:
    """Evaluate: those rows as a columnar request carries them, through the serving contract."""
    return f"{run_prefix(model, run_id)}/background.json"


def drift_baseline_key(model: str, run_id: str) -> str:
    """Evaluate: the feature baseline plus the winner's prediction distribution on the holdout."""
    return f"{run_prefix(model, run_id)}/drift_baseline.json"


def holdout_predictions_key(model: str, run_id: str) -> str:
    """Evaluate: the holdout target and the winner's and production's outputs on it (reports)."""
    return f"{run_prefix(model, run_id)}/holdout_predictions.npz"


def version_prefix(model: str, version: int) -> str:
    return f"{MODELS_PREFIX}{model}/{version}"


def version_file_key(model: str, version: int, file_name: str) -> str:
    """A file beside a registered version: its model, metadata, card, copied run files."""
    return f"{version_prefix(model, version)}/{file_name}"


def version_model_key(model: str, version: int) -> str:
    return version_file_key(model, version, "model.onnx")


def version_metadata_key(model: str, version: int) -> str:
    return version_file_key(model, version, "metadata.json")


# Files Register copies next to each version's model.onnx, by name.
VERSION_FILES = {
    "background": "background.json",
    "baseline": "baseline.json",
    "evaluation": "evaluation.json",
    "predictions": "holdout_predictions.npz",
}


def report_plot_key(model: str, version: int, file_name: str) -> str:
    """``reports/<model>/<version>/<plot>.png``: ``mlstack report``'s plots (user side;
    ``models/`` is Register's alone)."""
    return f"{REPORTS_PREFIX}{model}/{version}/{file_name}"


# What the prediction function writes is dated and keyed per container (``writer``) and write,
# so that containers never overwrite each other and a reader lists only the days it needs.
def dated_key(base: str, at: float, writer: str, sequence: int, suffix: str) -> str:
    """``<base><YYYY-MM-DD>/<HHMMSS>-<writer>-<sequence><suffix>``."""
    moment = datetime.fromtimestamp(at, UTC)
    return (
        f"{dated_prefix(base, moment.strftime('%Y-%m-%d'))}"
        f"{moment.strftime('%H%M%S')}-{writer}-{sequence:06d}{suffix}"
    )


def dated_prefix(base: str, day: str | None) -> str:
    """``<base>[<YYYY-MM-DD>/]``: one day's objects, or all of them."""
    return f"{base}{day}/" if day else base


def summaries_prefix(model: str, version: int, day: str | None = None) -> str:
    """``monitoring/<model>/<version>/summaries/[<YYYY-MM-DD>/]``: the drift summaries."""
    return dated_prefix(f"{MONITORING_PREFIX}{model}/{version}/summaries/", day)


def summary_key(model: str, version: int, at: float, writer: str, sequence: int) -> str:
    return dated_key(summaries_prefix(model, version), at, writer, sequence, ".json")


def summary_time(key: str) -> float | None:
    """When a summary was written, from its key (None if the key is not a summary key)."""
    parts = key.rsplit("/", 2)
    if len(parts) != 3:
        return None
    try:
        moment = datetime.strptime(f"{parts[1]} {parts[2][:6]}", "%Y-%m-%d %H%M%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def drift_report_key(model: str, version: int, at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H%M%SZ")
    return f"{MONITORING_PREFIX}{model}/{version}/reports/{moment}.json"


def latest_drift_report_key(model: str) -> str:
    return f"{MONITORING_PREFIX}{model}/latest.json"


def quality_report_key(model: str, at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H%M%SZ")
    return f"{MONITORING_PREFIX}{model}/quality/{moment}.json"


def latest_quality_key(model: str) -> str:
    return f"{MONITORING_PREFIX}{model}/quality-latest.json"


def captures_prefix(model: str, version: int, day: str | None = None) -> str:
    """``captures/<model>/<version>/[<YYYY-MM-DD>/]``: the ground-truth captures."""
    return dated_prefix(f"{CAPTURES_PREFIX}{model}/{version}/", day)


def capture_key(model: str, version: int, at: float, writer: str, sequence: int) -> str:
    return dated_key(captures_prefix(model, version), at, writer, sequence, ".jsonl")
