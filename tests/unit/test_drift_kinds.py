"""Drift of the new column kinds: a datetime column's parts and a text column's measures are in
the baseline, serving counts them the same way, and the report flags dates past the training
range and texts in another vocabulary while traffic like training's stays calm. Numbers and
categories are binned and compared as before, with the training range now checked too."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from mlstack_core import drift
from mlstack_core.drift import DriftRecorder, drift_report, merge_summaries
from mlstack_core.kinds import text as text_kind
from mlstack_core.spec import load_spec, resolve_task
from mlstack_core.tabular import feature_feeds, prepare, read_csv, target_values
from mlstack_monitor.monitor import described

pytestmark = pytest.mark.unit

SPEC = {
    "target": "y",
    "columns": {
        "types": {"order_id": "identifier", "placed_at": "datetime", "note": "text"},
    },
}
SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ri", "so", "tu", "ba", "de", "fo", "gi", "ha"]
FOREIGN_SYLLABLES = ["zy", "qe", "xo", "vu", "jy", "wo"]
TRAINING_START = datetime(2023, 1, 1)
THRESHOLD = 0.25  # spec.drift.threshold's default


def _words(syllables: list[str]) -> list[str]:
    return [a + b + c for a in syllables for b in syllables for c in syllables]


def _table(
    n: int, seed: int, start: datetime = TRAINING_START, syllables: list[str] = SYLLABLES
) -> bytes:
    """Orders placed over a year from ``start``, with a note of 6 to 12 words drawn with Zipf-like
    frequencies from a vocabulary (over 2,000 words: more than the 500 the baseline knows)."""
    rng = np.random.default_rng(seed)
    vocabulary = _words(syllables)
    frequency = 1.0 / np.arange(1, len(vocabulary) + 1)
    frequency /= frequency.sum()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["order_id", "amount", "region", "placed_at", "note", "y"])
    for i in range(n):
        placed = start + timedelta(minutes=int(rng.integers(0, 365 * 24 * 60)))
        words = rng.choice(vocabulary, size=int(rng.integers(6, 13)), p=frequency)
        writer.writerow(
            [
                100_000 + i,
                round(float(rng.normal(50, 10)), 2),
                rng.choice(["north", "south", "east"], p=[0.5, 0.3, 0.2]),
                placed.isoformat(),
                " ".join(words),
                rng.choice(["yes", "no"]),
            ]
        )
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """A version's schema and inline baseline, as Preprocess builds them from the training split."""
    spec = load_spec(json.dumps(SPEC).encode())
    table = read_csv(_table(2500, seed=0), required=["y"])
    prepared = prepare(table, resolve_task(spec, target_values(table, "y")))
    feeds = feature_feeds(prepared.table, prepared.schema)
    train = {name: feed[prepared.train_index] for name, feed in feeds.items()}
    baseline = drift.feature_baseline(prepared.schema, train)
    baseline["prediction"] = drift.prediction_baseline(
        "classification", {"label": np.asarray(["yes", "no"] * 500, dtype=object)}, ["no", "yes"]
    )
    assert drift.compact(baseline) is not None  # inline, so serving records it
    return {"schema": prepared.schema, "drift_baseline": baseline}


def _served(body: bytes, schema: dict[str, Any]) -> dict[str, np.ndarray]:
    return feature_feeds(read_csv(body), schema)


