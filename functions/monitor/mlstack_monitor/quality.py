"""Ground-truth quality: is the model still right?

Users upload true labels under ``feedback/<model>/*.csv`` in the data bucket (or ``mlstack
feedback MODEL FILE``): a ``request_id`` and ``row`` column (what the API answered with), or the
spec's ``quality.key`` column, and the label in a column named after the target (or ``label``).
A later file overrides an earlier one for the same prediction.

For each version of the model with captures in the last ``quality.window_days`` days
(``mlstack_core.capture``), the captured answers are joined to the labels and scored with the
evaluation's own metrics (``mlstack_core.scoring``), per day and over the window. The version's
quality has fallen when, with at least ``quality.min_rows`` labelled rows, its metric is past the
spec's ``quality.threshold`` or worse than its holdout score by more than ``quality.margin``.
Then the Monitor alerts, and with ``quality.action`` ``retrain`` it writes the newest dataset plus
the labelled rows as a new dataset under ``datasets/<model>/``, which starts a training run as
any upload does (once per production version and feedback state: the key is derived from them).

The report goes to ``monitoring/<model>/quality/<time>.json`` and
``monitoring/<model>/quality-latest.json`` in the model bucket.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlstack_core.drift import days_between
from mlstack_core.ground_truth import (
    LABEL_COLUMN,
    captures_prefix,
    feedback_prefix,
    feedback_problem,
    latest_quality_key,
    quality_report_key,
    quality_settings,
)
from mlstack_core.observability.pipeline import MetricUnit, logger, metrics, tracer
from mlstack_core.registry import Registry
from mlstack_core.scoring import classification_metrics, regression_metrics
from mlstack_core.spec import greater_is_better
from mlstack_core.tabular import CLASSIFICATION, LABEL_CASTS
from mlstack_monitor import alerts
from mlstack_monitor.datasets import latest_dataset

MAX_FEEDBACK_FILES = 1000
MAX_CAPTURE_FILES = 5000


class Feedback:
    """Every uploaded label, by (request id, row) and by key; later files win."""

    def __init__(self) -> None:
        self.by_request: dict[tuple[str, int], str] = {}
        self.by_key: dict[str, str] = {}
        self.files: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def read(self, name: str, text: str, target: str | None, key: str | None) -> None:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        if feedback_problem(header, target, key):
            wanted = "request_id and row" + (f", or {key}" if key else "")
            self.problems.append(
                f"{name}: needs {wanted} and the label in {target or LABEL_COLUMN!r} "
                f"(its header: {', '.join(header[:10])})"
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
        found = self.by_request.get((str(capture.get("request_id")), int(capture.get("row", -1))))
        if found is None and capture.get("key") is not None:
            found = self.by_key.get(str(capture["key"]))
        return found

    def identity(self) -> str:
        """Changes whenever the set of feedback files does."""
        names = json.dumps(sorted((f["key"], f["rows"]) for f in self.files))
        return hashlib.sha256(names.encode()).hexdigest()[:16]


@tracer.capture_method
def read_feedback(
    s3: Any, bucket: str, model: str, target: str | None, key: str | None
) -> Feedback:
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=feedback_prefix(model)
    ):
        listed += [item for item in page.get("Contents", []) if item["Key"].endswith(".csv")]
    listed.sort(key=lambda item: (item["LastModified"], item["Key"]))  # later files win
    feedback = Feedback()
    for item in listed[-MAX_FEEDBACK_FILES:]:
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        feedback.read(item["Key"], body.decode("utf-8-sig", errors="replace"), target, key)
    return feedback


@tracer.capture_method
def read_captures(
    s3: Any, bucket: str, model: str, version: int, days: list[str]
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


def score_joined(
    document: dict[str, Any], joined: list[tuple[dict[str, Any], str]]
) -> dict[str, Any]:
    """The evaluation's metrics on labelled captures: the answers the API gave, against the
    labels users sent. Labels are read as the version's label type; for a classifier, rows
    whose label is not one of its classes count against it in accuracy, and are left out of the
    metrics that need a known class (log_loss, roc_auc)."""
    schema = document.get("schema") or {}
    task = schema.get("task") or document.get("task") or CLASSIFICATION
    metric = str(document.get("metric") or ("accuracy" if task == CLASSIFICATION else "r2"))
    if task != CLASSIFICATION:
        # A label that is not a number, or an answer that was not one (null), cannot be scored.
        pairs = [
            (truth, predicted)
            for capture, label in joined
            if (truth := _finite(label)) is not None
            and (predicted := _finite(capture["prediction"])) is not None
        ]
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
    else:
        cast = LABEL_CASTS.get(str(schema.get("label_type") or "str"), str)
        classes = list(schema.get("classes") or [])
        y_true_all = np.array([_label(cast, label) for _, label in joined], dtype=object)
        y_pred_all = np.array([c["prediction"] for c, _ in joined], dtype=object)
        known = np.array([label in classes for label in y_true_all.tolist()])
        scores = {"accuracy": float(np.mean(y_true_all == y_pred_all))}
        with_probabilities = known & np.array(
            [c.get("probabilities") is not None for c, _ in joined]
        )
        if with_probabilities.any():
            probabilities = np.array(
                [
                    c["probabilities"]
                    for (c, _), keep in zip(joined, with_probabilities, strict=True)
                    if keep
                ],
                dtype=float,
            )
            full = classification_metrics(
                y_true_all[with_probabilities],
                y_pred_all[with_probabilities],
                probabilities,
                classes,
            )
            scores = {**full, "accuracy": scores["accuracy"]}
        scores["unknown_labels"] = int((~known).sum())
    return {"metric": metric, "value": scores.get(metric), "scores": scores, "rows": len(joined)}


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


def judge(
    document: dict[str, Any], overall: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """Has quality fallen? Only with enough rows; says what fell and by how much."""
    metric, value, rows = overall["metric"], overall["value"], overall["rows"]
    holdout = (document.get("metrics") or {}).get(metric)
    verdict: dict[str, Any] = {"holdout": holdout, "reasons": []}
    if rows < int(config["min_rows"]) or value is None:
        verdict["status"] = "not enough labels"
        return verdict
    better = greater_is_better(metric)
    threshold = config.get("threshold")
    if threshold is not None and (value < threshold if better else value > threshold):
        verdict["reasons"].append(
            f"{metric} {value:.4f} on {rows} labelled rows is past the threshold {threshold}"
        )
    margin = float(config["margin"])
    if holdout is not None:
        drop = (holdout - value) if better else (value - holdout)
        verdict["drop"] = drop
        if drop > margin:
            verdict["reasons"].append(
                f"{metric} {value:.4f} on {rows} labelled rows is {drop:.4f} worse than the "
                f"holdout's {holdout:.4f} (allowed: {margin})"
            )
    verdict["status"] = "fallen" if verdict["reasons"] else "holding"
    return verdict


@tracer.capture_method
def check_quality(
    model: str, registry: Registry, s3: Any, settings: Any, now: float
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
    schema = reference.get("schema") or {}
    feedback = read_feedback(
        s3, settings.data_bucket, model, schema.get("target"), config.get("key")
    )
    days = window_days(now, int(config["window_days"]))
    versions = []
    labelled: dict[int, list[tuple[dict[str, Any], str]]] = {}
    for version, document in sorted(watched.items()):
        captures = read_captures(s3, settings.model_bucket, model, version, days)
        if not captures:
            continue
        joined = [(c, label) for c in captures if (label := feedback.label_of(c)) is not None]
        labelled[version] = joined
        by_day: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
        for capture, label in joined:
            by_day[capture["day"]].append((capture, label))
        overall = (
            score_joined(document, joined)
            if joined
            else {"metric": document.get("metric"), "value": None, "scores": {}, "rows": 0}
        )
        entry = {
            "version": version,
            "captured_rows": len(captures),
            **overall,
            "days": [
                {
                    "day": day,
                    **{k: v for k, v in score_joined(document, rows).items() if k != "scores"},
                }
                for day, rows in sorted(by_day.items())
            ],
            **judge(document, overall, quality_settings(document)),
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
                labelled[production],
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
    s3: Any,
    settings: Any,
    model: str,
    production: int,
    feedback: Feedback,
    target: str | None,
    labelled: list[tuple[dict[str, Any], str]],
) -> dict[str, Any]:
    """The newest dataset plus the labelled rows, as a new dataset: the upload starts a run."""
    newest = latest_dataset(s3, settings.data_bucket, model)
    if newest is None:
        return {"started": False, "reason": f"no datasets/{model}/*.csv to add the labels to"}
    name = f"datasets/{model}/feedback-v{production}-{feedback.identity()}.csv"
    if newest["key"] == name:
        return {"started": False, "reason": "already retrained on these labels", "dataset": name}
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
    writer = csv.writer(out, lineterminator="\n")
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
        "reasons": current["reasons"],
        "action": report["action"],
        "retraining": report.get("retraining"),
        "report_key": quality_report_key(model, datetime.fromisoformat(report["at"]).timestamp()),
    }
    alerts.publish_alert("mlstack: model quality fell", "QualityFell", model, message)
    metrics.add_metric(name="QualityAlerts", unit=MetricUnit.Count, value=1)
