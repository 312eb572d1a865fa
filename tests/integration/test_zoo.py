"""A wide grid through the local cloud: many Map items trained in parallel, one of them a
cross-validated search, and a winner whose registry version explains itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.spec import CLASSIFICATION_METRICS
from tests.helpers.local_cloud import penguin_rows, to_csv

pytestmark = pytest.mark.integration

MODEL = "penguins-zoo"
SPEC: dict[str, Any] = {
    "target": "species",
    "max_concurrency": 4,
    "candidates": [
        {"family": "logistic_regression", "grid": {"C": [0.1, 1.0, 10.0]}},
        {
            "family": "random_forest",
            "params": {"n_estimators": 30},
            "grid": {"max_depth": [4, 8], "min_samples_leaf": [2, 5]},
        },
        {"family": "knn", "grid": {"n_neighbors": [5, 15]}},
        {"family": "extra_trees", "params": {"n_estimators": 30}},
        {"family": "gradient_boosting", "params": {"n_estimators": 30}},
        {"family": "hist_gradient_boosting", "grid": {"learning_rate": [0.05, 0.1]}, "cv": 3},
    ],
}
GRID_POINTS = 3 + 4 + 2 + 1 + 1 + 1


@pytest.fixture(scope="module")
def run(cloud: LocalCloud, stack: StackClient) -> dict[str, Any]:
    upload = stack.upload_dataset(MODEL, to_csv(penguin_rows()), SPEC, file_name="zoo.csv")
    execution_arn = stack.find_execution(upload)
    result = cloud.wait_for_execution(execution_arn)
    assert result["status"] == "SUCCEEDED", result.get("cause")
    events = cloud.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    return {
        "arn": execution_arn,
        "upload": upload,
        "output": json.loads(result["output"]),
        "events": events,
    }


def _intervals(events: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    """(start, end) of every Map iteration, by iteration index."""
    started: dict[int, datetime] = {}
    ended: dict[int, datetime] = {}
    for event in events:
        if event["type"] == "MapIterationStarted":
            started[event["mapIterationStartedEventDetails"]["index"]] = event["timestamp"]
        elif event["type"] == "MapIterationSucceeded":
            ended[event["mapIterationSucceededEventDetails"]["index"]] = event["timestamp"]
    assert started.keys() == ended.keys()
    return [(started[i], ended[i]) for i in sorted(started)]


def test_every_grid_point_is_a_map_iteration_and_they_run_in_parallel(
    run: dict[str, Any],
) -> None:
    started = [e for e in run["events"] if e["type"] == "MapIterationStarted"]
    assert len(started) == GRID_POINTS >= 8
    intervals = _intervals(run["events"])
    overlapping = sum(
        1
        for i, (start_i, end_i) in enumerate(intervals)
        for start_j, end_j in intervals[i + 1 :]
        if start_i < end_j and start_j < end_i
    )
    assert overlapping > 0, "iterations ran one after another"
    # MaxConcurrency (from spec.max_concurrency) bounds how many run at once.
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert 2 <= peak <= SPEC["max_concurrency"]


def test_the_cross_validated_candidate_is_one_item_with_its_search(
    run: dict[str, Any], cloud: LocalCloud
) -> None:
    # The state keeps each Train result's key; the whole entry is the object Train stored.
    s3, bucket = cloud.client("s3"), run["output"]["run"]["splits"]["bucket"]
    trained = [
        json.loads(s3.get_object(Bucket=bucket, Key=t["result_key"])["Body"].read())
        for t in run["output"]["trained"]
    ]
    assert len(trained) == GRID_POINTS
    assert all(t["status"] == "trained" for t in trained), [t["error"] for t in trained]
    (searched,) = [t for t in trained if t["cv"] is not None]
    assert searched["family"] == "hist_gradient_boosting"
    cv = searched["cv"]
    assert cv["folds"] == 3
    assert len(cv["points"]) == 2
    assert cv["best_params"]["learning_rate"] in (0.05, 0.1)
    assert searched["params"]["learning_rate"] == cv["best_params"]["learning_rate"]
    assert 0.5 < cv["best_score"] <= 1.0
    plain = [t for t in trained if t["cv"] is None]
    assert len({json.dumps(t["params"], sort_keys=True) for t in plain}) == len(plain)


def test_the_winner_is_registered_with_everything_that_explains_it(
    run: dict[str, Any], stack: StackClient
) -> None:
    production = stack.registry.get_alias(MODEL)
    assert production is not None
    version: Mapping[str, Any] = stack.registry.get_version(MODEL, production)
    evaluation = run["output"]["evaluation"]
    best = evaluation["best"]

    assert version["status"] == "Approved"
    assert version["status_reason"]
    assert version["family"] == best["family"]
    assert version["candidate_id"] == best["candidate_id"]
    assert version["params"] == best["params"]
    assert set(CLASSIFICATION_METRICS) <= set(version["metrics"])
    assert all(isinstance(version["metrics"][m], float) for m in CLASSIFICATION_METRICS)
    assert version["metrics"]["accuracy"] >= 0.9

    schema = version["schema"]
    island = next(f for f in schema["features"] if f["name"] == "island")
    assert island["kind"] == "categorical"
    assert island["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert version["classes"] == schema["classes"] == ["Adelie", "Chinstrap", "Gentoo"]

    dataset = version["dataset"]
    upload = run["upload"]
    assert (dataset["bucket"], dataset["key"], dataset["version_id"]) == (
        upload["bucket"],
        upload["key"],
        upload["version_id"],
    )
    assert len(dataset["sha256"]) == 64
    assert dataset["rows"] == len(penguin_rows())
    assert version["execution_arn"] == run["arn"]
    assert {"python", "scikit-learn", "skl2onnx", "onnx", "numpy"} <= set(
        version["library_versions"]
    )
    assert version["timings"]["fit_seconds"] > 0
    assert version["timings"]["export_seconds"] > 0


def test_models_command_prints_the_winner_readably(
    run: dict[str, Any], stack: StackClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["models", MODEL]) == 0
    printed = capsys.readouterr().out
    production = stack.registry.get_alias(MODEL)
    assert production is not None
    version: Mapping[str, Any] = stack.registry.get_version(MODEL, production)
    assert f"production = version {production}" in printed
    assert version["family"] in printed
    assert f"accuracy={version['metrics']['accuracy']:.4f}" in printed
    assert "island:cat" in printed
    assert version["dataset"]["sha256"] in printed
    assert run["arn"] in printed
