"""`mlstack report NAME [VERSION]`: the PNGs of a version's evaluation, drawn on the user's side
from what Evaluate stored and Register copied beside the version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.errors import EXIT_REFUSED
from tests.helpers.local_cloud import penguin_rows, to_csv
from tests.helpers.tables import linear_regression_csv

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"


def _trained(cloud: LocalCloud, stack: StackClient, model: str, body: bytes, spec: dict) -> None:
    upload = stack.upload_dataset(model, body, spec, file_name=f"{len(body)}-{model}.csv")
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"


def test_report_draws_challenger_beside_champion(
    cloud: LocalCloud, stack: StackClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "report-penguins"
    rows = penguin_rows()
    _trained(cloud, stack, model, to_csv(rows), {"target": "species"})
    _trained(cloud, stack, model, to_csv(rows[::-1]), {"target": "species"})
    version = max(v["version"] for v in stack.registry.list_versions(model))
    assert version == 2

    assert main(["report", model, str(version), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    names = {"metrics.png", "confusion_matrix.png", "roc.png", "pr.png", "feature_importance.png"}
    for name in names:
        assert (tmp_path / name).read_bytes().startswith(PNG), name
        assert str(tmp_path / name) in printed
    # stored beside the version too
    s3 = cloud.client("s3")
    listed = s3.list_objects_v2(
        Bucket=cloud.outputs["ModelBucketName"], Prefix=f"reports/{model}/{version}/"
    )
    assert {item["Key"].rsplit("/", 1)[1] for item in listed["Contents"]} == names

    from mlstack.cli.report import load

    data = load(stack, model, version)
    assert [m.title.split()[0] for m in data.models] == ["challenger", "champion"]
    assert data.models[1].title.startswith("champion v1")


def test_report_of_a_regressor(
    cloud: LocalCloud, stack: StackClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = linear_regression_csv(0, 200, (3.0, -1.0), 0.1)
    _trained(cloud, stack, "report-regressor", table, {"target": "target"})

    assert main(["report", "report-regressor", "--out", str(tmp_path), "--no-upload"]) == 0
    printed = capsys.readouterr().out
    assert re.search(
        r"\n    r2 +-?\d\.\d{4} \(95% interval -?\d\.\d{4} to -?\d\.\d{4}\)\n", printed
    )
    assert "\n  verdict: beats the mean baseline beyond noise" in printed
    for name in ("metrics.png", "predicted_vs_actual.png", "residuals.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG), name
    assert main(["report", "no-such-model", "--out", str(tmp_path)]) == EXIT_REFUSED
    assert "mlstack report: no model named 'no-such-model'; models: " in capsys.readouterr().err
