"""mlstack_core.drift: the training baseline, the serving-side recorder, PSI; and the baseline's way
from Preprocess through Evaluate to the registered version."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from mlstack_core import drift, storage_keys
from mlstack_core.drift import DriftRecorder, drift_report, merge_summaries, psi
from mlstack_core.tabular import feature_feeds, read_split
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import Stack, load_handler, register_event
from tests.helpers.tables import penguins_bytes

pytestmark = pytest.mark.unit

SCHEMA = {"numeric": ["x", "z"], "categorical": ["c"]}


def _data(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    numeric = np.column_stack([rng.normal(shift, 1, n), rng.uniform(0, 10, n)]).astype(np.float32)
    numeric[::17, 1] = np.nan
    categorical = rng.choice(["a", "b", "c", ""], size=(n, 1), p=[0.5, 0.3, 0.15, 0.05]).astype(
        object
    )
    return numeric, categorical


def _document(n: int = 2000) -> dict[str, Any]:
    numeric, categorical = _data(n, 0)
    baseline = drift.feature_baseline(SCHEMA, {"numeric": numeric, "categorical": categorical})
    baseline["prediction"] = drift.prediction_baseline(
        "classification",
        {"label": np.asarray(["yes", "no"] * (n // 2), dtype=object)},
        ["no", "yes"],
    )
    return {"schema": SCHEMA, "drift_baseline": baseline}


def test_baseline_bins_numeric_by_quantiles_and_counts_categories() -> None:
    baseline = _document()["drift_baseline"]
    x, z, c = baseline["features"]
    assert x["kind"] == "numeric"
    assert len(x["edges"]) == 9
    # deciles of the training data: about a tenth of the rows in each bin
    assert max(x["counts"]) - min(x["counts"]) <= 2
    assert z["missing"] == len(range(0, 2000, 17))
    assert c["kind"] == "categorical"
    assert c["categories"] == ["a", "b", "c"]
    assert sum(c["counts"]) + c["missing"] + c["other"] == 2000
    assert baseline["prediction"] == {
        "kind": "classes",
        "classes": ["no", "yes"],
        "counts": [1000, 1000],
        "other": 0,
    }


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    assert psi([50, 50], [90, 10]) > 0.25
    assert psi([50, 50], [0, 100]) < 10  # an empty bin is large but finite


def _record(
    recorder: DriftRecorder,
    document: Mapping[str, Any],
    numeric: np.ndarray,
    categorical: np.ndarray,
    requests: int = 10,
) -> list[dict[str, Any]]:
    written = []
    for chunk_n, chunk_c in zip(
        np.array_split(numeric, requests), np.array_split(categorical, requests), strict=True
    ):
        labels = np.asarray(["yes"] * chunk_n.shape[0], dtype=object)
        feeds = {"numeric": chunk_n, "categorical": chunk_c}
        written += recorder.record("m", 3, document, feeds, {"label": labels})
    written += recorder.due(force=True)
    return [json.loads(body) for _, body in written]


def test_recorded_traffic_like_training_scores_low_and_shifted_traffic_high() -> None:
    document = _document()
    same = _record(DriftRecorder(), document, *_data(3000, 1))
    shifted_numeric, categorical = _data(3000, 2, shift=1.5)
    shifted = _record(DriftRecorder(), document, shifted_numeric, categorical)

    calm = drift_report(document["drift_baseline"], merge_summaries(same))
    moved = drift_report(document["drift_baseline"], merge_summaries(shifted))
    assert calm["rows"] == 1000  # 10 requests x at most 100 rows each
    assert calm["score"] < 0.1
    assert moved["score"] > 0.25
    assert moved["features"][0]["name"] == "x"  # the shifted feature ranks first
    assert {f["name"]: f["psi"] for f in moved["features"]}["z"] < 0.1
    assert moved["prediction_psi"] > 0.25  # all "yes" against a 50/50 holdout


def test_summaries_hold_counts_only_and_are_bounded() -> None:
    document = _document()
    numeric, categorical = _data(50_000, 3)
    categorical[:, 0] = "alice@example.com"  # what a caller sent never leaves as a value
    recorder = DriftRecorder(max_rows_per_request=100)
    (summary,) = _record(recorder, document, numeric, categorical, requests=5)
    text = json.dumps(summary)
    assert "alice" not in text
    assert summary["rows"] == 500
    assert summary["features"]["c"]["other"] == 500
    assert len(text) < 2000


def test_rows_wait_for_a_bulk_count_that_matches_counting_each_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = _document()
    numeric, categorical = _data(3000, 6)
    (reference,) = _record(DriftRecorder(), document, numeric, categorical, requests=30)

    monkeypatch.setattr(drift, "FOLD_ROWS", 250)  # fold every few requests instead of at the end
    recorder = DriftRecorder()
    folded = _record(recorder, document, numeric, categorical, requests=30)

    times = {"started_at": 0, "ended_at": 0}
    assert [{**s, **times} for s in folded] == [{**reference, **times}]
    assert reference["rows"] == 3000
    assert reference["requests"] == 30
    assert not recorder._tallies  # flushed: nothing pending or held


def test_pending_rows_stay_below_the_fold_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift, "FOLD_ROWS", 300)
    recorder = DriftRecorder()
    document = _document()
    numeric, categorical = _data(100, 7)
    feeds = {"numeric": numeric, "categorical": categorical}
    outputs = {"label": np.asarray(["no"] * 100, dtype=object)}
    pending = []
    for _ in range(10):
        recorder.record("m", 3, document, feeds, outputs)
        pending.append(recorder._tallies[("m", 3)].pending_rows)
    assert max(pending) < 300
    assert recorder._tallies[("m", 3)].rows == 1000


def test_flush_is_periodic_per_version_and_keys_are_dated() -> None:
    now = [1_800_000_000.0]
    recorder = DriftRecorder(flush_seconds=300, clock=lambda: now[0])
    document = _document()
    numeric, categorical = _data(10, 4)
    feeds = {"numeric": numeric, "categorical": categorical}
    outputs = {"label": np.asarray(["no"] * 10, dtype=object)}
    assert recorder.record("m", 3, document, feeds, outputs) == []
    now[0] += 301
    ((key, _),) = recorder.record("m", 3, document, feeds, outputs)
    assert key.startswith("monitoring/m/3/summaries/2027-01-15/")
    assert storage_keys.summary_time(key) == pytest.approx(now[0], abs=1)
    assert recorder.due(force=True) == []


def test_sampling_never_raises_and_skips_versions_without_a_baseline() -> None:
    recorder = DriftRecorder(flush_seconds=0)
    numeric, categorical = _data(10, 5)
    feeds = {"numeric": numeric, "categorical": categorical}
    assert recorder.record("m", 1, {"schema": SCHEMA}, feeds, {}) == []
    broken = copy.deepcopy(_document())
    broken["drift_baseline"]["features"][0]["edges"] = "not a list"
    assert recorder.record("m", 2, broken, feeds, {}) == []
    assert recorder.errors == 1
    assert DriftRecorder(sample_rate=0.0).record("m", 3, _document(), feeds, {}) == []


@pytest.mark.slow
def test_the_pipeline_stores_the_baseline_beside_the_version(aws: Stack) -> None:
    # A holdout: a random fifth of the rows, served in one request, looks like training. (Judged
    # by cross-validation the "holdout" file is every row in file order, and one request samples
    # its first rows.)
    aws.put_spec("penguins", {"target": "species", "judge": "holdout"})
    state = aws.run_pipeline("penguins", penguins_bytes())
    evaluation = state["evaluation"]
    assert evaluation["drift_baseline_key"].endswith("/drift_baseline.json")
    event = register_event("promote", state["run"], evaluation)
    load_handler("register")(event, FakeLambdaContext())

    document = aws.registry.get_version("penguins", 1)
    assert document["files"] == {
        "evaluation": "models/penguins/1/evaluation.json",
        "predictions": "models/penguins/1/holdout_predictions.npz",
        "baseline": "models/penguins/1/baseline.json",
        "background": "models/penguins/1/background.json",
    }
    stored = aws.read_json("models/penguins/1/baseline.json")
    assert document["drift_baseline"] == stored
    kinds = {f["name"]: f["kind"] for f in stored["features"]}
    assert kinds["bill_length_mm"] == "numeric"
    assert kinds["island"] == "categorical"
    assert (
        sum(stored["features"][0]["counts"]) + stored["features"][0]["missing"]
        == (state["run"]["splits"]["train_rows"])
    )
    assert stored["prediction"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]

    # The holdout, served, is the training distribution: the report calls it stable.
    holdout = read_split(
        aws.s3.get_object(Bucket=aws.model_bucket, Key=state["run"]["splits"]["holdout_key"])[
            "Body"
        ].read()
    )
    feeds = feature_feeds(holdout, document["schema"])
    numeric, categorical = feeds["numeric"], feeds["categorical"]
    with np.load(
        __import__("io").BytesIO(
            aws.s3.get_object(Bucket=aws.model_bucket, Key=document["files"]["predictions"])[
                "Body"
            ].read()
        )
    ) as predictions:
        labels = predictions["best_label"].astype(object)
        assert predictions["y"].shape == labels.shape
    summaries = _record(DriftRecorder(), document, numeric, categorical, requests=1)
    counts, other, _ = drift.category_counts(labels, stored["prediction"]["classes"])
    summaries[0]["prediction"] = {"counts": counts.tolist(), "other": other}
    report = drift_report(stored, merge_summaries(summaries))
    assert report["score"] < 0.25
    assert report["prediction_psi"] == pytest.approx(0.0, abs=1e-6)

    importance = document["feature_importance"]
    if importance is not None:
        names = [f["name"] for f in importance["features"]]
        assert sorted(names) == sorted(
            document["schema"]["numeric"] + document["schema"]["categorical"]
        )
        assert importance["features_total"] == len(names)
        assert sum(f["importance"] for f in importance["features"]) == pytest.approx(1, abs=1e-3)


@pytest.mark.parametrize("body", ["penguins", "mixed"])
def test_the_training_baseline_reuses_the_numbers_preprocess_parsed(body: str) -> None:
    """Preprocess builds the baseline from the numeric columns its profile already parsed; it
    is the baseline the cells give when parsed again (missing values and dates included)."""
    from mlstack_preprocess.preprocess import model_feeds, training_baseline
    from tests.helpers.tables import mixed_prepared, prepared_from

    prepared = (
        prepared_from(penguins_bytes(), target="species")
        if body == "penguins"
        else mixed_prepared()
    )
    assert prepared.numeric_arrays, "the profile parsed no numeric column"
    feeds = feature_feeds(prepared.table, prepared.schema)
    index = prepared.train_index
    from_cells = drift.feature_baseline(
        prepared.schema, {name: feed[index] for name, feed in feeds.items()}
    )
    assert training_baseline(prepared, model_feeds(prepared)) == from_cells
