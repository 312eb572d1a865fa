"""The `mlstack` commands a user runs against a stack: train, models, predict; and what they say
about how each column was read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.main import main
from mlstack.cli.progress import column_lines
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from tests.helpers.local_cloud import penguin_rows, to_csv
from tests.helpers.tables import mixed_csv

pytestmark = pytest.mark.integration


def _printed_json(text: str, key: str) -> dict[str, Any]:
    """The JSON document holding ``key``: in-process functions print their EMF lines too."""
    decoder, position = json.JSONDecoder(), 0
    while position < len(text):
        if text[position] != "{":
            position += 1
            continue
        document, end = decoder.raw_decode(text, position)
        if key in document:
            return dict(document)
        position = end
    raise AssertionError(f"no JSON with {key!r} in {text!r}")


def test_train_models_and_predict_commands(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = penguin_rows()
    data = tmp_path / "penguins.csv"
    data.write_bytes(to_csv(rows))

    assert (
        main(["train", str(data), "--model", "cli-penguins", "--target", "species", "--wait"]) == 0
    )
    printed = capsys.readouterr().out
    assert "Preprocess done" in printed
    assert "TrainCandidates done" in printed
    assert "run SUCCEEDED" in printed

    assert main(["models", "cli-penguins"]) == 0
    listing = capsys.readouterr().out
    assert "production = version 1" in listing
    assert "Approved" in listing
    assert "island:cat" in listing  # the feature schema
    assert "sha256" in listing  # dataset lineage

    assert main(["models"]) == 0
    assert "cli-penguins" in capsys.readouterr().out

    request = tmp_path / "request.json"
    request.write_text(json.dumps({"instances": [as_instance(rows[0], "species")]}))
    assert main(["predict", "cli-penguins", str(request)]) == 0
    answer = _printed_json(capsys.readouterr().out, "predictions")
    assert answer["predictions"] == [rows[0]["species"]]
    assert answer["version"] == 1

    assert main(["explain", "cli-penguins", str(request)]) == 0
    table = capsys.readouterr().out
    assert f"row 1: prediction {rows[0]['species']} (probability" in table
    for column in as_instance(rows[0], "species"):
        assert f"\n  {column} " in table
    assert main(["explain", "cli-penguins", str(request), "--version", "1", "--json"]) == 0
    explained = _printed_json(capsys.readouterr().out, "explanations")
    (explanation,) = explained["explanations"]
    assert set(explanation["contributions"]) == set(as_instance(rows[0], "species"))


def test_train_reports_a_failed_run_with_its_error(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "broken.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    assert main(["train", str(data), "--model", "cli-broken", "--target", "label", "--wait"]) == 1
    assert "run FAILED with TargetColumnMissing" in capsys.readouterr().out


def test_a_command_whose_extra_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A base install (``pip install mlstack``) has no moto: the local cloud's commands say which
    extra brings it instead of printing an ImportError."""
    from mlstack.cli import main as cli

    def missing_moto(args: object) -> int:
        raise ModuleNotFoundError("No module named 'moto'", name="moto")

    monkeypatch.setattr(cli, "cmd_demo", missing_moto)
    assert cli.main(["demo"]) == 2
    assert "pip install 'mlstack[demo]'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Customer Churn", "churn/v2", "churn.model", "-churn"])
