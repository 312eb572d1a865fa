"""``mlstack feedback`` and ``mlstack monitor``: labels in, the Monitor's answers out.

``feedback MODEL FILE`` checks the file's header against what the Monitor joins on (request_id
and row, or the spec's quality.key, and the label in the target's column or ``label``) and puts
it under ``feedback/<model>/``. ``monitor MODEL`` prints the Monitor's latest drift and quality
reports; with ``--now`` it first runs the scheduled checks for that model (the stack's
MonitorFunction, invoked as its schedule would) and says what they did.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from mlstack.cli.errors import CommandError, CommandRefused, RunFailed
from mlstack.cli.stack import StackClient
from mlstack_core.ground_truth import feedback_problem, join_key
from mlstack_core.storage_keys import (
    feedback_key,
    latest_drift_report_key,
    latest_quality_key,
    model_name_problem,
)


def upload_feedback(client: StackClient, model: str, path: Path) -> dict[str, Any]:
    problem = model_name_problem(model)
    if problem:
        raise CommandError(problem)
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    body = path.read_bytes()
    text = body.decode("utf-8-sig", errors="replace")
    header = next(csv.reader(io.StringIO(text)), [])
    spec = client.stored_spec(model) or {}
    quality = spec.get("quality") or {}
    key = join_key(quality)
    problem = feedback_problem(header, spec.get("target"), key, None if key else quality.get("key"))
    if problem:
        raise CommandError(f"{path}: {problem}; its header is {', '.join(header[:12])}")
    rows = max(0, len(text.splitlines()) - 1)
    bucket = client.outputs["DataBucketName"]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    key = feedback_key(model, f"{path.stem}-{stamp}.csv")
    client.session.client("s3").put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="text/csv"
    )
    if not quality.get("capture"):
        print(
            f"note: {model}'s spec does not set quality.capture, so there are no captured "
            "predictions to join these labels to"
        )
    return {"bucket": bucket, "key": key, "rows": rows}


def run_checks(client: StackClient, model: str) -> dict[str, Any]:
    """The scheduled checks, now, for one model: the MonitorFunction's own answer."""
    name = client.function_name("MonitorFunction")
    response = client.session.client("lambda").invoke(
        FunctionName=name, Payload=json.dumps({"models": [model]}).encode()
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        raise RunFailed(f"the Monitor failed: {payload}")
    results = [r for r in (payload or {}).get("models", []) if r.get("model") == model]
    if not results:
        raise CommandRefused(f"the Monitor did not check {model!r}")
    result: dict[str, Any] = results[0]
    return result


def latest_reports(client: StackClient, model: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, key in (
        ("drift", latest_drift_report_key(model)),
        ("quality", latest_quality_key(model)),
    ):
        body = client.stored_bytes("ModelBucketName", key)
        found[name] = json.loads(body) if body is not None else None
    return found


def describe_drift(drift: dict[str, Any] | None) -> list[str]:
    if not drift:
        return ["drift: no check yet"]
    status = drift.get("status")
    lines = [
        f"drift of version {drift.get('version')}: {status} "
        f"({drift.get('rows', 0)} sampled rows; threshold {drift.get('threshold')})"
    ]
    features = drift.get("features") or []
    if features:
        lines.append(f"  {'feature':<30} {'PSI':>8}")
        for feature in features[:20]:
            flag = "  drifted" if feature["psi"] >= (drift.get("threshold") or 0.25) else ""
            outside = feature.get("outside_range")
            if outside:  # served values past the training range: dates after it, new words
                flag += f"  ({outside:.0%} outside the training range)"
            lines.append(f"  {feature['name'][:30]:<30} {feature['psi']:>8.3f}{flag}")
    if drift.get("prediction_psi") is not None:
        lines.append(f"  predictions PSI {drift['prediction_psi']:.3f}")
    retraining = drift.get("retraining")
    if status == "drift":
        lines.append("  did: alerted" + _retraining_words(retraining))
    return lines


def describe_quality(quality: dict[str, Any] | None) -> list[str]:
    if not quality:
        return ["quality: no check yet"]
    if quality.get("status") == "not captured":
        return ["quality: not captured (set quality.capture in the spec to record predictions)"]
    lines = [
        f"quality of production version {quality.get('production_version')}: "
        f"{quality.get('status')} ({quality.get('feedback_files', 0)} feedback files)"
    ]
    versions = quality.get("versions") or []
    if versions:
        lines.append(
            f"  {'version':>7} {'day':<10} {'labelled':>8} {'metric':<10} {'value':>8} "
            f"{'holdout':>8}"
        )
        for entry in versions:
            holdout = entry.get("holdout")
            for day in entry.get("days") or []:
                lines.append(
                    f"  {entry['version']:>7} {day['day']:<10} {day['rows']:>8} "
                    f"{day['metric']!s:<10} {_figure(day.get('value')):>8} {_figure(holdout):>8}"
                )
            lines.append(
                f"  {entry['version']:>7} {'window':<10} {entry['rows']:>8} "
                f"{entry['metric']!s:<10} {_figure(entry.get('value')):>8} "
                f"{_figure(holdout):>8}  {entry.get('status')}"
                f" (of {entry.get('captured_rows', 0)} captured)"
            )
            for reason in entry.get("reasons") or []:
                lines.append(f"    {reason}")
    for problem in quality.get("feedback_problems") or []:
        lines.append(f"  feedback not read: {problem}")
    action = quality.get("action")
    if action == "nothing":
        lines.append("  did: nothing")
    elif action:
        lines.append("  did: alerted" + _retraining_words(quality.get("retraining")))
    return lines


def _retraining_words(retraining: dict[str, Any] | None) -> str:
    if not retraining:
        return ""
    if retraining.get("execution_arn") and retraining.get("started"):
        return f"; started training run {retraining['execution_arn']}"
    if retraining.get("started"):
        return (
            f"; wrote {retraining['dataset']} ({retraining.get('labelled_rows')} labelled rows "
            "added to the newest dataset), whose upload starts a training run"
        )
    return f"; no retraining ({retraining.get('reason')})"


def retraining_run(client: StackClient, quality: dict[str, Any] | None) -> str | None:
    """The training run a quality check's new dataset started, once the trigger started it."""
    retraining = (quality or {}).get("retraining") or {}
    if not retraining.get("started") or not retraining.get("dataset"):
        return None
    upload = {"bucket": client.outputs["DataBucketName"], "key": retraining["dataset"]}
    try:
        return client.find_execution(upload, timeout=30)
    except TimeoutError:
        return None


def _figure(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
