"""Ground-truth quality: is the model still right?

Users upload true labels under ``feedback/<model>/*.csv`` in the data bucket (or ``mlstack
feedback MODEL FILE``): a ``request_id`` and ``row`` column (what the API answered with), or the
spec's ``quality.key`` column when the spec sets ``quality.key_trusted`` (its values are what
callers sent, so trusting it lets any caller attach rows to the labels:
``mlstack_core.ground_truth.join_key``), and the label in a column named after the target (or
``label``). A later file overrides an earlier one for the same prediction.

For each version of the model with captures in the last ``quality.window_days`` days
(``mlstack_core.capture``), the captured answers are joined to the labels and scored with the
evaluation's own metrics (``mlstack_core.model_metrics``), per day and over the window.

Once a version has at least ``quality.min_rows`` labelled rows, its quality is judged with the
training gate's statistics (``mlstack_core.evidence``), at the stack's gate confidence
(GateConfidence, 95 % by default), so a handful of unlucky rows does not alert. Quality has
fallen when either

- **it is worse than the holdout beyond noise**: the selection metric dropped from the version's
  holdout score to the labelled rows by more than ``quality.margin``, *and* the interval of the
  drop (holdout minus labelled rows, in the metric's good direction) lies entirely above 0. The
  holdout's own answers (the npz Evaluate stored, which Register copies next to the version) and
  the labelled rows are two independent samples: metrics that are means over rows (accuracy,
  log_loss, mae) get Welch's interval on the per-row values; the others (f1_macro,
  balanced_accuracy, roc_auc, r2, rmse) an unpaired bootstrap, each side resampled on its own. A
  version whose holdout answers cannot be read is compared with its holdout score as a fixed
  number, with the interval of the labelled rows alone (which leaves out the holdout's noise);
- **or it is past ``quality.threshold`` beyond noise**: the labelled rows' whole interval is on
  the wrong side of the threshold (its upper bound below it; its lower bound above it for
  log_loss, rmse and mae).

Then the Monitor alerts, and with ``quality.action`` ``retrain`` it writes the newest dataset a
user uploaded plus the labelled rows as a new dataset under ``datasets/_derived/<model>/``, which
starts a training run as any upload does (once per production version and feedback state: the
key is derived from them), and which a lifecycle rule expires after ``CaptureRetentionDays``, as
the captures it holds. It is rebuilt from the upload each time, never from an earlier derived
dataset, and each labelled row is in it once (by request id and row, or by the trusted key,
whatever the number of feedback files, captured versions and retrainings), so no row is added
twice and none can land in both the training split and the holdout by being duplicated.

The report goes to ``monitoring/<model>/quality/<time>.json`` and
``monitoring/<model>/quality-latest.json`` in the model bucket. Each judged version carries its
intervals and says in words what was found, e.g. "accuracy on 812 labelled rows 0.740 (95%
interval 0.710 to 0.770), holdout 0.810: down 0.070, interval 0.030 to 0.110, beyond noise: worse
than the holdout by more than the margin 0.05", or "... more than the margin 0.05 but within
noise: not alerted".
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from mlstack_core.documents import VersionDocument
from mlstack_core.drift import days_between
from mlstack_core.evidence import (
    PER_ROW_METRICS,
    Answers,
    Interval,
    Labelled,
    metric_interval,
    percent,
    unpaired_metric_difference,
)
from mlstack_core.ground_truth import LABEL_COLUMN, feedback_problem, join_key, quality_settings
from mlstack_core.model_metrics import classification_metrics, regression_metrics
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, tracer
from mlstack_core.registry import Registry
from mlstack_core.settings import guard_settings
from mlstack_core.spec import greater_is_better
from mlstack_core.storage_keys import (
    captures_prefix,
    dataset_prefix,
    feedback_dataset_key,
    feedback_prefix,
    holdout_predictions_key,
    latest_quality_key,
    quality_report_key,
)
from mlstack_core.tabular import LABEL_CASTS
from mlstack_core.tasks import CLASSIFICATION
from mlstack_monitor import alerts
from mlstack_monitor.datasets import latest_dataset

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_FEEDBACK_FILES = 1000
MAX_CAPTURE_FILES = 5000


# Which labelled row a capture is: ("request", request id, row) or ("key", the key's value).
RowIdentity = tuple[str, ...]


class Feedback:
    """Every uploaded label, by (request id, row) and by the trusted key; later files win."""

    def __init__(self) -> None:
        self.by_request: dict[tuple[str, int], str] = {}
        self.by_key: dict[str, str] = {}
        self.files: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def read(
        self,
        name: str,
        text: str,
        target: str | None,
        key: str | None,
        untrusted_key: str | None = None,
    ) -> None:
        """Read one file; ``key`` is the join key (``join_key``), ``untrusted_key`` a declared
        ``quality.key`` the spec does not trust, whose column is not joined."""
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        if feedback_problem(header, target, key):
            wanted = "request_id and row" + (f", or {key}" if key else "")
            untrusted = (
                f"; {untrusted_key} joins only with quality.key_trusted"
                if untrusted_key and untrusted_key in header
                else ""
            )
            self.problems.append(
                f"{name}: needs {wanted} and the label in {target or LABEL_COLUMN!r} "
                f"(its header: {', '.join(header[:10])}){untrusted}"
            )
            return
        label = target if target in header else LABEL_COLUMN
        by_request = "request_id" in header and "row" in header
        by_key = key is not None and key in header
        rows = 0
        for record in reader:
            value = record.get(label)
            if value is None or value == "":
                continue
            rows += 1
            if by_request and record.get("request_id") and str(record.get("row", "")).isdigit():
                self.by_request[(record["request_id"], int(record["row"]))] = value
            elif by_key and key is not None and record.get(key):
                self.by_key[str(record[key])] = value
        self.files.append({"key": name, "rows": rows})

    def label_of(self, capture: dict[str, Any]) -> str | None:
        joined = self.join(capture)
        return joined[1] if joined else None

    def join(self, capture: dict[str, Any]) -> tuple[RowIdentity, str] | None:
        """The labelled row this capture is, and its label; None when it has no label."""
        request = (str(capture.get("request_id")), int(capture.get("row", -1)))
        found = self.by_request.get(request)
        if found is not None:
            return ("request", request[0], str(request[1])), found
        if capture.get("key") is not None:
            value = str(capture["key"])
            found = self.by_key.get(value)
            if found is not None:
                return ("key", value), found
        return None

    def identity(self) -> str:
        """Changes whenever the set of feedback files does."""
        names = json.dumps(sorted((f["key"], f["rows"]) for f in self.files))
        return hashlib.sha256(names.encode()).hexdigest()[:16]


@tracer.capture_method
def read_feedback(
    s3: S3Client, bucket: str, model: str, target: str | None, quality: Mapping[str, Any]
) -> Feedback:
    """Every feedback file of ``model``, joined by request id and row, and by the spec's
    ``quality.key`` only when the spec trusts it."""
    key = join_key(quality)
    untrusted_key = None if key else quality.get("key")
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=feedback_prefix(model)
    ):
        listed += [item for item in page.get("Contents", []) if item["Key"].endswith(".csv")]
    listed.sort(key=lambda item: (item["LastModified"], item["Key"]))  # later files win
    feedback = Feedback()
    for item in listed[-MAX_FEEDBACK_FILES:]:
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        text = body.decode("utf-8-sig", errors="replace")
        feedback.read(item["Key"], text, target, key, untrusted_key)
    return feedback


@tracer.capture_method
def read_captures(
    s3: S3Client, bucket: str, model: str, version: int, days: list[str]
) -> list[dict[str, Any]]:
    captures: list[dict[str, Any]] = []
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for day in days:
        for page in paginator.paginate(Bucket=bucket, Prefix=captures_prefix(model, version, day)):
            keys += [item["Key"] for item in page.get("Contents", [])]
    for key in sorted(keys)[-MAX_CAPTURE_FILES:]:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        day = key.rsplit("/", 2)[-2]
        for line in body.splitlines():
            if line.strip():
                captures.append({**json.loads(line), "day": day})
    return captures


def window_days(now: float, days: int) -> list[str]:
    """The last ``days`` UTC days, today included."""
    return days_between(now - (days - 1) * 86400, now)


def measure_joined(
    document: VersionDocument, joined: list[tuple[dict[str, Any], str]]
) -> dict[str, Any]:
    """The evaluation's metrics on labelled captures: the answers the API gave, against the
    labels users sent. Labels are read as the version's label type; for a classifier, rows
    whose label is not one of its classes count against it in accuracy, and are left out of the
    metrics that need a known class (log_loss, roc_auc)."""
    task, metric = task_and_metric(document)
    if task != CLASSIFICATION:
        pairs = _regression_pairs(joined)
        unusable = len(joined) - len(pairs)
        if not pairs:
            return {
                "metric": metric,
                "value": None,
                "scores": {"unusable_labels": unusable},
                "rows": 0,
            }
        y_true, y_pred = (np.array(side, dtype=np.float64) for side in zip(*pairs, strict=True))
        scores = {**regression_metrics(y_true, y_pred), "unusable_labels": unusable}
        return {"metric": metric, "value": scores.get(metric), "scores": scores, "rows": len(pairs)}
    rows = _ClassifierRows(document, joined)
    scores = {"accuracy": float(np.mean(rows.y_true == rows.y_pred))}
    if rows.scored.any():
        full = classification_metrics(
            rows.y_true[rows.scored], rows.y_pred[rows.scored], rows.probabilities, rows.classes
        )
        scores = {**full, "accuracy": scores["accuracy"]}
    scores["unknown_labels"] = int((~rows.known).sum())
    return {"metric": metric, "value": scores.get(metric), "scores": scores, "rows": len(joined)}


def task_and_metric(document: VersionDocument) -> tuple[str, str]:
    schema: Mapping[str, Any] = document.get("schema") or {}
    task = schema.get("task") or document.get("task") or CLASSIFICATION
    return task, str(document.get("metric") or ("accuracy" if task == CLASSIFICATION else "r2"))


def _regression_pairs(joined: list[tuple[dict[str, Any], str]]) -> list[tuple[float, float]]:
    # A label that is not a number, or an answer that was not one (null), cannot be scored.
    return [
        (truth, predicted)
        for capture, label in joined
        if (truth := _finite(label)) is not None
        and (predicted := _finite(capture["prediction"])) is not None
    ]


class _ClassifierRows:
    """A classifier's labelled captures: every row's label (as the version's label type) and
    answer, and the probabilities of the rows whose label is a known class and that have them."""

    def __init__(self, document: VersionDocument, joined: list[tuple[dict[str, Any], str]]):
        schema: Mapping[str, Any] = document.get("schema") or {}
        cast = LABEL_CASTS.get(str(schema.get("label_type") or "str"), str)
        self.classes: list[Any] = list(schema.get("classes") or [])
        self.y_true = np.array([_label(cast, label) for _, label in joined], dtype=object)
        self.y_pred = np.array([c["prediction"] for c, _ in joined], dtype=object)
        self.known = np.array([label in self.classes for label in self.y_true.tolist()], bool)
        self.scored = self.known & np.array(
            [c.get("probabilities") is not None for c, _ in joined], dtype=bool
        )
        self.probabilities = (
            np.array(
                [c["probabilities"] for (c, _), k in zip(joined, self.scored, strict=True) if k],
                dtype=float,
            )
            if self.scored.any()
            else np.zeros((0, len(self.classes)))
        )


def labelled_answers(
    document: VersionDocument, joined: list[tuple[dict[str, Any], str]], metric: str
) -> Labelled | None:
    """The rows ``measure_joined`` scores ``metric`` on, as the evidence's ``Labelled``."""
    task, _ = task_and_metric(document)
    if task != CLASSIFICATION:
        pairs = _regression_pairs(joined)
        if not pairs:
            return None
        y_true, y_pred = (np.array(side, dtype=np.float64) for side in zip(*pairs, strict=True))
        return Labelled(y_true, [], Answers(values=y_pred))
    rows = _ClassifierRows(document, joined)
    if metric == "accuracy":
        return Labelled(rows.y_true, rows.classes, Answers(labels=rows.y_pred))
    if not rows.scored.any():
        return None
    return Labelled(
        rows.y_true[rows.scored],
        rows.classes,
        Answers(labels=rows.y_pred[rows.scored], probabilities=rows.probabilities),
    )


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _label(cast: Any, text: str) -> Any:
    try:
        value = cast(float(text)) if cast is int else cast(text)
    except ValueError:
        return text
    return value


@tracer.capture_method
def holdout_answers(
    s3: S3Client, bucket: str, model: str, document: VersionDocument
) -> tuple[Labelled | None, str | None]:
    """The version's answers on its holdout, as Evaluate stored them (copied next to the version
    by Register, else still under the run), or None and why not."""
    key = (document.get("files") or {}).get("predictions")
    if not key and document.get("run_id"):
        key = holdout_predictions_key(model, str(document["run_id"]))
    if not key:
        return None, "its holdout answers were not stored"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with np.load(io.BytesIO(body), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except Exception:  # an old or expired run: judge against the holdout score alone
        logger.warning("Holdout answers not readable", extra={"model": model, "key": key})
        return None, f"its holdout answers ({key}) could not be read"
    task, _ = task_and_metric(document)
    y = arrays.get("y")
    # Judged by cross-validation, the out-of-fold answers are the ones rows it never saw get.
    answered = "estimate" if any(n.startswith("estimate_") for n in arrays) else "best"
    if task != CLASSIFICATION:
        values = arrays.get(f"{answered}_variable")
        if y is None or values is None or values.size != y.size:
            return None, f"its holdout answers ({key}) lack the winner's values"
        return Labelled(y.astype(np.float64).ravel(), [], Answers(values=values.ravel())), None
    labels = arrays.get(f"{answered}_label")
    probabilities = arrays.get(f"{answered}_probabilities")
    if y is None or labels is None or probabilities is None or "classes" not in arrays:
        return None, f"its holdout answers ({key}) lack the winner's labels and probabilities"
    # Stored as text where the labels were (numpy's npz keeps no Python objects).
    classes = [str(c) for c in arrays["classes"]]
    if probabilities.shape != (y.size, len(classes)) or labels.size != y.size:
        return None, f"its holdout answers ({key}) do not match its classes"
    return (
        Labelled(
            y.astype(str),
            classes,
            Answers(labels=labels.astype(str), probabilities=probabilities.astype(np.float64)),
        ),
        None,
    )


def judge(
    document: VersionDocument,
    joined: list[tuple[dict[str, Any], str]],
    config: dict[str, Any],
    *,
    holdout: Labelled | None,
    confidence: float,
    holdout_problem: str | None = None,
) -> dict[str, Any]:
    """Has quality fallen beyond noise? Only with enough rows; says in words what was found
    (``summary``) and, when it fell, why (``reasons``), with the intervals it read."""
    overall: dict[str, Any] = (
        measure_joined(document, joined)
        if joined
        else {"metric": task_and_metric(document)[1], "value": None, "rows": 0}
    )
    metric, value, rows = overall["metric"], overall["value"], overall["rows"]
    holdout_score = (document.get("metrics") or {}).get(metric)
    verdict: dict[str, Any] = {"holdout": holdout_score, "reasons": [], "confidence": confidence}
    labelled = labelled_answers(document, joined, metric) if value is not None else None
    if rows < int(config["min_rows"]) or value is None or labelled is None:
        verdict["status"] = "not enough labels"
        verdict["summary"] = (
            f"{rows} labelled rows, fewer than min_rows {config['min_rows']}: not judged"
            if rows < int(config["min_rows"])
            else f"{metric} cannot be computed on the {rows} labelled rows: not judged"
        )
        return verdict
    better = greater_is_better(metric)
    sign = 1.0 if better else -1.0
    drop_interval: Interval | None = None
    if holdout is not None:
        holdout_interval, interval, drop_interval = unpaired_metric_difference(
            metric, holdout, labelled, confidence
        )
        if holdout_score is None:
            holdout_score = holdout_interval.estimate
        # The registered score is the estimate (judged by cross-validation, it is pooled over
        # repeats and the stored answers are one repeat's); the stored rows give its noise.
        holdout_interval = _centred(holdout_interval, float(holdout_score))
        drop_interval = _centred(drop_interval, sign * (float(holdout_score) - float(value)))
        verdict.update(
            compared_with="holdout rows",
            test="Welch" if metric in PER_ROW_METRICS else "unpaired bootstrap",
            holdout_interval=holdout_interval.document(),
            holdout_rows=holdout.rows,
        )
    else:
        interval = metric_interval(metric, labelled, confidence)
        if holdout_score is not None:
            # The holdout score as a fixed number: only the labelled rows' noise.
            ends = sorted(sign * (holdout_score - end) for end in (interval.low, interval.high))
            estimate = sign * (float(holdout_score) - float(value))
            drop_interval = Interval(estimate, ends[0], ends[1], confidence, rows)
        verdict.update(
            compared_with="holdout score" if holdout_score is not None else None,
            test="one-sample t" if metric in PER_ROW_METRICS else "one-sample bootstrap",
            holdout_interval=None,
            holdout_rows=None,
        )
    # The reported value is the evaluation's own metric; the interval is around it.
    interval = _centred(interval, float(value))
    verdict["interval"] = interval.document()
    head = (
        f"{metric} on {rows} labelled rows {_figure(value)} "
        f"({percent(confidence)} interval {_span(interval)})"
    )
    sentences: list[tuple[str, bool]] = []
    verdict["drop_interval"] = drop_interval.document() if drop_interval else None
    verdict["drop_beyond_noise"] = None
    if drop_interval is not None and holdout_score is not None:
        margin = float(config["margin"])
        drop = drop_interval.estimate
        beyond = drop_interval.low > 0
        verdict["drop"] = drop
        verdict["drop_beyond_noise"] = beyond
        # Worse is down for a score, up for a loss; the interval is always of the worsening.
        worse, improved = ("down", "up") if better else ("up", "down")
        if drop >= 0:
            moved = f"{worse} {_figure(drop)}, interval {_span(drop_interval)}"
        else:
            moved = f"{improved} {_figure(-drop)} (worsening interval {_span(drop_interval)})"
        if drop > margin and beyond:
            judged = f"beyond noise: worse than the holdout by more than the margin {margin}"
        elif drop > margin:
            judged = f"more than the margin {margin} but within noise: not alerted"
        elif beyond:
            judged = f"beyond noise but within the margin {margin}: not alerted"
        else:
            judged = f"within noise and the margin {margin}"
        source = "" if holdout is not None else f" (score only: {holdout_problem or 'no rows'})"
        sentences.append(
            (
                f"{head}, holdout {_figure(holdout_score)}{source}: {moved}, {judged}",
                drop > margin and beyond,
            )
        )
    threshold = config.get("threshold")
    verdict["past_threshold"] = None
    if threshold is not None:
        side = "below" if better else "above"
        past_point = value < threshold if better else value > threshold
        past = interval.high < threshold if better else interval.low > threshold
        verdict["past_threshold"] = past
        if past:
            sentences.append((f"{head} is {side} the threshold {threshold} beyond noise", True))
        elif past_point:
            sentences.append(
                (f"{head} is {side} the threshold {threshold} but within noise: not alerted", False)
            )
    if not sentences:
        sentences.append((f"{head}, no holdout score or threshold to compare with", False))
    verdict["reasons"] = [text for text, alerting in sentences if alerting]
    verdict["summary"] = "; ".join(text for text, _ in sentences)
    verdict["status"] = "fallen" if verdict["reasons"] else "holding"
    return verdict


def _centred(interval: Interval, estimate: float) -> Interval:
    """The same interval moved to centre on ``estimate`` (the same number but for rounding, or a
    better estimate of it)."""
    shift = estimate - interval.estimate if math.isfinite(interval.estimate) else 0.0
    return Interval(
        estimate, interval.low + shift, interval.high + shift, interval.confidence, interval.rows
    )


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def _span(interval: Interval) -> str:
    return f"{_figure(interval.low)} to {_figure(interval.high)}"


@tracer.capture_method
def check_quality(
    model: str, registry: Registry, s3: S3Client, settings: Any, now: float
) -> dict[str, Any]:
    """Score every captured version of ``model`` against the labels; alert and retrain as the
    production version's spec says."""
    production = registry.get_alias(model)
    documents = {int(d["version"]): d for d in registry.list_versions(model)}
    watched = {v: d for v, d in documents.items() if quality_settings(d).get("capture")}
    if not watched:
        return {"status": "not captured", "versions": []}
    # The production version's spec decides what to do; without one, the newest captured.
    reference = documents[production] if production in documents else max(watched.items())[1]
    config = quality_settings(reference)
    schema: Mapping[str, Any] = reference.get("schema") or {}
    feedback = read_feedback(s3, settings.data_bucket, model, schema.get("target"), config)
    days = window_days(now, int(config["window_days"]))
    # The gate's confidence: ground truth is held to the evidence a version needed to ship.
    confidence = guard_settings().confidence
    versions = []
    # Every labelled row once, whichever versions captured it (a shadow answers the same request)
    # and however often its key was sent (the newest capture of it): what retraining adds.
    training_rows: dict[RowIdentity, tuple[dict[str, Any], str]] = {}
    for version, document in sorted(watched.items()):
        captures = read_captures(s3, settings.model_bucket, model, version, days)
        if not captures:
            continue
        joined = []
        for capture in captures:
            found = feedback.join(capture)
            if found is None:
                continue
            identity, label = found
            joined.append((capture, label))
            kept = training_rows.get(identity)
            if kept is None or float(capture.get("at") or 0) >= float(kept[0].get("at") or 0):
                training_rows[identity] = (capture, label)
        by_day: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
        for capture, label in joined:
            by_day[capture["day"]].append((capture, label))
        overall = (
            measure_joined(document, joined)
            if joined
            else {"metric": document.get("metric"), "value": None, "scores": {}, "rows": 0}
        )
        version_config = quality_settings(document)
        holdout, problem = None, None
        if overall["value"] is not None and overall["rows"] >= int(version_config["min_rows"]):
            holdout, problem = holdout_answers(s3, settings.model_bucket, model, document)
        entry = {
            "version": version,
            "captured_rows": len(captures),
            **overall,
            "days": [
                {
                    "day": day,
                    **{k: v for k, v in measure_joined(document, rows).items() if k != "scores"},
                }
                for day, rows in sorted(by_day.items())
            ],
            **judge(
                document,
                joined,
                version_config,
                holdout=holdout,
                confidence=confidence,
                holdout_problem=problem,
            ),
        }
        versions.append(entry)
    report: dict[str, Any] = {
        "model": model,
        "production_version": production,
        "at": datetime.fromtimestamp(now, UTC).isoformat(),
        "window_days": days,
        "feedback_files": len(feedback.files),
        "feedback_problems": feedback.problems[:20],
        "versions": versions,
    }
    current = next((v for v in versions if v["version"] == production), None)
    if current is not None and current["value"] is not None:
        metrics.add_metric(name="GroundTruthScore", unit=MetricUnit.NoUnit, value=current["value"])
    metrics.add_metric(
        name="GroundTruthRows", unit=MetricUnit.Count, value=current["rows"] if current else 0
    )
    report["status"] = current["status"] if current else "no labelled production rows"
    report["action"] = "nothing"
    if current is not None and production is not None and current["status"] == "fallen":
        report["action"] = "alert"
        if config["action"] == "retrain":
            report["retraining"] = retrain_with_feedback(
                s3,
                settings,
                model,
                production,
                feedback,
                schema.get("target"),
                list(training_rows.values()),
            )
            report["action"] = "retrain"
        publish_quality_alert(settings, model, current, report)
    key = quality_report_key(model, now)
    report["report_key"] = key
    body = json.dumps(report, default=str).encode()
    for target in (key, latest_quality_key(model)):
        s3.put_object(
            Bucket=settings.model_bucket, Key=target, Body=body, ContentType="application/json"
        )
    logger.info(
        "Quality checked",
        extra={"model": model, "status": report["status"], "action": report["action"]},
    )
    return report


def retrain_with_feedback(
    s3: S3Client,
    settings: Any,
    model: str,
    production: int,
    feedback: Feedback,
    target: str | None,
    labelled: list[tuple[dict[str, Any], str]],
) -> dict[str, Any]:
    """The newest upload plus the labelled rows (each once: ``check_quality`` keyed them), as a
    new derived dataset: the upload starts a run, the lifecycle rule of derived datasets expires
    it."""
    newest = latest_dataset(s3, settings.data_bucket, model)
    if newest is None:
        return {"started": False, "reason": f"no {dataset_prefix(model)}*.csv to add the labels to"}
    name = feedback_dataset_key(model, production, feedback.identity())
    try:
        s3.head_object(Bucket=settings.data_bucket, Key=name)
        return {"started": False, "reason": "already retrained on these labels", "dataset": name}
    except Exception:  # not there yet
        pass
    request = {"Bucket": newest["bucket"], "Key": newest["key"]}
    if newest.get("version_id"):
        request["VersionId"] = newest["version_id"]
    text = s3.get_object(**request)["Body"].read().decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(text)))
    if target not in header:
        return {"started": False, "reason": f"{newest['key']} has no {target!r} column"}
    out = io.StringIO()
    out.write(text if text.endswith("\n") else text + "\n")
    # CSV's own line ending, so a captured text holding a bare "\r" is quoted, not split.
    writer = csv.writer(out, lineterminator="\r\n")
    for capture, label in labelled:
        features = {**capture.get("features", {}), target: label}
        writer.writerow(["" if features.get(c) is None else features.get(c) for c in header])
    s3.put_object(
        Bucket=settings.data_bucket, Key=name, Body=out.getvalue().encode(), ContentType="text/csv"
    )
    metrics.add_metric(name="RetrainingRunsStarted", unit=MetricUnit.Count, value=1)
    return {"started": True, "dataset": name, "labelled_rows": len(labelled), "from": newest["key"]}


def publish_quality_alert(
    settings: Any, model: str, current: dict[str, Any], report: dict[str, Any]
) -> None:
    message = {
        "model": model,
        "version": current["version"],
        "metric": current["metric"],
        "value": current["value"],
        "holdout": current.get("holdout"),
        "drop": current.get("drop"),
        "labelled_rows": current["rows"],
        "confidence": current.get("confidence"),
        "interval": current.get("interval"),
        "holdout_interval": current.get("holdout_interval"),
        "drop_interval": current.get("drop_interval"),
        "compared_with": current.get("compared_with"),
        "summary": current.get("summary"),
        "reasons": current["reasons"],
        "action": report["action"],
        "retraining": report.get("retraining"),
        "report_key": quality_report_key(model, datetime.fromisoformat(report["at"]).timestamp()),
    }
    alerts.publish_alert("mlstack: model quality fell", "QualityFell", model, message)
    metrics.add_metric(name="QualityAlerts", unit=MetricUnit.Count, value=1)
