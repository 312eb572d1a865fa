"""A grid too large for the execution state runs as a Distributed Map reading its items from S3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.candidates import INLINE_MAP_LIMIT
from tests.integration.conftest import penguin_rows, to_csv

pytestmark = pytest.mark.integration


def test_a_large_grid_trains_through_the_distributed_map(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "wide-grid"
    grid_size = INLINE_MAP_LIMIT + 8
    c_values = [round(0.01 * 1.2**i, 5) for i in range(grid_size)]
    spec: dict[str, Any] = {
        "target": "species",
        "max_concurrency": 8,
        "candidates": [
            {
                "family": "logistic_regression",
                "grid": {"C": [round(0.01 * 1.2**i, 5) for i in range(grid_size)]},
            }
        ],
    }
    upload = stack.upload_dataset(model, to_csv(penguin_rows()), spec, file_name="d.csv")
    execution_arn = stack.find_execution(upload)
    result = cloud.wait_for_execution(execution_arn, timeout=600)
    assert result["status"] == "SUCCEEDED", result.get("cause")

    sfn = cloud.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]
    assert "TrainCandidatesDistributed" in entered
    assert "TrainCandidates" not in entered

    output = json.loads(result["output"])
    assert output["run"]["candidates"] == []  # the list lives in S3, not in the state
    assert output["run"]["candidate_count"] == grid_size
    s3 = cloud.client("s3")
    listed = json.loads(
        s3.get_object(
            Bucket=output["run"]["splits"]["bucket"], Key=output["run"]["candidates_key"]
        )["Body"].read()
    )
    assert len(listed) == grid_size
    scored = output["evaluation"]["candidates"]
    assert len(scored) == grid_size
    assert all(c["status"] == "trained" for c in scored)

    version = stack.registry.get_version(model, stack.registry.get_alias(model) or 0)
    assert version["family"] == "logistic_regression"
    assert version["params"]["C"] in c_values
