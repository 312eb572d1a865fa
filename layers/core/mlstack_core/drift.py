"""Data drift: the training baseline, the serving-side summary recorder, and PSI. numpy only.

Three pieces, one binning rule, so the baseline and what serving records are always comparable:

- ``feature_baseline`` (Preprocess, on the training split) and ``prediction_baseline`` (Evaluate,
  on the winning candidate's holdout outputs): per numeric feature, decile bins (the cut points of
  the training data, at most ``NUMERIC_BINS`` bins) with their counts and the range seen; per
  categorical feature, the ``MAX_CATEGORIES`` most frequent categories with their counts plus an
  ``other`` count; per text column, two measures of each text binned like numbers (``<col>.words``,
  and ``<col>.unknown_share``, the share of its words outside the training's most common ones);
  all also count missing values. Register stores the baseline beside the model version
  (``models/<model>/<version>/baseline.json``) and, when it fits ``INLINE_BASELINE_BYTES``, inline
  in the version document under ``drift_baseline``, which is what serving reads.
- ``DriftRecorder`` (the prediction function): per (model, version), adds a sample of each
  request's model inputs and outputs to count arrays shaped like the baseline, and counts the
  values above or below the training range of each numeric entry. Memory is bounded
  (fixed-size arrays per version, at most ``MAX_VERSIONS`` versions), so is the cost per request
  (at most ``max_rows_per_request`` rows, evenly strided), and only counts ever leave the
  function: no raw values, so nothing a caller sent is stored. Every ``flush_seconds`` the counts
  are handed back as one small JSON summary for the caller to write under
  ``monitoring/<model>/<version>/summaries/<YYYY-MM-DD>/`` in the model bucket. The recorder makes
  no AWS calls itself (so the template checks see every call in the function's own code).
- ``drift_report`` (the Monitor function): merges summaries and compares them with the baseline by
  the Population Stability Index per feature and for the predictions, with the share of served
  values outside the training range (a date years past training is the usual case).

Why PSI: it works on the same bins for numeric and categorical features, needs only counts (which
is all serving keeps), and has well-known readings: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a
significant shift. KS would need raw values for numeric features and does not apply to
categorical ones.

Why one module of this size: the baseline (training), the recorder (serving) and the merging
and PSI (the Monitor) write and read one summary format; kept together, the format has one home.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np

from mlstack_core.kinds import TEXT
from mlstack_core.kinds import text as text_kind
from mlstack_core.kinds.inputs import (
    CATEGORICAL_INPUT,
    NUMERIC_INPUT,
    TEXT_INPUT,
    numeric_input_names,
    text_columns,
)
from mlstack_core.settings import ServingSettings
from mlstack_core.storage_keys import summary_key
from mlstack_core.tasks import CLASSIFICATION

FORMAT: Final = 1
NUMERIC_BINS: Final = 10
MAX_CATEGORIES: Final = 20
MAX_BASELINE_FEATURES: Final = 200
MAX_CATEGORY_CHARS: Final = 100
MAX_PREDICTION_CLASSES: Final = 50
MAX_VERSIONS: Final = 8
# Per text column, a served text's words are judged against the training's most common ones.
KNOWN_WORDS: Final = 500
# The known words of all text columns together, as JSON: a table with many text columns keeps
# its baseline inline (INLINE_BASELINE_BYTES), which is what serving reads.
KNOWN_WORDS_BYTES: Final = 48_000
WORDS: Final = "words"
UNKNOWN_SHARE: Final = "unknown_share"
TEXT_MEASURES: Final = (WORDS, UNKNOWN_SHARE)
FOLD_ROWS: Final = 2048  # sampled rows held before counting: ~1 MB for 100 float32 columns
# Proportions are floored at this before the logarithm: an empty bin on one side is a large but
# finite contribution, as in the usual PSI implementations.
PSI_FLOOR: Final = 1e-4
# Up to this size a version's drift baseline is also inlined in its registry document (DynamoDB
# items are limited to 400 KB, and the document also holds the schema); above it, it stays in S3
# only and serving records no drift summaries for the version.
INLINE_BASELINE_BYTES: Final = 128 * 1024


# --------------------------------------------------------------------------------- days
def days_between(start: float, end: float) -> list[str]:
    """The UTC days (``YYYY-MM-DD``) from ``start`` to ``end``: the day folders to read."""
    day = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end, UTC).date()
    days = []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


# --------------------------------------------------------------------------------- binning
def numeric_edges(values: np.ndarray, bins: int = NUMERIC_BINS) -> list[float]:
    """Interior cut points of the non-missing values' quantiles (duplicates removed)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    quantiles = np.quantile(finite.astype(np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(q) for q in quantiles})


