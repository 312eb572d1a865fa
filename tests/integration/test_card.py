"""`mlstack card NAME [VERSION]`: a version's model card from the registry and its stored
evaluation, with a person's decision where there was one."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from mlstack.cli.main import main
from mlstack.cli.report import load
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.card import ReportData, brier_score, card_files, reliability
from mlstack_core.documents import VersionDocument
from mlstack_core.drift import feature_baseline
from mlstack_core.errors import EXIT_REFUSED
from mlstack_core.payloads import EvaluationReport
from mlstack_core.tabular import feature_feeds
from tests.helpers.local_cloud import manual_run, penguin_rows
from tests.helpers.tables import linear_regression_csv, mixed_csv, mixed_prepared

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
    execution_arn = manual_run(
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

    # What drives its answers: every input column's mean absolute contribution, largest first.
    drivers = _section(markdown, "What drives its answers")
    importance = document["explained_importance"]
    assert importance is not None
    names = [f["name"] for f in importance["features"]]
    assert sorted(names) == sorted(
        data.document["schema"]["numeric"] + data.document["schema"]["categorical"]
    )
    values = [f["importance"] for f in importance["features"]]
    assert values == sorted(values, reverse=True)
    assert values[0] > 0
    assert f"`{names[0]}`" in drivers
    assert f"over {importance['rows']} holdout rows" in drivers

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
    execution_arn = manual_run(stack, cloud, model)
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
    assert main(["card", "card-regressor", "7", "--out", str(tmp_path)]) == EXIT_REFUSED
    assert (
        capsys.readouterr().err.strip() == "mlstack card: model 'card-regressor' has no version 7"
    )


def test_brier_score_of_two_classes_is_scikit_learns() -> None:
    y = np.array(["no", "yes", "yes", "no"], dtype=object)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    expected = brier_score_loss(y == "yes", probabilities[:, 1])
    assert brier_score(y, probabilities, ["no", "yes"]) == pytest.approx(expected)


# ----------------------------------------------------------------------------- columns
def _kinds_card(baseline_extra: list[dict[str, Any]], family: str = "random_forest") -> str:
    """The card of a version trained on an export with every kind of column, its drift baseline
    the training split's (datetime parts included) plus ``baseline_extra``."""
    prepared = mixed_prepared()
    schema = prepared.schema
    baseline = feature_baseline(schema, feature_feeds(prepared.table, schema))
    baseline["features"] += baseline_extra
    y = np.asarray(["no", "yes"] * 30, dtype=object)
    document = {
        "task": "classification",
        "status": "Approved",
        "schema": schema,
        "spec": {},
        "drift_baseline": baseline,
    }
    evaluation = {
        "decision": "promote",
        "reasons": [],
        "metric": "accuracy",
        "best": {"candidate_id": "c00", "family": family, "metrics": {"accuracy": 0.9}},
    }
    data = ReportData(
        "orders",
        1,
        "classification",
        cast(VersionDocument, document),
        cast(EvaluationReport, evaluation),
        y,
        ["no", "yes"],
        [],
    )
    markdown, page = card_files(data, [])
    assert "<h2>Columns</h2>" in page
    return markdown


def test_the_card_says_how_each_column_was_read_and_what_it_became() -> None:
    markdown = _kinds_card([])
    schema = mixed_prepared().schema
    placed_at, amount, channel, review = schema["features"]
    columns = _section(markdown, "Columns")
    assert (
        "How each column was read, and why (`spec.columns.types` overrides a reading): "
        "1 numeric, 1 categorical, 1 datetime, 1 text, 1 identifier. "
        "Identifiers are not features."
    ) in columns
    rows = {line.split(" | ")[0][2:]: line for line in columns.splitlines() if line[:2] == "| "}
    assert rows["placed_at"] == (
        f"| placed_at | datetime | {placed_at['reason']} | format iso; parts year, month, day, "
        f"day_of_week, day_of_year, hour, days_since_epoch; trained on {placed_at['first']} to "
        f"{placed_at['last']} |"
    )
    assert rows["amount"] == "| amount | numeric | every value is a number | one number |"
    assert rows["channel"] == (
        "| channel | categorical | 3 distinct values in 300 rows | one-hot of its most frequent "
        "categories in training (3 seen); any other value sets none |"
    )
    assert rows["review"] == (
        f"| review | text | {review['reason']} | TF-IDF of its words: at most 1,000 terms, "
        "phrases of 1 to 2 words |"
    )
    assert rows["customer_ref"] == (
        "| customer_ref | identifier | each of its 300 values is different and none holds a "
        "space | not a feature: a request may carry it, and batch scoring keeps it in its "
        "output |"
    )
    # The data table: a datetime's range and missing share from its parts' baseline entries.
    data_rows = [line for line in _section(markdown, "Data").splitlines() if "placed_at" in line]
    assert data_rows == [
        f"| placed_at | datetime | 0.0% | {placed_at['first']} to {placed_at['last']} |"
    ]
    limits = _section(markdown, "Known limits")
    assert f"`placed_at`: trained on {placed_at['first']} to {placed_at['last']}; a later" in limits
    assert "`review`: only the 1,000 most frequent words and phrases" in limits
    assert (amount["name"], channel["name"]) == ("amount", "channel")


