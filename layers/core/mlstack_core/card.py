"""A version's model card, from what the stack stores: the version document (data, schema,
training, lineage), the evaluation and holdout outputs Register keeps beside the model, the
registry's history and, once it serves, the Monitor's ground-truth quality report.

Register writes ``models/<model>/<version>/card.md`` and ``card.html`` when it registers a
version, so every version has a card without the CLI; ``mlstack card`` writes the same card
with the plots (drawn on the user's side: no Lambda carries matplotlib), the history since and
the quality since deployment. Every number comes from a stored artifact, named in the card.
"""

from __future__ import annotations

import base64
import html
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlstack_core.candidates import ORDINAL_CATEGORY_FAMILIES
from mlstack_core.columns_text import (
    ColumnReading,
    column_entries,
    column_reading,
    date_range,
    kind_counts,
    thousands,
)
from mlstack_core.documents import Feature, HistoryEntry, VersionDocument
from mlstack_core.evidence_text import (
    how_judged,
    interval_of,
    interval_text,
    metric_names,
    metric_with_interval,
    rejected,
)
from mlstack_core.payloads import Evaluation, EvaluationReport
from mlstack_core.tasks import CLASSIFICATION

RELIABILITY_BINS = 10
SMALL_HOLDOUT_ROWS = 100
FEW_CLASS_ROWS = 10
LISTED_CATEGORIES = 20


@dataclass
class CardTable:
    """A table of the card, written as markdown and as HTML."""

    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    blocks: list[str | CardTable] = field(default_factory=list)

    def add(self, block: str | CardTable) -> None:
        self.blocks.append(block)


def _number(value: Any) -> str:
    """Scores with four decimals; measurements as written (32.1, 2850, 1e-07)."""
    if value is None:
        return "-"
    if isinstance(value, float) and 1e-3 <= abs(value) < 1e4:
        return f"{value:.4f}"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _measured(value: float) -> str:
    return f"{value:.6g}"


# ----------------------------------------------------------------------------- calibration
def brier_score(y: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> float:
    """Binary: mean squared error of P(classes[1]). Multi-class: the mean over rows of the squared
    distance between the probability row and the one-hot truth (0 is perfect, 2 the worst)."""
    truth = (y[:, None] == np.asarray(classes, dtype=object)[None, :]).astype(np.float64)
    if len(classes) == 2:
        return float(np.mean((probabilities[:, 1] - truth[:, 1]) ** 2))
    return float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))


@dataclass
class Reliability:
    """The top-label reliability curve: per confidence bin, rows, mean confidence, accuracy."""

    rows: list[int]
    confidence: list[float]
    accuracy: list[float]
    expected_calibration_error: float


def reliability(
    y: np.ndarray, probabilities: np.ndarray, classes: list[str], bins: int = RELIABILITY_BINS
) -> Reliability:
    confidence = probabilities.max(axis=1)
    correct = np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)] == y
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, mean_confidence, accuracy = [], [], []
    gap = 0.0
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count == 0:
            continue
        rows.append(count)
        mean_confidence.append(float(confidence[members].mean()))
        accuracy.append(float(correct[members].mean()))
        gap += count * abs(mean_confidence[-1] - accuracy[-1])
    return Reliability(rows, mean_confidence, accuracy, gap / max(len(y), 1))


# ----------------------------------------------------------------------------- sections
def _purpose(data: ReportData) -> Section:
    spec = data.document.get("spec") or {}
    section = Section("Purpose")
    no_description = "The spec gives no description (" + code('"description"') + ")."
    section.add(spec.get("description") or no_description)
    target = data.document["schema"]["target"]
    section.add(f"Predicts {code(target)} ({data.task}) from {len(_features(data))} input columns.")
    return section


def _features(data: ReportData) -> list[Feature]:
    return list(data.document["schema"].get("features") or [])


def _baseline_entries(data: ReportData) -> list[dict[str, Any]]:
    baseline = data.document.get("drift_baseline") or {}
    return [f for f in baseline.get("features") or [] if isinstance(f, dict)]