def numeric_counts(values: np.ndarray, edges: Sequence[float]) -> tuple[np.ndarray, int]:
    """(counts per bin, missing): bin i holds edges[i-1] < x <= edges[i]."""
    values = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[present], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(np.int64)
    return counts, int(values.size - int(present.sum()))


def category_counts(values: np.ndarray, categories: Sequence[str]) -> tuple[np.ndarray, int, int]:
    """(counts per listed category, other, missing); missing is ``""`` (or None)."""
    # Counted in C per value; the Python loop below runs once per distinct value.
    seen: Counter[Any] = Counter(values.tolist())
    missing = seen.pop(None, 0) + seen.pop("", 0)
    by_text: Counter[str] = Counter()
    for value, count in seen.items():
        by_text[value if type(value) is str else str(value)] += count
    counts = np.array([by_text.pop(c, 0) for c in categories], dtype=np.int64)
    return counts, sum(by_text.values()), missing


def _numeric_entry(name: str, values: np.ndarray) -> dict[str, Any]:
    edges = numeric_edges(values)
    counts, missing = numeric_counts(values, edges)
    finite = values[np.isfinite(values)].astype(np.float64)
    # The range seen in training: the model card names what lies outside it as extrapolation.
    seen = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
    return {
        "name": name,
        "kind": "numeric",
        "edges": edges,
        "counts": counts.tolist(),
        "missing": missing,
        "min": seen[0],
        "max": seen[1],
    }


def _categorical_entry(name: str, values: np.ndarray) -> dict[str, Any]:
    frequencies: Counter[str] = Counter()
    # Counted in C per value; the loop runs once per distinct value.
    for value, count in Counter(values.tolist()).items():
        if value is None or value == "":
            continue
        frequencies[str(value)] += count
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))
    categories = [c for c, _ in ranked if len(c) <= MAX_CATEGORY_CHARS][:MAX_CATEGORIES]
    counts, other, missing = category_counts(values, categories)
    return {
        "name": name,
        "kind": "categorical",
        "categories": categories,
        "counts": counts.tolist(),
        "other": other,
        "missing": missing,
    }


def text_measure(measure: str, texts: Sequence[str], known: frozenset[str]) -> np.ndarray:
    """Per normalised text, ``words`` or ``unknown_share`` (of its words outside ``known``); NaN
    for a text without words, so both measures count it as missing."""
    if measure == WORDS:
        values = np.asarray(text_kind.word_counts(texts), dtype=np.float64)
        values[values == 0] = np.nan
        return values
    return np.asarray(text_kind.unknown_shares(texts, known), dtype=np.float64)


def _known_words(texts: Sequence[str], budget: int) -> list[str]:
    """The ``KNOWN_WORDS`` most common words, fewer when their JSON passes ``budget`` bytes."""
    known: list[str] = []
    size = 1  # "[" and "]", less the comma the first word goes without
    for word in text_kind.common_words(texts, KNOWN_WORDS):
        size += len(json.dumps(word)) + 1
        if size > budget:
            break
        known.append(word)
    return known


def _text_entries(column: str, texts: Sequence[str], budget: int) -> list[dict[str, Any]]:
    """``<column>.words`` and ``<column>.unknown_share``: numeric entries of a text measure; the
    second keeps the known words, so serving measures served texts against the same list."""
    known = _known_words(texts, budget)
    entries = []
    for measure in TEXT_MEASURES:
        entry = _numeric_entry(
            f"{column}.{measure}", text_measure(measure, texts, frozenset(known))
        )
        entry.update(kind=TEXT, column=column, measure=measure)
        if measure == UNKNOWN_SHARE:
            entry["known"] = known
        entries.append(entry)
    return entries


