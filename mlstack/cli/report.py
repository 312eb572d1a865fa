"""``mlstack report NAME [VERSION]``: a version's evaluation as PNG plots, drawn on the user's side.

Evaluate stores what the plots need and Register copies it beside the version, so no Lambda
package carries matplotlib:

- ``models/<model>/<version>/evaluation.json``: every candidate's metrics, parity, the champion's
  and the trivial baseline's metrics (with the intervals of the winner's, the champion's and the
  baseline's), the gate's reasons and evidence, the winner's feature importance;
- ``models/<model>/<version>/holdout_predictions.npz``: the holdout target ``y`` and the ONNX
  outputs of the winner (``best_*``) and of the production version it was compared with
  (``champion_*``, when there was one) on the same rows.

Plots, challenger and champion side by side where both exist: ``metrics.png`` (both and the
baseline on every metric, with the intervals Evaluate stored as whiskers); classifiers
``confusion_matrix.png``, ``roc.png``, ``pr.png``; regressors ``predicted_vs_actual.png``,
``residuals.png``; ``feature_importance.png``: each column's mean absolute contribution on
holdout rows, for every family (a version trained before explanations: the family's own
importance, which knn and HistGradientBoosting lack, and the report says so). The PNGs are
written to ``--out`` and, unless ``--no-upload``, beside the version under
``reports/<model>/<version>/`` in the model bucket (``models/`` is written by Register alone: the
bucket policy denies everyone else).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlstack.cli.errors import CommandRefused, require_model
from mlstack_core.card import ReportData, compared, confusion, decision_text, from_arrays
from mlstack_core.evidence_text import (
    interval_of,
    judgement,
    metric_names,
    metric_value,
    metric_with_interval,
    percent,
)
from mlstack_core.storage_keys import report_plot_key
from mlstack_core.tasks import CLASSIFICATION


def load(client: Any, model: str, version: int | None = None) -> ReportData:
    """Everything the plots need, from the stack (``mlstack.cli.stack.StackClient``)."""
    registry = client.registry
    require_model(registry, model)
    if version is None:
        version = registry.get_alias(model)
        if version is None:
            raise CommandRefused(f"{model!r} has no production version; name one")
    document = registry.get_version(model, int(version))
    files = document.get("files") or {}
    if "evaluation" not in files or "predictions" not in files:
        raise CommandRefused(
            f"{model} v{version} has no stored evaluation (registered before reports existed)"
        )
    s3 = client.session.client("s3")
    bucket = client.outputs["ModelBucketName"]
    evaluation = json.loads(s3.get_object(Bucket=bucket, Key=files["evaluation"])["Body"].read())
    body = s3.get_object(Bucket=bucket, Key=files["predictions"])["Body"].read()
    with np.load(io.BytesIO(body), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return from_arrays(model, int(version), document, evaluation, arrays)


# ---------------------------------------------------------------------------------- curves
def roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="mergesort")
    hits = positive[order].astype(np.float64)
    tp = np.concatenate([[0.0], np.cumsum(hits)])
    fp = np.concatenate([[0.0], np.cumsum(1 - hits)])
    return fp / max(fp[-1], 1.0), tp / max(tp[-1], 1.0)


def pr_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="mergesort")
    hits = positive[order].astype(np.float64)
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, hits.size + 1)
    recall = tp / max(hits.sum(), 1.0)
    return np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision])


# ---------------------------------------------------------------------------------- plots
def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _side_by_side(data: ReportData, title: str) -> tuple[Any, Any]:
    plt = pyplot()
    n = len(data.models)
    figure, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.6), squeeze=False)
    figure.suptitle(f"{data.model} v{data.version}: {title}")
    return figure, axes[0]


def describe(data: ReportData) -> list[str]:
    """The scores the plots show, each with its interval, and the gate's verdict: what
    ``mlstack report`` prints beside the files it wrote."""
    lines = []
    for title, entry in compared(data.evaluation):
        lines.append(title)
        names = [n for n in metric_names(entry) if metric_value(entry, n) is not None]
        width = max((len(n) for n in names), default=0)
        lines.extend(f"  {name:{width}}  {metric_with_interval(entry, name)}" for name in names)
    return lines + importance_note(data) + judgement(data.evaluation.get("evidence"))


def error_bars(entry: Mapping[str, Any], names: list[str]) -> np.ndarray:
    """Distances from each bar's top down to its interval's low and up to its high ([2, n]); NaN
    (no bar drawn) where the score has no interval. A percentile interval need not contain its
    estimate, so a distance past the top counts as 0."""
    bars = np.full((2, len(names)), np.nan)
    for j, name in enumerate(names):
        value, interval = metric_value(entry, name), interval_of(entry, name) or {}
        low, high = interval.get("low"), interval.get("high")
        if value is not None and low is not None and high is not None:
            bars[:, j] = max(value - low, 0.0), max(high - value, 0.0)
    return bars


def plot_metrics(data: ReportData) -> Any:
    plt = pyplot()
    best = data.evaluation["best"]["metrics"] or {}
    names = [n for n, v in best.items() if v is not None]
    series = compared(data.evaluation)
    figure, axis = plt.subplots(figsize=(1.6 * len(names) + 3, 4.2))
    width = 0.8 / len(series)
    for i, (label, entry) in enumerate(series):
        values = entry.get("metrics") or {}
        heights = [values.get(n) or 0.0 for n in names]
        bars = axis.bar(
            np.arange(len(names)) + i * width,
            heights,
            width,
            label=label,
            yerr=error_bars(entry, names),
            capsize=3,
        )
        # Inside the bar: above it, the whisker would cross the number.
        axis.bar_label(bars, fmt="%.3f", fontsize=7, label_type="center")
    axis.set_xticks(np.arange(len(names)) + width * (len(series) - 1) / 2, names)
    metric = data.evaluation["metric"]
    confidence = (interval_of(data.evaluation["best"], metric) or {}).get("confidence")
    if confidence:
        axis.set_ylabel(f"holdout score (whiskers: {percent(confidence)} interval)")
    axis.set_title(
        f"{data.model} v{data.version}: holdout metrics (gate metric {metric}, "
        f"{decision_text(data.document, data.evaluation)})"
    )
    axis.legend()
    return figure


def plot_confusion(data: ReportData) -> Any:
    figure, axes = _side_by_side(data, "confusion matrix (rows: truth)")
    for axis, scored in zip(axes, data.models, strict=True):
        assert scored.label is not None
        matrix = confusion(data.y, scored.label, data.classes)
        axis.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if count > matrix.max() / 2 else "black"
            axis.text(j, i, str(count), ha="center", va="center", color=colour)
        axis.set_xticks(range(len(data.classes)), data.classes, rotation=30)
        axis.set_yticks(range(len(data.classes)), data.classes)
        accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
        axis.set_title(f"{scored.title}\naccuracy {accuracy:.3f}", fontsize=9)
        axis.set_xlabel("predicted")
    figure.tight_layout()
    return figure


def _curves(data: ReportData, which: str) -> Any:
    title = "ROC, one class vs rest" if which == "roc" else "precision-recall, one class vs rest"
    figure, axes = _side_by_side(data, title)
    for axis, scored in zip(axes, data.models, strict=True):
        if scored.probabilities is None:
            continue
        for j, name in enumerate(data.classes):
            positive = data.y == name
            if positive.all() or not positive.any():
                continue
            score = scored.probabilities[:, j]
            if which == "roc":
                x, y = roc_curve(positive, score)
                auc = float(np.trapezoid(y, x))
                axis.plot(x, y, label=f"{name} (AUC {auc:.3f})")
            else:
                x, y = pr_curve(positive, score)
                axis.plot(x, y, label=name)
        if which == "roc":
            axis.plot([0, 1], [0, 1], ":", color="grey")
            axis.set_xlabel("false positive rate")
            axis.set_ylabel("true positive rate")
        else:
            axis.set_xlabel("recall")
            axis.set_ylabel("precision")
        axis.set_title(scored.title, fontsize=9)
        axis.legend(fontsize=8, loc="lower right" if which == "roc" else "lower left")
    figure.tight_layout()
    return figure


def plot_predicted_vs_actual(data: ReportData) -> Any:
    figure, axes = _side_by_side(data, "predicted vs actual")
    low, high = float(np.min(data.y)), float(np.max(data.y))
    for axis, scored in zip(axes, data.models, strict=True):
        assert scored.variable is not None
        axis.scatter(data.y, scored.variable, s=8, alpha=0.6)
        axis.plot([low, high], [low, high], ":", color="grey")
        rmse = float(np.sqrt(np.mean((scored.variable - data.y) ** 2)))
        axis.set_title(f"{scored.title}\nRMSE {rmse:.4g}", fontsize=9)
        axis.set_xlabel("actual")
        axis.set_ylabel("predicted")
    figure.tight_layout()
    return figure


def plot_residuals(data: ReportData) -> Any:
    figure, axes = _side_by_side(data, "residuals (actual - predicted)")
    for axis, scored in zip(axes, data.models, strict=True):
        assert scored.variable is not None
        axis.scatter(scored.variable, data.y - scored.variable, s=8, alpha=0.6)
        axis.axhline(0, linestyle=":", color="grey")
        axis.set_title(scored.title, fontsize=9)
        axis.set_xlabel("predicted")
        axis.set_ylabel("residual")
    figure.tight_layout()
    return figure


def stored_importance(data: ReportData) -> Mapping[str, Any] | None:
    """The winner's importance: each column's mean absolute contribution on holdout rows, which
    every family has (``explained_importance``, mlstack_core.explain); for a version trained
    before explanations, the family's own as Train stored it, None for a family with none (knn,
    HistGradientBoosting), whose report then draws no ``feature_importance.png``."""
    best: Mapping[str, Any] = data.evaluation["best"]
    document: Mapping[str, Any] = data.document
    for name in ("explained_importance", "feature_importance"):
        importance: Mapping[str, Any] | None = best.get(name) or document.get(name)
        if importance:
            return importance
    return None


def importance_note(data: ReportData) -> list[str]:
    """Why the report has no ``feature_importance.png``, when it has none: its plots are listed
    by what was drawn, and a missing one is said in words."""
    if stored_importance(data) is not None:
        return []
    family = data.evaluation["best"].get("family")
    return [f"no feature_importance.png: the winner ({family}) has no importance of its own"]


def plot_importance(data: ReportData) -> Any | None:
    importance = stored_importance(data)
    if importance is None:
        return None
    plt = pyplot()
    features = importance["features"][:25][::-1]
    figure, axis = plt.subplots(figsize=(8.0, 0.32 * len(features) + 1.4))
    axis.barh([f["name"] for f in features], [f["importance"] for f in features])
    axis.set_title(
        f"{data.model} v{data.version}: feature importance ({importance['kind']}, "
        f"{data.evaluation['best']['family']})"
    )
    figure.tight_layout()
    return figure


def figures(data: ReportData) -> dict[str, Any]:
    out: dict[str, Any] = {"metrics.png": plot_metrics(data)}
    if data.task == CLASSIFICATION:
        out["confusion_matrix.png"] = plot_confusion(data)
        out["roc.png"] = _curves(data, "roc")
        out["pr.png"] = _curves(data, "pr")
    else:
        out["predicted_vs_actual.png"] = plot_predicted_vs_actual(data)
        out["residuals.png"] = plot_residuals(data)
    importance = plot_importance(data)
    if importance is not None:
        out["feature_importance.png"] = importance
    return out


def png_bytes(figure: Any) -> bytes:
    """The figure as PNG, closed afterwards."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot().close(figure)
    return buffer.getvalue()


def render(
    data: ReportData, out_dir: Path, extra: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """Write the PNGs (and any ``extra`` figures); returns name -> bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, figure in {**figures(data), **(extra or {})}.items():
        written[name] = png_bytes(figure)
        (out_dir / name).write_bytes(written[name])
    return written


def write_report(
    client: Any, model: str, version: int | None, out_dir: Path | None, upload: bool = True
) -> tuple[ReportData, Path, list[str]]:
    data = load(client, model, version)
    target = out_dir or Path("reports") / model / f"v{data.version}"
    written = render(data, target)
    if upload:
        s3 = client.session.client("s3")
        bucket = client.outputs["ModelBucketName"]
        for name, body in written.items():
            s3.put_object(
                Bucket=bucket,
                Key=report_plot_key(model, data.version, name),
                Body=body,
                ContentType="image/png",
            )
    return data, target, sorted(written)
