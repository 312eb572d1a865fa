"""50,000-row classification and regression datasets through the local cloud with the default
candidates: upload → real ASL → promoted, in minutes on a 2-core machine.

    .venv/bin/python -m pytest -m slow -s -p no:cacheprovider tests/integration/test_scale.py

The data is generated deterministically (numpy rng) from a known signal, with categorical columns
and missing cells, so the metric the run reaches says whether the pipeline learned. Wall times are
printed per state (``-s``) and recorded in docs/scale.md.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 50_000
MISSING_SHARE = 0.05


def mixed_table(rows: int, *, task: str, seed: int) -> tuple[bytes, np.ndarray]:
    """(CSV bytes, the noiseless signal): 5 numeric and 3 categorical columns (4, 12 and 40
    levels), about 5% of every feature missing, and a target driven by both kinds."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 5)) * [1.0, 3.0, 10.0, 0.5, 100.0] + [0, 10, 50, 0, 1000]
    plan = rng.choice(["basic", "plus", "pro", "team"], size=rows)
    region = rng.integers(0, 12, size=rows)
    store = rng.integers(0, 40, size=rows)
    signal = (
        1.2 * (numeric[:, 0])
        + 0.4 * (numeric[:, 1] - 10)
        - 0.8 * (plan == "basic")
        + 1.0 * (plan == "pro")
        + 0.6 * np.sin(region)
        + 0.02 * (numeric[:, 4] - 1000)
    )
    noisy = signal + rng.normal(scale=0.35, size=rows)
    if task == "classification":
        target = np.where(noisy < -0.7, "churned", np.where(noisy < 0.9, "stayed", "upgraded"))
    else:
        target = np.char.mod("%.4f", 50 + 10 * noisy)

    header = ["tenure", "usage", "tickets", "discount", "spend", "plan", "region", "store", "y"]
    columns: list[list[str]] = [np.char.mod("%.5g", numeric[:, j]).tolist() for j in range(5)]
    columns += [plan.tolist(), [f"r{r:02d}" for r in region], [f"s{s:02d}" for s in store]]
    for column in columns:
        for i in np.flatnonzero(rng.random(rows) < MISSING_SHARE).tolist():
            column[i] = "NA" if i % 2 else ""
    columns.append(target.tolist())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*columns, strict=True))
    return buffer.getvalue().encode(), signal


def state_seconds(events: list[dict[str, Any]]) -> dict[str, float]:
    """Wall seconds spent in each top-level state (first entry to its exit)."""
    entered: dict[str, datetime] = {}
    spent: dict[str, float] = {}
    for event in events:
        if "stateEnteredEventDetails" in event:
            entered.setdefault(event["stateEnteredEventDetails"]["name"], event["timestamp"])
        elif "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            if name in entered:
                spent[name] = (event["timestamp"] - entered[name]).total_seconds()
    return spent


def train_through_the_stack(
    cloud: LocalCloud, stack: StackClient, model: str, body: bytes
) -> tuple[Mapping[str, Any], dict[str, float]]:
    started = time.perf_counter()
    upload = stack.upload_dataset(model, body, {"target": "y"}, file_name="big.csv")
    execution_arn = stack.find_execution(upload)
    result = cloud.wait_for_execution(execution_arn, timeout=900)
    wall = time.perf_counter() - started
    assert result["status"] == "SUCCEEDED", result.get("cause")
    events = cloud.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    timings = {"total": wall, **state_seconds(events)}
    production = stack.registry.get_alias(model)
    assert production is not None
    version = stack.registry.get_version(model, production)
    shown = ("total", "Preprocess", "TrainCandidates", "Evaluate", "RegisterAndPromote")
    print(
        f"\n{model}: {len(body) / 2**20:.1f} MiB, winner {version['family']} "
        f"{version['metric']}={version['metrics'][version['metric']]:.4f}; "
        + ", ".join(f"{name} {timings[name]:.1f}s" for name in shown if name in timings)
    )
    return version, timings


def test_fifty_thousand_rows_classification(cloud: LocalCloud, stack: StackClient) -> None:
    body, signal = mixed_table(ROWS, task="classification", seed=11)
    version, timings = train_through_the_stack(cloud, stack, "scale-classes", body)

    assert version["dataset"]["rows"] == ROWS
    assert version["splits"]["train_rows"] + version["splits"]["holdout_rows"] == ROWS
    assert set(version["schema"]["categorical"]) == {"plan", "region", "store"}
    assert version["schema"]["classes"] == ["churned", "stayed", "upgraded"]
    # The noise (sd 0.35) against class bands 1.6 wide leaves roughly 85-90% learnable; a
    # majority-class model scores the largest class share, well under that.
    majority = max(np.mean(signal < -0.7), np.mean((signal >= -0.7) & (signal < 0.9)))
    assert version["metrics"]["accuracy"] >= 0.8
    assert version["metrics"]["accuracy"] > majority + 0.2
    assert timings["total"] < 600


def test_fifty_thousand_rows_regression(cloud: LocalCloud, stack: StackClient) -> None:
    body, _ = mixed_table(ROWS, task="regression", seed=12)
    version, timings = train_through_the_stack(cloud, stack, "scale-values", body)

    assert version["task"] == "regression"
    assert version["dataset"]["rows"] == ROWS
    assert set(version["schema"]["categorical"]) == {"plan", "region", "store"}
    # Noise is 0.35 of a signal with sd ~ 1.6: an r2 near 0.95 is reachable.
    assert version["metrics"]["r2"] >= 0.85
    assert version["metrics"]["rmse"] < 10 * 0.35 * 2
    assert timings["total"] < 600