def test_a_model_name_the_trigger_would_ignore_is_refused_before_upload(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(to_csv(penguin_rows()))
    before = len(
        cloud.client("s3")
        .list_object_versions(Bucket=cloud.outputs["DataBucketName"])
        .get("Versions", [])
    )
    assert main(["train", str(data), f"--model={name}", "--target", "species"]) == 2
    err = capsys.readouterr().err
    assert "is not a model name" in err
    assert "letters, digits, '-' and '_'" in err
    after = cloud.client("s3").list_object_versions(Bucket=cloud.outputs["DataBucketName"])
    assert len(after.get("Versions", [])) == before


def test_a_new_model_without_a_target_is_refused_before_upload(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(to_csv(penguin_rows()))
    assert main(["train", str(data), "--model", "brand-new"]) == 2
    assert "has no spec yet: name the column to predict with --target" in capsys.readouterr().err


def test_wait_narrates_an_approval_and_prints_warnings_in_full(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{**row, "colony": "one"} for row in penguin_rows()]  # a constant column: a warning
    data = tmp_path / "data.csv"
    data.write_bytes(to_csv(rows))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"target": "species", "approval": "manual"}))
    model = "cli-manual"

    assert main(["train", str(data), "--model", model, "--spec", str(spec), "--wait"]) == 0
    printed = capsys.readouterr().out
    assert "! ConstantColumn colony: every value is 'one'" in printed
    assert "awaiting approval" in printed
    assert f"mlstack approve {model} 1 --reason" in printed
    assert f"mlstack reject {model} 1 --reason" in printed

    assert main(["approve", model, "1", "--reason", "looks right"]) == 0
    arn = next(e["executionArn"] for e in cloud.executions() if e["name"].startswith(model))
    assert cloud.wait_for_execution(arn)["status"] == "SUCCEEDED"


def test_wait_says_when_a_run_is_queued_behind_another(cloud: LocalCloud) -> None:
    """Two uploads of one model at once: whichever run starts second waits for the lock, and
    following it says so (once), naming the run it waits for."""
    from mlstack.cli.progress import follow_execution
    from mlstack.cli.stack import StackClient

    client = StackClient(cloud.stack_name)
    body = to_csv(penguin_rows())
    uploads = [
        client.upload_dataset("cli-queued", body, {"target": "species"}, "first.csv"),
        client.upload_dataset("cli-queued", body, None, "second.csv"),
    ]
    lines: list[list[str]] = []
    for upload in uploads:
        printed: list[str] = []
        description = follow_execution(
            cloud.client("stepfunctions"), client.find_execution(upload), echo=printed.append
        )
        assert description["status"] == "SUCCEEDED"
        lines.append([line for line in printed if "queued" in line])
    assert sorted(len(queued) for queued in lines) == [0, 1], lines
    (queued,) = next(q for q in lines if q)
    assert "is being trained by" in queued
    assert "this run starts when that one ends" in queued


def test_wait_and_models_say_how_each_column_was_read(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export with a timestamp, a review and a customer reference: the run's output and the
    registry view name each column's kind and why, a datetime's parts and range, a text's
    TF-IDF bounds, and the identifier as no feature."""
    data = tmp_path / "orders.csv"
    data.write_bytes(mixed_csv(400))
    model = "cli-kinds"

    assert main(["train", str(data), "--model", model, "--target", "returned", "--wait"]) == 0
    printed = capsys.readouterr().out
    assert "400 rows, 4 features (1 numeric, 1 categorical, 1 datetime, 1 text), 1 identifier" in (
        printed
    )
    assert "      columns, as read:\n" in printed
    schema = StackClient(cloud.stack_name).registry.get_version(model, 1)["schema"]
    # Exactly the lines the schema the run registered reads as.
    assert "".join(f"\n        {line}" for line in column_lines(schema)) in printed
    lines = printed.splitlines()
    placed_at = next(line for line in lines if line.lstrip().startswith("placed_at "))
    assert "datetime     100% of its values read as iso dates (e.g. '20" in placed_at
    assert any(
        line.strip() == "parts year, month, day, day_of_week, day_of_year, hour, days_since_epoch"
        for line in lines
    )
    assert "TF-IDF of its words: at most 1,000 terms, phrases of 1 to 2 words" in printed
    assert "customer_ref  identifier   not a feature: each of its 400 values is different" in (
        printed
    )
    assert "run SUCCEEDED" in printed

    assert main(["models", model]) == 0
    listing = capsys.readouterr().out
    details = listing.split("production version 1:")[1]
    assert "\n  columns    placed_at     datetime     100% of its values read as iso" in details
    assert "\n             customer_ref  identifier   not a feature: each of its 400" in details
    assert "review:tex" in details