def _report(document: dict[str, Any], feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Serve ``feeds`` in 20 requests through a recorder, then merge and compare as the Monitor."""
    recorder = DriftRecorder()
    rows = len(next(iter(feeds.values())))
    written = []
    for index in np.array_split(np.arange(rows), 20):
        request = {name: feed[index] for name, feed in feeds.items()}
        labels = {"label": np.asarray(["yes", "no"] * (len(index) // 2), dtype=object)}
        written += recorder.record("m", 1, document, request, labels)
    written += recorder.due(force=True)
    summaries = [json.loads(body) for _, body in written]
    return drift_report(document["drift_baseline"], merge_summaries(summaries))


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["features"]}


def test_the_baseline_bins_datetime_parts_and_two_measures_of_each_text(
    document: dict[str, Any],
) -> None:
    baseline = document["drift_baseline"]
    entries = {f["name"]: f for f in baseline["features"]}
    assert "order_id" not in entries  # an identifier is no feature
    assert [name for name in entries if name.startswith("placed_at.")] == [
        "placed_at.year",
        "placed_at.month",
        "placed_at.day",
        "placed_at.day_of_week",
        "placed_at.day_of_year",
        "placed_at.hour",
        "placed_at.days_since_epoch",
    ]
    instant = entries["placed_at.days_since_epoch"]
    placed_at = next(f for f in document["schema"]["features"] if f["name"] == "placed_at")
    # The range the schema states, as days: the training split lies within it (float32 apart).
    first, last = (
        (datetime.fromisoformat(placed_at[end].rstrip("Z")) - datetime(1970, 1, 1)).days
        for end in ("first", "last")
    )
    assert first - 0.01 <= instant["min"] < instant["max"] <= last + 1.01
    assert len(instant["edges"]) == drift.NUMERIC_BINS - 1

    words, unknown = entries["note.words"], entries["note.unknown_share"]
    for entry, measure in ((words, "words"), (unknown, "unknown_share")):
        assert entry["kind"] == "text"
        assert entry["column"] == "note"
        assert entry["measure"] == measure
        assert sum(entry["counts"]) == baseline["rows"]  # every note has words
    assert (words["min"], words["max"]) == (6, 12)
    assert len(unknown["known"]) == drift.KNOWN_WORDS
    assert "known" not in words
    # Over 2,000 words, 500 known: the rarer words make a spread of shares, not one bin.
    assert 0 <= unknown["min"] < unknown["max"] <= 1
    assert len(unknown["edges"]) >= 3


def test_traffic_like_training_is_calm(document: dict[str, Any]) -> None:
    report = _report(document, _served(_table(2000, seed=1), document["schema"]))
    features = _by_name(report)
    assert report["rows"] == 2000
    assert report["score"] < 0.1
    assert features["placed_at.days_since_epoch"]["outside_range"] < 0.01
    assert features["note.unknown_share"]["psi"] < 0.1
    assert features["note.words"]["outside_range"] == 0.0


def test_dates_years_past_training_drift_and_are_outside_the_range(
    document: dict[str, Any],
) -> None:
    later = _table(2000, seed=2, start=datetime(2029, 6, 1))
    features = _by_name(_report(document, _served(later, document["schema"])))

    instant = features["placed_at.days_since_epoch"]
    assert instant["psi"] > 4 * THRESHOLD
    assert instant["outside_range"] == 1.0
    # The Monitor's alert names the share outside, which PSI alone does not tell.
    assert described(instant) == (
        f"placed_at.days_since_epoch (PSI {instant['psi']:.2f}, 100.0% outside the training range)"
    )
    assert "outside" not in described(features["placed_at.day_of_week"])
    assert features["placed_at.year"]["psi"] > THRESHOLD
    assert features["placed_at.year"]["outside_range"] == 1.0
    # The calendar parts that do not move with the years stay where they were.
    assert features["placed_at.day_of_week"]["psi"] < 0.1
    assert features["placed_at.day_of_week"]["outside_range"] == 0.0
    assert features["note.unknown_share"]["psi"] < 0.1
    assert features["amount"]["psi"] < 0.1


def test_texts_in_another_vocabulary_drift_on_the_unknown_share(document: dict[str, Any]) -> None:
    foreign = _table(2000, seed=3, syllables=FOREIGN_SYLLABLES)
    report = _report(document, _served(foreign, document["schema"]))
    features = _by_name(report)

    unknown = features["note.unknown_share"]
    assert report["features"][0]["name"] == "note.unknown_share"
    assert unknown["psi"] > 4 * THRESHOLD
    assert (unknown["kind"], unknown["column"], unknown["measure"]) == (
        "text",
        "note",
        "unknown_share",
    )
    # Every word unknown: a share of 1, past the most any training note had.
    assert unknown["outside_range"] == 1.0
    assert features["note.words"]["psi"] < 0.1  # as many words as before, other ones
    assert features["placed_at.days_since_epoch"]["psi"] < 0.1


def test_serving_measures_texts_as_training_did(document: dict[str, Any]) -> None:
    """The recorder's bins of the training notes are the baseline's own counts."""
    baseline = document["drift_baseline"]
    entry = next(f for f in baseline["features"] if f["name"] == "note.unknown_share")
    spec = load_spec(json.dumps(SPEC).encode())
    table = read_csv(_table(2500, seed=0), required=["y"])
    prepared = prepare(table, resolve_task(spec, target_values(table, "y")))
    texts = feature_feeds(prepared.table, prepared.schema)["text"][prepared.train_index, 0]
    shares = drift.text_measure("unknown_share", texts.tolist(), frozenset(entry["known"]))
    counts, missing = drift.numeric_counts(shares, entry["edges"])
    assert counts.tolist() == entry["counts"]
    assert missing == entry["missing"] == 0
    expected = text_kind.unknown_shares(texts.tolist(), frozenset(entry["known"]))
    assert shares.tolist() == pytest.approx(expected)


def test_many_text_columns_share_the_known_words_budget() -> None:
    """Known words are cut to a byte budget across columns: the baseline stays inline."""
    columns = [f"note_{i}" for i in range(40)]
    schema = {"text": columns, "features": [{"name": name, "kind": "text"} for name in columns]}
    rng = np.random.default_rng(4)
    vocabulary = [f"{word}{word}" for word in _words(SYLLABLES)]  # 12-letter words
    texts = np.empty((300, len(columns)), dtype=object)
    for j in range(len(columns)):
        texts[:, j] = [" ".join(rng.choice(vocabulary, size=8)) for _ in range(300)]
    baseline = drift.feature_baseline(schema, {"text": texts})

    known = [f["known"] for f in baseline["features"] if f.get("measure") == "unknown_share"]
    assert len(known) == len(columns)
    assert 0 < len(known[0]) < drift.KNOWN_WORDS
    stored = sum(len(json.dumps(words, separators=(",", ":"))) for words in known)
    assert stored <= drift.KNOWN_WORDS_BYTES
    assert drift.compact(baseline) is not None


# ----------------------------------------------------------------- numbers and categories


NUMERIC_SCHEMA = {"numeric": ["x", "z"], "categorical": ["c"]}


def _numbers(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    numeric = np.column_stack([rng.normal(shift, 1, n), rng.uniform(0, 10, n)]).astype(np.float32)
    numeric[::17, 1] = np.nan
    categorical = rng.choice(["a", "b", "c", ""], size=(n, 1), p=[0.5, 0.3, 0.15, 0.05])
    return {"numeric": numeric, "categorical": categorical.astype(object)}


def _numbers_document() -> dict[str, Any]:
    baseline = drift.feature_baseline(NUMERIC_SCHEMA, _numbers(2000, 0))
    return {"schema": NUMERIC_SCHEMA, "drift_baseline": baseline}


def test_numbers_and_categories_are_binned_and_compared_as_before() -> None:
    document = _numbers_document()
    baseline = document["drift_baseline"]
    assert [(f["name"], f["kind"]) for f in baseline["features"]] == [
        ("x", "numeric"),
        ("z", "numeric"),
        ("c", "categorical"),
    ]
    assert baseline["format"] == 1

    served = _numbers(1000, 1, shift=1.5)
    recorder = DriftRecorder(max_rows_per_request=1000)
    labels = {"label": np.asarray(["yes"] * 1000, dtype=object)}
    recorder.record("m", 1, document, served, labels)
    ((_, body),) = recorder.due(force=True)
    summary = json.loads(body)

    # The bins are those of the binning functions over the served rows, as before.
    x, z, c = baseline["features"]
    for entry, column in ((x, 0), (z, 1)):
        counts, missing = drift.numeric_counts(served["numeric"][:, column], entry["edges"])
        part = summary["features"][entry["name"]]
        assert (part["counts"], part["missing"], part["other"]) == (counts.tolist(), missing, 0)
    counts, other, missing = drift.category_counts(served["categorical"][:, 0], c["categories"])
    assert summary["features"]["c"] == {
        "counts": counts.tolist(),
        "missing": missing,
        "other": other,
    }
    # The training range, newly checked: x moved up by 1.5 standard deviations.
    values = served["numeric"][:, 0].astype(np.float64)
    assert summary["features"]["x"]["above"] == int(np.sum(values > x["max"]))
    assert summary["features"]["x"]["below"] == int(np.sum(values < x["min"]))
    assert summary["features"]["x"]["above"] > 0

    report = drift_report(baseline, merge_summaries([summary]))
    features = _by_name(report)
    assert report["features"][0]["name"] == "x"
    assert features["x"]["psi"] > THRESHOLD
    assert features["x"]["psi"] == pytest.approx(
        drift.psi(drift._bins(x), drift._bins(summary["features"]["x"])), abs=1e-6
    )
    assert features["z"]["psi"] < 0.1
    assert features["c"]["outside_range"] is None  # categories have no range
    assert features["z"]["outside_range"] < 0.01  # the same uniform range, give or take


def test_summaries_without_range_counts_still_merge() -> None:
    """Summaries written before the range was counted add to the bins, not to the share."""
    document = _numbers_document()
    served = _numbers(200, 2, shift=10.0)  # every x far above training
    recorder = DriftRecorder(max_rows_per_request=200)
    recorder.record("m", 1, document, served, {})
    ((_, body),) = recorder.due(force=True)
    new = json.loads(body)
    old = json.loads(body)
    for part in old["features"].values():
        part.pop("above", None)
        part.pop("below", None)

    merged = merge_summaries([old, new])
    assert merged["rows"] == 400
    assert merged["features"]["x"]["counts"].sum() == 400
    assert merged["features"]["x"]["ranged"] == 200
    report = drift_report(document["drift_baseline"], merged)
    assert _by_name(report)["x"]["outside_range"] == 1.0

    only_old = drift_report(document["drift_baseline"], merge_summaries([old]))
    assert _by_name(only_old)["x"]["outside_range"] is None
    assert _by_name(only_old)["x"]["psi"] == _by_name(report)["x"]["psi"]


def test_mlstack_monitor_says_how_much_was_outside_the_training_range() -> None:
    from mlstack.cli.monitoring import describe_drift

    lines = describe_drift(
        {
            "version": 2,
            "status": "drift",
            "rows": 400,
            "threshold": 0.25,
            "features": [
                {"name": "placed_at.days_since_epoch", "psi": 8.3, "outside_range": 1.0},
                {"name": "amount", "psi": 0.01, "outside_range": 0.0},
            ],
        }
    )
    assert any("placed_at.days_since_epoch" in line and "100% outside" in line for line in lines)
    assert not any("amount" in line and "outside" in line for line in lines)