def _baseline_features(data: ReportData) -> dict[str, dict[str, Any]]:
    """The baseline entry named after each column (a numeric or categorical feature's)."""
    return {str(f["name"]): f for f in _baseline_entries(data) if f.get("name") is not None}


def _entries_of(data: ReportData, feature: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every baseline entry of a feature, its own first: a datetime's parts
    (``placed_at.day_of_week``), a text's measures (their ``column``)."""
    name = feature.get("name")
    names = {name, *(f"{name}.{part}" for part in feature.get("parts") or [])}
    entries = [
        f for f in _baseline_entries(data) if f.get("name") in names or f.get("column") == name
    ]
    return sorted(entries, key=lambda f: f.get("name") != name)


def _data(data: ReportData) -> Section:
    document = data.document
    dataset: Mapping[str, Any] = document.get("dataset") or {}
    splits: Mapping[str, Any] = document.get("splits") or {}
    section = Section("Data")
    source = f"s3://{dataset.get('bucket')}/{dataset.get('key')}"
    if dataset.get("version_id"):
        source += f" (S3 version {dataset['version_id']})"
    section.add(
        f"Source {source}: {dataset.get('rows')} rows, {dataset.get('columns')} columns, "
        f"sha256 {code(dataset.get('sha256'))}. Split {splits.get('train_rows')} rows for "
        f"training, {splits.get('holdout_rows')} held out for evaluation."
    )
    rows = (document.get("drift_baseline") or {}).get("rows") or 0
    table = CardTable(["feature", "kind", "missing in training", "seen in training"], [])
    for feature in _features(data):
        name = str(feature.get("name"))
        entries = _entries_of(data, feature)
        # A datetime's parts are missing together: where its value is missing or unreadable.
        counted = next((e for e in entries if isinstance(e.get("missing"), int | float)), None)
        missing = f"{counted['missing'] / rows:.1%}" if rows and counted else "-"
        table.rows.append([name, str(feature.get("kind")), missing, _seen(feature, entries)])
    section.add(table)
    for warning in document.get("warnings") or []:
        section.add(f"Warning {warning.get('code')}: {warning.get('message')}")
    return section


def _seen(feature: Mapping[str, Any], entries: list[dict[str, Any]]) -> str:
    kind = feature.get("kind")
    if kind == "categorical":
        categories = [str(c) for c in feature.get("categories") or []]
        listed = ", ".join(categories[:LISTED_CATEGORIES])
        more = len(categories) - LISTED_CATEGORIES
        return listed + (f" and {more} more" if more > 0 else "")
    if kind == "datetime":
        return date_range(feature) or "-"
    ranged = [e for e in entries if e.get("min") is not None and e.get("max") is not None]
    if kind == "text":
        # The words per text; another measure only when the baseline has no word count.
        words = [e for e in ranged if e.get("measure") == "words"]
        if words:
            return f"{_measured(words[0]['min'])} to {_measured(words[0]['max'])} words"
        return (
            "; ".join(
                f"{e.get('measure') or e.get('name')} {_measured(e['min'])} to "
                f"{_measured(e['max'])}"
                for e in ranged
            )
            or "-"
        )
    own = next((e for e in ranged if e.get("name") == feature.get("name")), None)
    if own is not None:
        return f"{_measured(own['min'])} to {_measured(own['max'])}"
    return "-"


# ----------------------------------------------------------------------------- columns
def _as_input(reading: ColumnReading, entry: Mapping[str, Any], family: str | None) -> str:
    """What a column becomes as input to the winner (``family``), in words."""
    if not reading.feature:
        return "not a feature: a request may carry it, and batch scoring keeps it in its output"
    if reading.kind == "numeric":
        return "one number"
    if reading.kind == "categorical":
        known = entry.get("n_categories", len(entry.get("categories") or []))
        if family in ORDINAL_CATEGORY_FAMILIES:
            return (
                f"one code per category among its most frequent in training ({thousands(known)} "
                "seen), split on as an ordered number; any other value counts as missing"
            )
        return (
            f"one-hot of its most frequent categories in training ({thousands(known)} seen); "
            "any other value sets none"
        )
    if reading.kind == "datetime":
        # The format always, though the reason may name it: the card is read on its own.
        details = [d for d in reading.details if not d.startswith("read as ")]
        return "; ".join([f"format {entry.get('format')}", *details])
    return "; ".join(reading.details) or "-"


def _columns(data: ReportData) -> Section:
    section = Section("Columns")
    family = (data.evaluation.get("best") or {}).get("family")
    entries = column_entries(data.document.get("schema") or {})
    readings = [column_reading(entry, feature) for entry, feature in entries]
    if not readings:
        section.add("The schema lists no columns.")
        return section
    section.add(
        f"How each column was read, and why ({code('spec.columns.types')} overrides a reading): "
        f"{', '.join(kind_counts(readings))}. Identifiers are not features."
    )
    section.add(
        CardTable(
            ["column", "kind", "why", "as model input"],
            [
                [r.name, r.kind, r.reason or "-", _as_input(r, entry, family)]
                for r, (entry, _) in zip(readings, entries, strict=True)
            ],
        )
    )
    return section


def _training(data: ReportData) -> Section:
    best = data.evaluation["best"]
    metric = data.evaluation["metric"]
    section = Section("Training")
    params = ", ".join(f"{k}={v}" for k, v in (best.get("params") or {}).items()) or "defaults"
    section.add(f"Chosen: {code(best['candidate_id'])}, {best['family']} ({params}).")
    cv = best.get("cv")
    if cv:
        section.add(
            f"Grid search, {cv['folds']}-fold cross-validation on {metric}: best "
            f"{_number(cv.get('best_score'))} at {cv.get('best_params')}."
        )
        section.add(
            CardTable(
                ["params", f"mean {metric}", "std", "rank"],
                [
                    [
                        str(p["params"]),
                        _number(p["mean_score"]),
                        _number(p["std_score"]),
                        str(p["rank"]),
                    ]
                    for p in sorted(cv.get("points") or [], key=lambda p: p["rank"])
                ],
            )
        )
    candidates = data.evaluation.get("candidates") or []
    section.add(
        CardTable(
            ["candidate", "family", f"holdout {metric}", "status"],
            [
                [
                    str(c.get("candidate_id")),
                    str(c.get("family")),
                    _number((c.get("metrics") or {}).get(metric)),
                    str(c.get("error") or c.get("status")),
                ]
                for c in candidates
            ],
        )
    )
    return section


def compared(evaluation: Evaluation) -> list[tuple[str, Mapping[str, Any]]]:
    """The models the gate scored on the holdout, titled: the challenger, production when it was
    comparable, and the trivial baseline; each with ``metrics`` and, since the gate carries
    confidence intervals, ``intervals``."""
    champion: Mapping[str, Any] = evaluation.get("champion") or {}
    models: list[tuple[str, Mapping[str, Any]]] = [("challenger", evaluation["best"])]
    if champion.get("metrics"):
        models.append((f"production v{champion.get('version')}", champion))
    baseline: Mapping[str, Any] = evaluation.get("baseline") or {}
    if baseline.get("metrics"):
        models.append((f"baseline ({baseline.get('strategy')})", baseline))
    return models


def _evaluation(data: ReportData) -> Section:
    evaluation = data.evaluation
    section = Section("Evaluation")
    champion: Mapping[str, Any] = evaluation.get("champion") or {}
    columns = compared(evaluation)
    if evaluation.get("judged_on") == "cross_validation":
        section.add(
            f"Judged by repeated cross-validation on all {len(data.y)} rows: each score is the "
            "mean of the candidates' out-of-fold answers (the version shipped is fitted on every "
            "row, and its ONNX export matched scikit-learn on each of them; gate metric: "
            f"{evaluation['metric']})."
        )
    else:
        section.add(
            f"On {len(data.y)} holdout rows, scored as ONNX through the serving contract "
            f"(gate metric: {evaluation['metric']})."
        )
    section.add(
        CardTable(
            ["metric", *(title for title, _ in columns)],
            [
                [name, *(metric_with_interval(entry, name) for _, entry in columns)]
                for name in metric_names(*(entry for _, entry in columns))
            ],
        )
    )
    if champion and not champion.get("metrics"):
        section.add(f"Production was not compared: {champion.get('reason') or 'not comparable'}.")
    evidence = evaluation.get("evidence")
    if evidence:
        section.add(how_judged(evidence))
        section.add(f"Verdict: {evidence.get('verdict')}")
        if rejected(evidence):
            section.add(f"Outcome: {evidence.get('outcome')}. Advice: {evidence.get('advice')}.")
    challenger = data.models[0] if data.models else None
    if challenger is None:
        return section
    if data.task == CLASSIFICATION and challenger.label is not None:
        matrix = confusion(data.y, challenger.label, data.classes)
        section.add("Confusion matrix (rows: truth, columns: predicted):")
        section.add(
            CardTable(
                ["", *data.classes],
                [[c, *(str(n) for n in matrix[i])] for i, c in enumerate(data.classes)],
            )
        )
    if challenger.probabilities is not None:
        curve = reliability(data.y, challenger.probabilities, data.classes)
        brier = brier_score(data.y, challenger.probabilities, data.classes)
        scale = f"P({data.classes[1]})" if len(data.classes) == 2 else "multi-class, 0 to 2"
        interval = _brier_interval(evaluation["best"], len(data.classes))
        within = f" ({interval_text(interval)})" if interval else ""
        section.add(
            f"Calibration: Brier score {brier:.4f}{within} ({scale}); expected calibration error "
            f"{curve.expected_calibration_error:.4f} over {RELIABILITY_BINS} confidence bins."
        )
        section.add(
            CardTable(
                ["rows", "mean confidence", "share correct"],
                [
                    [str(n), f"{c:.3f}", f"{a:.3f}"]
                    for n, c, a in zip(curve.rows, curve.confidence, curve.accuracy, strict=True)
                ],
            )
        )
    if challenger.variable is not None:
        residuals = data.y - challenger.variable
        q05, q50, q95 = np.quantile(residuals, [0.05, 0.5, 0.95])
        section.add(
            f"Residuals (actual - predicted): mean {_number(float(residuals.mean()))}, standard "
            f"deviation {_number(float(residuals.std()))}, 5 % / 50 % / 95 % quantiles "
            f"{_number(float(q05))} / {_number(float(q50))} / {_number(float(q95))}."
        )
    return section


def _brier_interval(best: Mapping[str, Any], classes: int) -> dict[str, Any] | None:
    """The interval of the Brier score the calibration line shows. The evidence's sums the squared
    differences over every class: for two classes, row by row twice the binary form's."""
    interval = interval_of(best, "brier_score")
    if interval is None:
        return None
    if classes != 2:
        return dict(interval)
    bounds = ("estimate", "low", "high")
    return {k: v / 2 if k in bounds and v is not None else v for k, v in interval.items()}


def _parity(data: ReportData) -> Section:
    best = data.evaluation["best"]
    parity = best.get("parity") or {}
    rehearsal: Mapping[str, Any] = (
        data.evaluation.get("rehearsal") or data.document.get("rehearsal") or {}
    )
    section = Section("ONNX parity and serving")
    section.add(
        "The ONNX export against scikit-learn on the holdout: "
        + (
            f"{parity['label_agreement']:.2%} same labels, "
            if parity.get("label_agreement") is not None
            else ""
        )
        + f"largest difference {_number(parity.get('max_abs_diff'))}; "
        + ("within" if parity.get("passed") else "outside")
        + " the spec's tolerance."
    )
    if rehearsal:
        requests = rehearsal.get("requests") or []
        section.add(
            f"Serving rehearsal: {len(requests)} requests through the prediction API's contract "
            + ("answered as scored." if rehearsal.get("passed") else "did not match the gate.")
        )
    return section


# Columns listed by the card's "What drives its answers" (the report's plot shows 25).
LISTED_DRIVERS = 15


def _drivers(data: ReportData) -> Section:
    best = data.evaluation["best"]
    importance: Mapping[str, Any] | None = best.get("explained_importance") or data.document.get(
        "explained_importance"
    )
    section = Section("What drives its answers")
    if not importance:
        section.add(
            "No explained importance: the version was trained before explanations (its "
            "background rows and importance come with the next training run)."
        )
        return section
    task = best.get("task") or data.task
    what = (
        "the probability of the class it predicts"
        if task == CLASSIFICATION
        else "its predicted value"
    )
    section.add(
        f"Each column's mean absolute contribution to {what}, over {importance['rows']} holdout "
        "rows: Shapley values of the served ONNX model against training rows stored with the "
        "version, as `POST /models/{model}/explain` gives them for one row."
    )
    features = importance["features"]
    section.add(
        CardTable(
            ["column", "mean |contribution|"],
            [[code(f["name"]), _number(f["importance"])] for f in features[:LISTED_DRIVERS]],
        )
    )
    total = int(importance.get("features_total") or len(features))
    if total > LISTED_DRIVERS:
        section.add(f"{total - LISTED_DRIVERS} more columns contribute less.")
    return section


def _drift(data: ReportData) -> Section:
    baseline = data.document.get("drift_baseline") or {}
    section = Section("Drift baseline")
    if not baseline:
        section.add(f"No drift baseline is stored inline; see {code('files.baseline')}.")
        return section
    entries = [f for f in baseline.get("features") or [] if isinstance(f, dict)]
    kinds = Counter(str(f.get("kind")) for f in entries)
    binned = "; ".join(
        f"{n} {_BINNED.get(kind, f'{kind}, binned as recorded')}" for kind, n in kinds.items()
    )
    section.add(
        f"{len(entries)} model inputs binned from {baseline.get('rows')} training rows"
        + (f": {binned}" if binned else "")
        + ". The monitor compares served inputs with these bins (PSI)."
    )
    return section


# How each kind of baseline entry is binned, for the drift section.
_BINNED = {
    "numeric": "numeric in deciles, each part of a datetime one of them",
    "categorical": "categorical by the most frequent categories",
    "text": "text measures in deciles: words per text, share of words unseen in training",
}


def _decision(data: ReportData, history: list[HistoryEntry]) -> Section:
    document, evaluation = data.document, data.evaluation
    section = Section("Decision")
    section.add(f"{decision_text(document, evaluation)}. Status now: {document.get('status')}.")
    evidence: Mapping[str, Any] = evaluation.get("evidence") or {}
    verdict = evidence.get("verdict")
    for reason in evaluation.get("reasons") or []:
        # The verdict is one of the gate's reasons; the Evaluation section gives it in full.
        if verdict and reason == verdict:
            outcome = evidence.get("outcome")
            section.add(f"Gate: {outcome} on the evidence (the verdict under Evaluation).")
        else:
            section.add(f"Gate: {reason}")
    moves = [
        entry
        for entry in history
        if entry.get("version") == data.version and entry.get("kind") in ("status", "alias")
    ]
    if moves:
        section.add(
            CardTable(
                ["when", "change", "who", "why"],
                [
                    [
                        str(entry.get("at", ""))[:19].replace("T", " "),
                        _change(entry),
                        str(entry.get("actor", "")),
                        str(entry.get("reason", "")),
                    ]
                    for entry in moves
                ],
            )
        )
    return section


def _change(entry: HistoryEntry) -> str:
    if entry.get("kind") == "status":
        return f"status {entry.get('status')}"
    verb = "rolled back to" if entry.get("rollback") else "moved to"
    previous = entry.get("previous") or "-"
    return f"{entry.get('alias')} {verb} v{entry.get('version')} (from v{previous})"


def _lineage(data: ReportData) -> Section:
    document = data.document
    section = Section("Lineage")
    libraries = ", ".join(f"{k} {v}" for k, v in (document.get("library_versions") or {}).items())
    imported = document.get("imported")
    if imported:
        section.add(
            f"Imported ({code('mlstack import')}), not trained by the stack: "
            f"{imported.get('source')} model from {code(imported.get('file_name'))} (sha256 "
            f"{code(imported.get('file_sha256'))}), uploaded by "
            f"{code(imported.get('uploaded_by') or 'unknown')}; held to the same gate by run "
            f"{code(document.get('run_id'))} ({document.get('execution_arn')}), on the holdout "
            "that came with it."
        )
        section.add(f"Fitted and converted with: {libraries}.")
    else:
        section.add(
            f"Trained by run {code(document.get('run_id'))} ({document.get('execution_arn')})."
        )
        section.add(f"Libraries: {libraries}.")
    artifact: Mapping[str, Any] = document.get("artifact") or {}
    section.add(
        f"Served artifact {code(artifact.get('key'))}, {artifact.get('bytes')} bytes, sha256 "
        f"{code(artifact.get('sha256'))}."
    )
    return section


def _limits(data: ReportData) -> Section:
    section = Section("Known limits")
    baseline = _baseline_features(data)
    for feature in _features(data):
        entry = baseline.get(str(feature.get("name")), {})
        kind = feature.get("kind")
        if kind == "categorical":
            section.add(
                f"{code(feature['name'])}: a category not seen in training counts as none of the "
                f"{len(feature.get('categories') or [])} known ones."
            )
        elif kind == "datetime":
            span = date_range(feature)
            if span:
                section.add(
                    f"{code(feature['name'])}: trained on {span}; a later or earlier date is "
                    "extrapolation (its year and days_since_epoch lie outside what the model "
                    "saw)."
                )
        elif kind == "text":
            section.add(
                f"{code(feature['name'])}: only the {thousands(feature.get('max_terms'))} most "
                "frequent words and phrases of the training texts count; any other word is "
                "ignored."
            )
        elif entry.get("min") is not None:
            section.add(
                f"{code(feature['name'])}: trained on {_measured(entry['min'])} to "
                f"{_measured(entry['max'])}; answers outside that range are extrapolation."
            )
    if len(data.y) < SMALL_HOLDOUT_ROWS:
        section.add(
            f"The holdout has {len(data.y)} rows: its metrics move by several points "
            "with a few rows."
        )
    if data.task == CLASSIFICATION:
        counts = {c: int(np.sum(data.y == c)) for c in data.classes}
        for name, count in counts.items():
            if count < FEW_CLASS_ROWS:
                section.add(
                    f"Class {code(name)} has {count} holdout rows: its recall is uncertain."
                )
    return section


def card_sections(
    data: ReportData, history: list[HistoryEntry], quality: dict[str, Any] | None = None
) -> list[Section]:
    """``quality``: the Monitor's latest quality report of the model
    (``monitoring/<model>/quality-latest.json``), when there is one."""
    return [
        _purpose(data),
        _data(data),
        _columns(data),
        _training(data),
        _evaluation(data),
        _parity(data),
        _drivers(data),
        _drift(data),
        _quality(data, quality),
        _decision(data, history),
        _lineage(data),
        _limits(data),
    ]


def _quality(data: ReportData, quality: dict[str, Any] | None) -> Section:
    section = Section("Ground-truth quality since deployment")
    spec_quality = (data.document.get("spec") or {}).get("quality") or {}
    if not spec_quality.get("capture"):
        section.add(
            f"Not captured: the spec does not set {code('quality.capture')}, so served "
            "predictions are not kept for labels to be joined to."
        )
        return section
    entry = next(
        (v for v in (quality or {}).get("versions") or [] if v.get("version") == data.version),
        None,
    )
    if quality is None or entry is None:
        section.add("Captured, but no labelled predictions of this version have been checked yet.")
        return section
    metric = entry.get("metric")
    section.add(
        f"From the Monitor's report {code(quality.get('report_key'))} ({quality.get('at')}): "
        f"{entry.get('rows', 0)} of {entry.get('captured_rows', 0)} captured predictions have "
        f"labels; {metric} on them {_number(entry.get('value'))}, on the holdout "
        f"{_number(entry.get('holdout'))}: {entry.get('status')}."
    )
    for reason in entry.get("reasons") or []:
        section.add(reason)
    days = entry.get("days") or []
    if days:
        section.add(
            CardTable(
                ["day", "labelled rows", str(metric)],
                [[d["day"], str(d["rows"]), _number(d.get("value"))] for d in days],
            )
        )
    return section


# ----------------------------------------------------------------------------- rendering
# The card's text is plain text, not Markdown: most of it quotes the user's CSV and spec (column
# names, reasons, class labels, the description, a person's reason), which must not become HTML,
# links or table cells of their own in whatever renders card.md. The only markup a section writes
# is a code span, between these two private-use characters (``code``); each renderer turns every
# other character into literal text.
_CODE_OPEN = "\ue000"
_CODE_CLOSE = "\ue001"
_MARKERS = re.compile(f"[{_CODE_OPEN}{_CODE_CLOSE}]")
_CODE_SPAN = re.compile(f"{_CODE_OPEN}([^{_CODE_OPEN}{_CODE_CLOSE}]+){_CODE_CLOSE}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# What starts Markdown or HTML anywhere in a line: a backslash escape, code, links and images,
# table cells, emphasis and strikethrough ("_" only where it can open or close one: not inside a
# word such as hist_gradient_boosting), and a "<" or "&" that opens raw HTML, an autolink or an
# entity ("<=" stays as is).
_INLINE_SPECIAL = re.compile(
    r"([\\`\[\]|*~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|<(?=[A-Za-z/!?])|&(?=[A-Za-z0-9#]))"
)
# What opens a block at the start of a paragraph: a heading, quote, list, rule or fence.
_BLOCK_START = re.compile(r"^(?:([#>+\-*_~])|(\d+)([.)])(?=\s|$))")


def code(value: Any) -> str:
    """``value`` as a code span of the card (in backticks in Markdown, ``<code>`` in HTML)."""
    return f"{_CODE_OPEN}{_MARKERS.sub('', str(value))}{_CODE_CLOSE}"


def _pieces(text: str) -> list[tuple[bool, str]]:
    """``text`` as (is code, text) pieces; a stray marker is dropped."""
    pieces: list[tuple[bool, str]] = []
    at = 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append((False, _MARKERS.sub("", text[at : match.start()])))
        pieces.append((True, match.group(1)))
        at = match.end()
    pieces.append((False, _MARKERS.sub("", text[at:])))
    return [(is_code, piece) for is_code, piece in pieces if piece or is_code]


def _markdown_code(text: str, *, in_table: bool) -> str:
    """A code span holding ``text`` literally: a fence longer than any run of backticks in it."""
    text = _LINE_BREAK.sub(" ", text)
    if in_table:
        text = text.replace("|", "\\|")  # GFM splits cells on a pipe even inside code
    runs = [len(run) for run in re.findall("`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if not text or text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_text(text: str, *, in_table: bool = False) -> str:
    """The card's ``text`` as Markdown that renders as that text: one line, every character that
    could start HTML, a link, an image, code or a table cell escaped; code spans as code."""
    return "".join(
        _markdown_code(piece, in_table=in_table)
        if is_code
        else _INLINE_SPECIAL.sub(r"\\\1", _LINE_BREAK.sub(" ", piece))
        for is_code, piece in _pieces(text)
    )


def _markdown_paragraph(text: str) -> str:
    """A block of the card as a Markdown paragraph: its first character cannot open a heading,
    quote, list, rule or indented code."""
    line = markdown_text(text).lstrip()
    return _BLOCK_START.sub(
        lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", line, count=1
    )


def _html_text(text: str) -> str:
    return "".join(
        f"<code>{html.escape(piece)}</code>" if is_code else html.escape(piece)
        for is_code, piece in _pieces(text)
    )


def to_markdown(data: ReportData, sections: list[Section], images: list[str]) -> str:
    title = markdown_text(f"Model card: {data.model} version {data.version}")
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {markdown_text(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, CardTable):
                cells = [[markdown_text(c, in_table=True) for c in row] for row in block.rows]
                header = [markdown_text(h, in_table=True) for h in block.header]
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(block.header))
                lines += ["| " + " | ".join(row) + " |" for row in cells]
            else:
                lines.append(_markdown_paragraph(block))
            lines.append("")
    if images:
        lines += ["## Plots", ""]
        lines += [f"![{name}]({name})" for name in images]
        lines.append("")
    return "\n".join(lines)


def to_html(data: ReportData, sections: list[Section], images: dict[str, bytes]) -> str:
    title = _html_text(f"Model card: {data.model} version {data.version}")
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>',
        "<style>body{font-family:sans-serif;max-width:60rem;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
        f"</head><body><h1>{title}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{_html_text(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, CardTable):
                head = "".join(f"<th>{_html_text(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{_html_text(c)}</td>" for c in row) + "</tr>"
                    for row in block.rows
                )
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            else:
                parts.append(f"<p>{_html_text(block)}</p>")
    for name, png in images.items():
        encoded = base64.b64encode(png).decode()
        parts.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">')
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- evaluation data
@dataclass
class HoldoutOutputs:
    """One model's outputs on the holdout."""

    title: str
    label: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    variable: np.ndarray | None = None


@dataclass
class ReportData:
    model: str
    version: int
    task: str
    document: VersionDocument
    evaluation: EvaluationReport
    y: np.ndarray
    classes: list[str]
    models: list[HoldoutOutputs]


def from_arrays(
    model: str,
    version: int,
    document: VersionDocument,
    evaluation: EvaluationReport,
    arrays: dict[str, np.ndarray],
) -> ReportData:
    task = document.get("task") or document["schema"]["task"]
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else []
    champion: Mapping[str, Any] = evaluation.get("champion") or {}
    models = []
    # Judged by cross-validation, the challenger is shown by its out-of-fold answers: its answers
    # on the rows it was fitted on would flatter it.
    out_of_fold = any(name.startswith("estimate_") for name in arrays)
    for prefix, title in (
        (
            "estimate" if out_of_fold else "best",
            f"challenger v{version} ({evaluation['best']['family']})"
            + (", out of fold" if out_of_fold else ""),
        ),
        ("champion", f"champion v{champion.get('version')} ({champion.get('family')})"),
    ):
        outputs = HoldoutOutputs(title)
        if f"{prefix}_label" in arrays:
            outputs.label = arrays[f"{prefix}_label"].astype(str)
        if f"{prefix}_probabilities" in arrays:
            outputs.probabilities = arrays[f"{prefix}_probabilities"].astype(np.float64)
        if f"{prefix}_variable" in arrays:
            outputs.variable = arrays[f"{prefix}_variable"].astype(np.float64).ravel()
        if outputs.label is not None or outputs.variable is not None:
            models.append(outputs)
    y = arrays["y"]
    return ReportData(
        model,
        version,
        task,
        document,
        evaluation,
        y.astype(str) if task == CLASSIFICATION else y.astype(np.float64),
        classes,
        models,
    )


def confusion(y: np.ndarray, label: np.ndarray, classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for truth, guess in zip(y.tolist(), label.tolist(), strict=True):
        if truth in index and guess in index:
            matrix[index[truth], index[guess]] += 1
    return matrix


def decision_text(document: VersionDocument, evaluation: EvaluationReport) -> str:
    """The gate's decision, and a person's where one overrode or confirmed it."""
    gate = f"gate: {evaluation['decision']}"
    actor = document.get("status_changed_by")
    if actor and actor != "pipeline" and document.get("status") in ("Approved", "Rejected"):
        return f"{gate}; {document['status'].lower()} by {actor}"
    return gate


def card_files(
    data: ReportData, history: list[HistoryEntry], quality: dict[str, Any] | None = None
) -> tuple[str, str]:
    """``card.md`` and ``card.html`` without plots: what Register stores beside the version."""
    sections = card_sections(data, history, quality)
    return to_markdown(data, sections, []), to_html(data, sections, {})
