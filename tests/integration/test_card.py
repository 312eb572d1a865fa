"""`mlstack card NAME [VERSION]`: a version's model card from the registry and its stored
evaluation, with a person's decision where there was one."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from mlstack.cli.main import main
from mlstack.cli.report import load
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.card import brier_score, reliability
from tests.integration.conftest import linear_regression_csv, penguin_rows
from tests.integration.test_lifecycle import _manual_run

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"


def _section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", markdown, flags=re.M | re.S)
    assert match, f"no section {title!r} in:\n{markdown}"
    return match.group(1)


def test_the_card_shows_a_persons_approval_and_the_calibration(
    cloud: LocalCloud, stack: StackClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "card-penguins"
    execution_arn = _manual_run(
        stack, cloud, model, description="Penguin species from bill and flipper"
    )
    stored = f"models/{model}/1/card.md"
    bucket = cloud.outputs["ModelBucketName"]
    s3 = cloud.client("s3")
    waiting = s3.get_object(Bucket=bucket, Key=stored)["Body"].read().decode()
    assert "Status now: PendingApproval." in _section(waiting, "Decision")
    assert main(["approve", model, "1", "--reason", "calibration reviewed"]) == 0
    assert cloud.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"
    # Register rewrote the stored card when the person's answer landed.
    approved = s3.get_object(Bucket=bucket, Key=stored)["Body"].read().decode()
    assert "approved by" in _section(approved, "Decision")
    assert "calibration reviewed" in _section(approved, "Decision")
    assert s3.get_object(Bucket=bucket, Key=f"models/{model}/1/card.html")[
        "ContentType"
    ].startswith("text/html")

    assert main(["card", model, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "approved by" in printed
    assert str(tmp_path / "card.html") in printed
    markdown = (tmp_path / "card.md").read_text()
    document = stack.registry.get_version(model, 1)

    assert "Penguin species from bill and flipper" in _section(markdown, "Purpose")
    decision = _section(markdown, "Decision")
    assert f"gate: promote; approved by {document['status_changed_by']}" in decision
    assert "calibration reviewed" in decision
    data_section = _section(markdown, "Data")
    assert document["dataset"]["sha256"] in data_section
    assert f"{document['splits']['holdout_rows']} held out" in data_section

    # Calibration, from the stored ONNX outputs on the holdout, agrees with scikit-learn's.
    data = load(stack, model, 1)
    probabilities = data.models[0].probabilities
    assert probabilities is not None
    truth = np.asarray(data.classes)[None, :] == data.y[:, None]
    expected = float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))
    assert brier_score(data.y, probabilities, data.classes) == pytest.approx(expected)
    assert f"Brier score {expected:.4f}" in _section(markdown, "Evaluation")
    curve = reliability(data.y, probabilities, data.classes)
    assert sum(curve.rows) == len(data.y) == document["splits"]["holdout_rows"]

    # Known limits: the ranges and categories seen in training.
    limits = _section(markdown, "Known limits")
    assert "`island`: a category not seen in training counts as none of the 3 known ones" in limits
    numbers = [float(r["bill_length_mm"]) for r in penguin_rows() if r["bill_length_mm"] != "NA"]
    low, high = re.search(r"`bill_length_mm`: trained on ([\d.]+) to ([\d.]+)", limits).groups()  # type: ignore[union-attr]
    assert min(numbers) <= float(low) <= float(high) <= max(numbers)

    # The HTML carries every plot inline; the Markdown links the PNGs written beside it.
    page = (tmp_path / "card.html").read_text()
    images = re.findall(r'alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert {name for name, _ in images} >= {
        "metrics.png",
        "confusion_matrix.png",
        "reliability.png",
    }
    assert all(base64.b64decode(body).startswith(PNG) for _, body in images)
    assert "![reliability.png](reliability.png)" in markdown
    assert (tmp_path / "reliability.png").read_bytes().startswith(PNG)


def test_a_card_of_a_version_rejected_by_hand_says_so(
    cloud: LocalCloud, stack: StackClient, tmp_path: Path
) -> None:
    model = "card-rejected"
    execution_arn = _manual_run(stack, cloud, model)
    assert main(["reject", model, "1", "--reason", "bias review pending"]) == 0
    assert cloud.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"

    assert main(["card", model, "1", "--out", str(tmp_path)]) == 0
    decision = _section((tmp_path / "card.md").read_text(), "Decision")
    assert "gate: promote; rejected by" in decision
    assert "Status now: Rejected" in decision
    assert "bias review pending" in decision


def test_a_regressors_card_summarises_residuals(
    cloud: LocalCloud, stack: StackClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = linear_regression_csv(3, 240, (2.0, -1.0), 0.2)
    upload = stack.upload_dataset("card-regressor", table, {"target": "target"})
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"

    assert main(["card", "card-regressor", "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "card.md").read_text()
    evaluation = _section(markdown, "Evaluation")
    assert "Residuals (actual - predicted): mean" in evaluation
    assert re.search(
        r"\| r2 \| -?\d\.\d{4} \(95% interval -?\d\.\d{4} to -?\d\.\d{4}\) \|", evaluation
    )
    # 240 rows: judged by cross-validation.
    assert "Judged by repeated cross-validation on all 240 rows" in evaluation
    assert "How the gate judged: by repeated cross-validation, the squared error" in evaluation
    assert "Verdict: " in evaluation
    assert "Brier" not in markdown
    assert not (tmp_path / "reliability.png").exists()
    assert (tmp_path / "residuals.png").read_bytes().startswith(PNG)
    capsys.readouterr()
    assert main(["card", "card-regressor", "7", "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip() == "mlstack card: model 'card-regressor' has no version 7"
    )


def test_brier_score_of_two_classes_is_scikit_learns() -> None:
    y = np.array(["no", "yes", "yes", "no"], dtype=object)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    expected = brier_score_loss(y == "yes", probabilities[:, 1])
    assert brier_score(y, probabilities, ["no", "yes"]) == pytest.approx(expected)
