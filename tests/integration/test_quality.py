"""Is the model still right? Ground truth closes the loop, in the local cloud.

A model trained with ``quality.capture`` serves requests through the stack's HTTP API; the
prediction function records them (every request here: CaptureSampleRate is 1 locally, and
DriftFlushSeconds 0 in the test stack writes after each request). True labels uploaded with
``mlstack feedback`` keep the model; wrong labels for the same predictions make the Monitor
(the stack's MonitorFunction, run by ``mlstack monitor --now``) alert and retrain on the newest
dataset plus the labelled rows, a run of the real state machine that succeeds.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.storage_keys import captures_prefix
from tests.helpers.local_cloud import AlertInbox, penguin_rows, to_csv

pytestmark = pytest.mark.integration

MODEL = "penguins-quality"
TARGET = "species"
SPEC = {
    "target": TARGET,
    "candidates": ["logistic_regression"],
    "drift": {"action": "alert"},
    "quality": {"capture": True, "min_rows": 40, "margin": 0.1, "action": "retrain"},
}


def serve(stack: StackClient, instances: list[dict[str, Any]]) -> list[tuple[str, int, Any]]:
    """POST in requests of 25; (request id, row, prediction) of every answer."""
    answered = []
    for start in range(0, len(instances), 25):
        response = stack.predict(MODEL, instances[start : start + 25])
        assert response.status == 200, response.body
        request_id = response.body["request_id"]
        assert request_id
        answered += [(request_id, row, p) for row, p in enumerate(response.body["predictions"])]
    return answered


def labels_file(tmp_path: Path, name: str, rows: list[tuple[str, int, str]]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["request_id", "row", TARGET])
    writer.writerows(rows)
    path = tmp_path / name
    path.write_text(out.getvalue())
    return path


def monitor_now(capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["monitor", MODEL, "--now"]) == 0
    return capsys.readouterr().out


def quality_alerts(alerts: AlertInbox) -> list[dict[str, Any]]:
    return [
        json.loads(m["Message"])
        for m in alerts.drain()
        if m["MessageAttributes"]["event"]["Value"] == "QualityFell"
    ]


def test_true_labels_keep_the_model_and_wrong_ones_alert_and_retrain(
    cloud: LocalCloud,
    stack: StackClient,
    alerts: AlertInbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = penguin_rows()
    upload = stack.upload_dataset(MODEL, to_csv(rows), SPEC, file_name="data.csv")
    trained = cloud.wait_for_execution(stack.find_execution(upload))
    assert trained["status"] == "SUCCEEDED", trained.get("cause")
    production = stack.registry.get_alias(MODEL)
    assert production is not None
    stored_card = (
        cloud.client("s3")
        .get_object(Bucket=cloud.outputs["ModelBucketName"], Key=f"models/{MODEL}/1/card.md")[
            "Body"
        ]
        .read()
        .decode()
    )
    assert stored_card.startswith(f"# Model card: {MODEL} version 1")
    assert "gate: promote" in stored_card
    assert "no labelled predictions of this version have been checked yet" in stored_card
    holdout = stack.registry.get_version(MODEL, production)["metrics"]["accuracy"]
    assert holdout is not None

    served_rows = [row for row in rows if row[TARGET]][:100]
    answered = serve(stack, [as_instance(row, TARGET) for row in served_rows])
    listing = cloud.client("s3").list_objects_v2(
        Bucket=cloud.outputs["ModelBucketName"], Prefix=captures_prefix(MODEL, production)
    )
    assert listing.get("Contents"), "the prediction function captured what it served"
    alerts.drain()
    executions = len(cloud.executions())

    # A file the Monitor could not join is refused before it is uploaded, naming what it lacks.
    unjoinable = tmp_path / "ids.csv"
    unjoinable.write_text("id,species\n1,Adelie\n")
    capsys.readouterr()
    assert main(["feedback", MODEL, str(unjoinable)]) == 2
    refusal = capsys.readouterr()
    assert "'request_id' and 'row'" in refusal.out + refusal.err

    # 1. The true labels: the model holds (it answers as well as on its holdout).
    truth = [(rid, row, served_rows[i][TARGET]) for i, (rid, row, _) in enumerate(answered)]
    capsys.readouterr()
    assert main(["feedback", MODEL, str(labels_file(tmp_path, "truth.csv", truth))]) == 0
    assert "uploaded 100 labels" in capsys.readouterr().out
    printed = monitor_now(capsys)
    assert f"quality of production version {production}: holding" in printed
    assert "did: nothing" in printed
    assert "bill_length_mm" in printed  # the drift check's PSI per feature, alongside
    report = json.loads(
        cloud.client("s3")
        .get_object(
            Bucket=cloud.outputs["ModelBucketName"], Key=f"monitoring/{MODEL}/quality-latest.json"
        )["Body"]
        .read()
    )
    (version,) = report["versions"]
    assert version["rows"] == 100
    assert version["captured_rows"] == 100
    accuracy = sum(p == served_rows[i][TARGET] for i, (_, _, p) in enumerate(answered)) / 100
    assert version["value"] == pytest.approx(accuracy)
    assert version["value"] >= holdout - 0.1
    # Judged against the version's stored holdout answers, with the gate's intervals.
    assert version["compared_with"] == "holdout rows"
    assert version["drop_beyond_noise"] is False
    assert version["summary"].startswith("accuracy on 100 labelled rows ")
    assert quality_alerts(alerts) == []
    assert len(cloud.executions()) == executions

    # 2. Wrong labels for the same predictions (a later file wins): quality fell.
    classes = sorted({row[TARGET] for row in rows})
    wrong = [(rid, row, classes[(classes.index(p) + 1) % len(classes)]) for rid, row, p in answered]
    assert main(["feedback", MODEL, str(labels_file(tmp_path, "wrong.csv", wrong))]) == 0
    printed = monitor_now(capsys)
    assert f"quality of production version {production}: fallen" in printed
    assert "worse than the holdout" in printed
    assert "did: alerted; wrote datasets/_derived/penguins-quality/feedback-v1-" in printed
    assert (
        "(100 labelled rows added to the newest dataset), whose upload starts a training run"
        in printed
    )
    assert "training run: arn:aws:states:" in printed

    # The model card tells the same story, from the Monitor's stored report.
    assert main(["card", MODEL, str(production), "--out", str(tmp_path / "card")]) == 0
    card = (tmp_path / "card" / "card.md").read_text()
    quality_section = card.split("## Ground-truth quality since deployment", 1)[1].split("## ")[0]
    assert f"monitoring/{MODEL}/quality/" in quality_section
    assert (
        "100 of 100 captured predictions have labels; accuracy on them 0, on the" in quality_section
    )
    assert "fallen" in quality_section

    (alert,) = quality_alerts(alerts)
    assert alert["model"] == MODEL
    assert alert["version"] == production
    assert alert["value"] == 0.0
    assert alert["labelled_rows"] == 100
    assert alert["holdout"] == holdout
    assert alert["drop"] == pytest.approx(holdout)
    assert alert["drop_interval"]["low"] > 0
    assert "beyond noise: worse than the holdout by more than the margin 0.1" in alert["summary"]
    retraining = alert["retraining"]
    assert retraining["started"] is True
    assert retraining["labelled_rows"] == 100

    # The new dataset is the newest upload plus the labelled rows, and it starts a run.
    dataset = (
        cloud.client("s3")
        .get_object(Bucket=cloud.outputs["DataBucketName"], Key=retraining["dataset"])["Body"]
        .read()
        .decode()
    )
    assert len(list(csv.DictReader(io.StringIO(dataset)))) == len(rows) + 100
    execution = stack.find_execution(
        {"bucket": cloud.outputs["DataBucketName"], "key": retraining["dataset"]}
    )
    finished = cloud.wait_for_execution(execution)
    assert finished["status"] == "SUCCEEDED", finished.get("cause")

    # Checking again starts nothing new: the labels were retrained on, and when the gate
    # promoted the retrained version, production has no labelled rows yet.
    runs = len(cloud.executions())
    printed = monitor_now(capsys)
    assert len(cloud.executions()) == runs
    if stack.registry.get_alias(MODEL) == production:
        assert "no retraining (already retrained on these labels)" in printed
    else:
        assert "no labelled production rows" in printed
        assert f"{production} {version['days'][0]['day']}      100 accuracy     0.0000" in printed