def test_the_card_says_a_tree_booster_reads_categories_as_codes() -> None:
    """HistGradientBoosting's pipeline encodes a categorical column as one ordinal code."""
    columns = _section(_kinds_card([], family="hist_gradient_boosting"), "Columns")
    rows = {line.split(" | ")[0][2:]: line for line in columns.splitlines() if line[:2] == "| "}
    assert rows["channel"] == (
        "| channel | categorical | 3 distinct values in 300 rows | one code per category among "
        "its most frequent in training (3 seen), split on as an ordered number; any other value "
        "counts as missing |"
    )


def test_the_card_renders_baseline_entries_of_kinds_it_does_not_know() -> None:
    """A text's measures read as its word counts; kinds added later, and entries without a name,
    render generically instead of failing Register's card."""
    novel = {"name": "embedding.0", "kind": "embedding", "counts": [1, 2], "missing": 0}
    nameless = {"kind": "numeric", "counts": [3]}
    markdown = _kinds_card([novel, nameless])
    prepared = mixed_prepared()
    schema = prepared.schema
    baseline = feature_baseline(schema, feature_feeds(prepared.table, schema))
    words = next(f for f in baseline["features"] if f["name"] == "review.words")
    review = [line for line in _section(markdown, "Data").splitlines() if "| review |" in line]
    assert review == [f"| review | text | 0.0% | {words['min']:g} to {words['max']:g} words |"]
    drift = _section(markdown, "Drift baseline")
    assert f"{len(baseline['features']) + 2} model inputs binned from 300 training rows: " in drift
    assert "9 numeric in deciles, each part of a datetime one of them; " in drift
    assert "2 text measures in deciles: words per text, share of words unseen in training" in drift
    assert "1 embedding, binned as recorded" in drift


def test_the_card_of_a_version_with_every_kind_of_column_lists_them(
    cloud: LocalCloud, stack: StackClient, tmp_path: Path
) -> None:
    """Through the pipeline: Register's stored card and `mlstack card` both carry the Columns
    section, and the real drift baseline (datetime parts, text measures) renders."""
    model = "card-kinds"
    upload = stack.upload_dataset(model, mixed_csv(400), {"target": "returned"})
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    document = stack.registry.get_version(model, 1)
    placed_at = next(f for f in document["schema"]["features"] if f["name"] == "placed_at")
    stored = (
        cloud.client("s3")
        .get_object(Bucket=cloud.outputs["ModelBucketName"], Key=f"models/{model}/1/card.md")[
            "Body"
        ]
        .read()
        .decode()
    )
    assert main(["card", model, "--out", str(tmp_path)]) == 0
    written = (tmp_path / "card.md").read_text()
    for markdown in (stored, written):
        columns = _section(markdown, "Columns")
        assert "1 numeric, 1 categorical, 1 datetime, 1 text, 1 identifier" in columns
        assert f"| placed_at | datetime | {placed_at['reason']} | format iso; parts year, " in (
            columns
        )
        assert f"trained on {placed_at['first']} to {placed_at['last']} |" in columns
        assert "| review | text | " in columns
        assert "| customer_ref | identifier | each of its 400 values is different" in columns
        data_section = _section(markdown, "Data")
        assert re.search(r"\| review \| text \| 0\.0% \| \d+ to \d+ words \|", data_section)
        assert "text measures in deciles" in _section(markdown, "Drift baseline")