def feature_baseline(schema: Mapping[str, Any], feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The per-feature part of a baseline, from the training split's model inputs
    (``kinds.inputs``: every column of the ``numeric`` input, datetime parts included, of the
    ``categorical`` one, and two measures of each column of the ``text`` one)."""
    features: list[dict[str, Any]] = []
    numeric = feeds.get(NUMERIC_INPUT)
    if numeric is not None:
        for j, name in enumerate(numeric_input_names(schema)):
            features.append(_numeric_entry(name, numeric[:, j]))
    categorical = feeds.get(CATEGORICAL_INPUT)
    if categorical is not None:
        for j, name in enumerate(schema.get("categorical", [])):
            features.append(_categorical_entry(name, categorical[:, j]))
    texts = feeds.get(TEXT_INPUT)
    if texts is not None:
        columns = text_columns(schema)
        budget = KNOWN_WORDS_BYTES // max(len(columns), 1)
        for j, name in enumerate(columns):
            features.extend(_text_entries(name, texts[:, j].tolist(), budget))
    return {
        "format": FORMAT,
        "rows": _rows_of(feeds),
        "features": features[:MAX_BASELINE_FEATURES],
        "features_truncated": len(features) > MAX_BASELINE_FEATURES,
    }


def prediction_baseline(
    task: str, outputs: Mapping[str, np.ndarray], classes: Sequence[Any] | None = None
) -> dict[str, Any]:
    """How the model's own predictions are distributed on the holdout: predicted-class counts
    (classifiers) or decile bins of the predicted value (regressors)."""
    if task == CLASSIFICATION:
        labels = [str(c) for c in (classes or [])][:MAX_PREDICTION_CLASSES]
        counts, other, _ = category_counts(np.asarray(outputs["label"], dtype=object), labels)
        return {"kind": "classes", "classes": labels, "counts": counts.tolist(), "other": other}
    values = np.asarray(outputs["variable"], dtype=np.float64).ravel()
    entry = _numeric_entry("prediction", values)
    return {"kind": "numeric", "edges": entry["edges"], "counts": entry["counts"]}


def compact(baseline: Mapping[str, Any]) -> dict[str, Any] | None:
    """The baseline to keep inline in the version document, or None when it is too large."""
    size = len(json.dumps(baseline, separators=(",", ":")))
    return dict(baseline) if size <= INLINE_BASELINE_BYTES else None


# --------------------------------------------------------------------------------- recorder
@dataclass(frozen=True)
class _TextSlot:
    feature: int  # index in the baseline's features
    column: int  # column in the text feed
    measure: str
    known: frozenset[str]


# A request's sampled rows: its numeric, categorical and text inputs and its prediction.
_Sampled = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]


@dataclass
class _Tally:
    """Counts for one (model, version), shaped by its baseline."""

    baseline: Mapping[str, Any]
    numeric_slots: list[tuple[int, int]]  # (baseline feature index, column in the numeric feed)
    categorical_slots: list[tuple[int, int]]
    text_slots: list[_TextSlot]
    counts: list[np.ndarray]
    missing: np.ndarray
    other: np.ndarray
    # Present values above the training maximum or below its minimum, per feature with a range.
    above: np.ndarray
    below: np.ndarray
    prediction: np.ndarray
    prediction_other: int = 0
    rows: int = 0
    requests: int = 0
    started: float = field(default_factory=time.time)
    # Sampled rows wait here and are counted FOLD_ROWS at a time: counting per request costs one
    # searchsorted/bincount per feature, ~90 µs for 20 features, more than the model itself. The
    # text measures are computed here too, so a request only pays for its strided sample.
    pending: list[_Sampled] = field(default_factory=list)
    pending_rows: int = 0

    @classmethod
    def for_document(cls, document: Mapping[str, Any], now: float) -> _Tally | None:
        baseline = document.get("drift_baseline")
        schema = document.get("schema") or {}
        if not isinstance(baseline, Mapping) or baseline.get("format") != FORMAT:
            return None
        numeric = {name: j for j, name in enumerate(numeric_input_names(schema))}
        categorical = {name: j for j, name in enumerate(schema.get("categorical", []))}
        texts = {name: j for j, name in enumerate(text_columns(schema))}
        numeric_slots, categorical_slots, text_slots, counts = [], [], [], []
        for i, feature in enumerate(baseline.get("features", [])):
            if feature["kind"] == "numeric" and feature["name"] in numeric:
                numeric_slots.append((i, numeric[feature["name"]]))
            elif feature["kind"] == "categorical" and feature["name"] in categorical:
                categorical_slots.append((i, categorical[feature["name"]]))
            elif (
                feature["kind"] == TEXT
                and feature.get("column") in texts
                and feature.get("measure") in TEXT_MEASURES
            ):
                known = frozenset(feature.get("known") or ())
                slot = _TextSlot(i, texts[feature["column"]], feature["measure"], known)
                text_slots.append(slot)
            counts.append(np.zeros(len(feature["counts"]), dtype=np.int64))
        n = len(counts)
        prediction = baseline.get("prediction") or {}
        return cls(
            baseline=baseline,
            numeric_slots=numeric_slots,
            categorical_slots=categorical_slots,
            text_slots=text_slots,
            counts=counts,
            missing=np.zeros(n, dtype=np.int64),
            other=np.zeros(n, dtype=np.int64),
            above=np.zeros(n, dtype=np.int64),
            below=np.zeros(n, dtype=np.int64),
            prediction=np.zeros(len(prediction.get("counts", [])), dtype=np.int64),
            started=now,
        )

    def sample(
        self,
        feeds: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        max_rows: int,
    ) -> None:
        """Keep at most ``max_rows`` evenly strided rows of this request's inputs and prediction."""
        predicted = outputs.get("label")
        if predicted is None:
            predicted = outputs.get("variable")
        numeric = feeds.get(NUMERIC_INPUT)
        categorical = feeds.get(CATEGORICAL_INPUT)
        texts = feeds.get(TEXT_INPUT)
        size = _rows_of(feeds)
        if size > max_rows:
            # Every step-th row, copied so the sample does not keep the whole batch alive.
            step = math.ceil(size / max_rows)
            numeric, categorical, texts, predicted = (
                None if part is None else part[::step].copy()
                for part in (numeric, categorical, texts, predicted)
            )
            size = len(range(0, size, step))
        if size:
            self.add((numeric, categorical, texts, predicted), size)

    def add(self, sampled: _Sampled, count: int) -> None:
        """Keep this request's sampled rows for the next fold (no copy, no counting here)."""
        self.pending.append(sampled)
        self.pending_rows += count
        self.rows += count
        self.requests += 1
        if self.pending_rows >= FOLD_ROWS:
            self.fold()

    def fold(self) -> None:
        """Count every pending row into the histograms."""
        if not self.pending:
            return
        pending, self.pending, self.pending_rows = self.pending, [], 0
        numeric, categorical, texts, predicted = (
            None if any(p is None for p in part) else np.concatenate(part)
            for part in zip(*pending, strict=True)
        )
        self._count(
            numeric, categorical, texts, None if predicted is None else predicted.reshape(-1)
        )

    def _count(
        self,
        numeric: np.ndarray | None,
        categorical: np.ndarray | None,
        texts: np.ndarray | None,
        predicted: np.ndarray | None,
    ) -> None:
        features = self.baseline["features"]
        if numeric is not None:
            for i, j in self.numeric_slots:
                self._count_numbers(i, numeric[:, j])
        if categorical is not None:
            for i, j in self.categorical_slots:
                counts, other, missing = category_counts(
                    categorical[:, j], features[i]["categories"]
                )
                self.counts[i] += counts
                self.other[i] += other
                self.missing[i] += missing
        if texts is not None:
            for slot in self.text_slots:
                column = texts[:, slot.column].tolist()
                self._count_numbers(slot.feature, text_measure(slot.measure, column, slot.known))
        prediction = self.baseline.get("prediction") or {}
        if predicted is None:
            return
        if prediction.get("kind") == "classes":
            counts, other, _ = category_counts(predicted.astype(object), prediction["classes"])
            self.prediction += counts
            self.prediction_other += other
        elif prediction.get("kind") == "numeric":
            counts, _ = numeric_counts(predicted.astype(np.float64), prediction["edges"])
            self.prediction += counts

    def _count_numbers(self, i: int, values: np.ndarray) -> None:
        """Bin feature ``i``'s values and count those outside its training range."""
        feature = self.baseline["features"][i]
        # float64 as in training, where the range was taken: a training value is never outside.
        values = np.asarray(values, dtype=np.float64)
        counts, missing = numeric_counts(values, feature["edges"])
        self.counts[i] += counts
        self.missing[i] += missing
        if feature.get("max") is not None:
            self.above[i] += np.count_nonzero(values > feature["max"])
        if feature.get("min") is not None:
            self.below[i] += np.count_nonzero(values < feature["min"])

    def _feature_summary(self, i: int, feature: Mapping[str, Any]) -> dict[str, Any]:
        part = {
            "counts": self.counts[i].tolist(),
            "missing": int(self.missing[i]),
            "other": int(self.other[i]),
        }
        if _has_range(feature):
            part.update(above=int(self.above[i]), below=int(self.below[i]))
        return part

    def summary(self, model: str, version: int, ended: float) -> dict[str, Any]:
        self.fold()
        features = self.baseline["features"]
        return {
            "format": FORMAT,
            "model": model,
            "version": version,
            "started_at": self.started,
            "ended_at": ended,
            "rows": self.rows,
            "requests": self.requests,
            "features": {
                feature["name"]: self._feature_summary(i, feature)
                for i, feature in enumerate(features)
            },
            "prediction": {
                "counts": self.prediction.tolist(),
                "other": self.prediction_other,
            },
        }


def _has_range(feature: Mapping[str, Any]) -> bool:
    """Whether a baseline entry keeps the range seen in training (numeric and text entries)."""
    return feature.get("min") is not None and feature.get("max") is not None


class DriftRecorder:
    """Bounded, sampled input/output counts per served model version (see the module docstring).

    One per container. ``record`` is called once per successful prediction request; it returns
    the summaries that are due, as ``(key, body)`` pairs for the caller to ``put_object`` into the
    model bucket. It never raises: drift sampling must not fail a prediction.
    """

    def __init__(
        self,
        *,
        sample_rate: float = 1.0,
        max_rows_per_request: int = 100,
        flush_seconds: float = 300.0,
        enabled: bool = True,
        seed: int | None = None,
        clock: Any = time.time,
    ) -> None:
        self.sample_rate = min(1.0, max(0.0, sample_rate))
        self.max_rows_per_request = max(1, max_rows_per_request)
        self.flush_seconds = max(0.0, flush_seconds)
        self.enabled = enabled
        self.writer = uuid.uuid4().hex[:8]
        self._random = random.Random(seed)
        self._clock = clock
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._without_baseline: set[tuple[str, int]] = set()
        self._sequence = 0
        self.errors = 0
        # The earliest time a tally can be due: most requests compare one float and stop there.
        self._next_due = float("inf")

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> DriftRecorder:
        """``DRIFT_SAMPLE_RATE`` (share of requests, default 1), ``DRIFT_MAX_ROWS_PER_REQUEST``
        (default 100), ``DRIFT_FLUSH_SECONDS`` (default 300); ``DRIFT_SAMPLING=off`` disables."""
        return cls(
            sample_rate=settings.drift_sample_rate,
            max_rows_per_request=settings.drift_max_rows_per_request,
            flush_seconds=settings.capture_flush_seconds,
            enabled=settings.drift_sampling,
        )

    def record(
        self,
        model: str,
        version: int,
        document: Mapping[str, Any],
        feeds: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> list[tuple[str, bytes]]:
        """Count a sample of this request; return the summaries now due for writing."""
        if not self.enabled:
            return []
        try:
            if self.sample_rate >= 1.0 or self._random.random() < self.sample_rate:
                tally = self._tally(model, int(version), document)
                if tally is not None:
                    tally.sample(feeds, outputs, self.max_rows_per_request)
            if self._clock() < self._next_due:
                return []
            return self.due()
        except Exception:  # sampling is best effort: a bad shape must not fail the request
            self.errors += 1
            return []

    def _tally(self, model: str, version: int, document: Mapping[str, Any]) -> _Tally | None:
        """The version's counts, started on its first request; None without an inline baseline
        or beyond MAX_VERSIONS (bounded memory: those wait for the next flush)."""
        key = (model, version)
        tally = self._tallies.get(key)
        if tally is not None or key in self._without_baseline:
            return tally
        if len(self._tallies) >= MAX_VERSIONS:
            return None
        tally = _Tally.for_document(document, self._clock())
        if tally is None:  # no inline baseline (an older or very wide version)
            if len(self._without_baseline) >= 64:
                self._without_baseline.clear()
            self._without_baseline.add(key)
            return None
        self._tallies[key] = tally
        self._next_due = min(self._next_due, tally.started + self.flush_seconds)
        return tally

    def due(self, force: bool = False) -> list[tuple[str, bytes]]:
        """Summaries older than ``flush_seconds`` (or all, with ``force``), as (key, body)."""
        now = self._clock()
        out: list[tuple[str, bytes]] = []
        for (model, version), tally in list(self._tallies.items()):
            if tally.rows == 0:
                continue
            if not force and now - tally.started < self.flush_seconds:
                continue
            self._sequence += 1
            body = json.dumps(tally.summary(model, version, now), separators=(",", ":"))
            out.append(
                (summary_key(model, version, now, self.writer, self._sequence), body.encode())
            )
            del self._tallies[(model, version)]
        self._next_due = min(
            (t.started + self.flush_seconds for t in self._tallies.values()), default=float("inf")
        )
        return out


def _rows_of(feeds: Mapping[str, np.ndarray]) -> int:
    for array in feeds.values():
        return len(array)
    return 0


# --------------------------------------------------------------------------------- comparison
def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population Stability Index of two count (or proportion) vectors over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def merge_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up summaries of one version (same baseline, so same shapes). Per feature, ``ranged``
    is how many present values were checked against the training range: summaries written
    before the recorder counted ``above``/``below`` add to the bins but not to it."""
    merged: dict[str, Any] = {"rows": 0, "requests": 0, "features": {}, "prediction": None}
    for summary in summaries:
        merged["rows"] += int(summary.get("rows", 0))
        merged["requests"] += int(summary.get("requests", 0))
        for name, part in summary.get("features", {}).items():
            into = merged["features"].setdefault(
                name,
                {
                    "counts": np.zeros(len(part["counts"]), np.int64),
                    "missing": 0,
                    "other": 0,
                    "above": 0,
                    "below": 0,
                    "ranged": 0,
                },
            )
            if len(into["counts"]) != len(part["counts"]):
                continue
            counts = np.asarray(part["counts"], dtype=np.int64)
            into["counts"] += counts
            into["missing"] += int(part.get("missing", 0))
            into["other"] += int(part.get("other", 0))
            if "above" in part or "below" in part:
                into["above"] += int(part.get("above", 0))
                into["below"] += int(part.get("below", 0))
                into["ranged"] += int(counts.sum())
        prediction = summary.get("prediction")
        if prediction:
            if merged["prediction"] is None:
                merged["prediction"] = {
                    "counts": np.zeros(len(prediction["counts"]), np.int64),
                    "other": 0,
                }
            if len(merged["prediction"]["counts"]) == len(prediction["counts"]):
                merged["prediction"]["counts"] += np.asarray(prediction["counts"], np.int64)
                merged["prediction"]["other"] += int(prediction.get("other", 0))
    return merged


def _bins(part: Mapping[str, Any]) -> list[float]:
    """Counts with the extra bins (other, missing) every feature is compared on."""
    return [*np.asarray(part["counts"]).tolist(), part.get("other", 0), part.get("missing", 0)]


def outside_range(feature: Mapping[str, Any], observed: Mapping[str, Any]) -> float | None:
    """Share of the served present values outside the training range (None without a range or
    without served values checked against it)."""
    checked = int(observed.get("ranged", 0))
    if not _has_range(feature) or checked <= 0:
        return None
    return round((int(observed.get("above", 0)) + int(observed.get("below", 0))) / checked, 6)


def drift_report(baseline: Mapping[str, Any], merged: Mapping[str, Any]) -> dict[str, Any]:
    """PSI per feature and for the predictions; ``score`` is the largest feature PSI. A text
    entry also names its ``column`` and ``measure``."""
    features = []
    for feature in baseline.get("features", []):
        observed = merged["features"].get(feature["name"])
        if observed is None or len(observed["counts"]) != len(feature["counts"]):
            continue
        features.append(
            {
                "name": feature["name"],
                "kind": feature["kind"],
                **{key: feature[key] for key in ("column", "measure") if key in feature},
                "psi": round(psi(_bins(feature), _bins(observed)), 6),
                "outside_range": outside_range(feature, observed),
                "baseline": _bins(feature),
                "observed": _bins(observed),
            }
        )
    features.sort(key=lambda f: -f["psi"])
    prediction_psi = None
    expected = baseline.get("prediction")
    observed_prediction = merged.get("prediction")
    if (
        expected
        and observed_prediction
        and len(expected["counts"]) == len(observed_prediction["counts"])
    ):
        prediction_psi = round(
            psi(
                [*expected["counts"], expected.get("other", 0)],
                [*np.asarray(observed_prediction["counts"]).tolist(), observed_prediction["other"]],
            ),
            6,
        )
    return {
        "rows": int(merged["rows"]),
        "requests": int(merged["requests"]),
        "score": max((f["psi"] for f in features), default=0.0),
        "prediction_psi": prediction_psi,
        "features": features,
    }
