"""Batch scoring end to end in the local cloud: an upload of batch/<model>/<job>.csv runs the
scoring state machine (statemachine/scoring.asl.json): ItemReader over the CSV, ItemBatcher
batches, the scoring function, ResultWriter, a manifest."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from tests.helpers.local_cloud import AlertInbox, penguin_rows, to_csv
from tests.helpers.tables import noisy_penguins, penguins_bytes

pytestmark = pytest.mark.integration

MODEL = "batch-penguins"
SPEC = {"target": "species", "candidates": ["logistic_regression"]}


@pytest.fixture(scope="module")
def production(cloud: LocalCloud, stack: StackClient) -> int:
    # Trained on noisy labels, so a cleaner upload later is a real improvement the gate promotes.
    upload = stack.upload_dataset(MODEL, noisy_penguins(0.5), SPEC)
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    version = stack.registry.get_alias(MODEL)
    assert version is not None
    return version


def _scoring_execution(cloud: LocalCloud, job: str, timeout: float = 60) -> dict[str, Any]:
    sfn = cloud.client("stepfunctions")
    machine = cloud.outputs["ScoringStateMachineArn"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
            if execution["name"].startswith(f"{MODEL}-{job}-"):
                return cloud.wait_for_execution(execution["executionArn"], timeout=300)
        time.sleep(0.1)
    raise AssertionError(f"no scoring job {job} started")


def _upload(cloud: LocalCloud, job: str, body: bytes) -> None:
    key = f"batch/{MODEL}/{job}.csv"
    cloud.client("s3").put_object(Bucket=cloud.outputs["DataBucketName"], Key=key, Body=body)


def _read(cloud: LocalCloud, key: str) -> str:
    bucket = cloud.outputs["DataBucketName"]
    return cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def _rows() -> list[dict[str, str]]:
    rows = [
        {"customer": f"c{i:04d}", **{k: v for k, v in row.items() if k != "species"}}
        for i, row in enumerate(penguin_rows())
    ]
    rows[10]["flipper_length_mm"] = "long"
    return rows


def test_an_uploaded_file_is_scored_in_order_and_matches_the_api(
    cloud: LocalCloud, stack: StackClient, production: int
) -> None:
    rows = _rows()
    _upload(cloud, "nightly", to_csv(rows))
    result = _scoring_execution(cloud, "nightly")
    assert result["status"] == "SUCCEEDED", result.get("cause")

    manifest = json.loads(_read(cloud, f"batch/{MODEL}/nightly/manifest.json"))
    assert manifest["version"] == production
    assert manifest["status"] == "succeeded"
    assert (manifest["rows_in"], manifest["rows_scored"], manifest["rows_refused"]) == (
        len(rows),
        len(rows) - 1,
        1,
    )
    scored: list[dict[str, str]] = []
    for key in manifest["parts"]:
        scored += list(csv.DictReader(io.StringIO(_read(cloud, key))))
    assert [r["customer"] for r in scored] == [r["customer"] for i, r in enumerate(rows) if i != 10]
    (refused,) = csv.DictReader(io.StringIO(_read(cloud, manifest["errors"])))
    assert refused["data_row"] == "11"
    assert "'flipper_length_mm'" in refused["reason"]

    by_id = {r["customer"]: r for r in rows}
    instances = [as_instance(by_id[r["customer"]], "customer") for r in scored]
    answer = stack.request("POST", f"/models/{MODEL}/predict", {"instances": instances})
    assert answer.status == 200, answer.body
    assert [r["prediction"] for r in scored] == answer.body["predictions"]


@pytest.mark.parametrize(
    ("job", "body", "error"),
    [
        ("narrow", b"island,bill_length_mm\nTorgersen,39.1\n", "HeaderLacksFeature"),
        ("empty", b"", "EmptyDataset"),
    ],
)
def test_a_file_that_cannot_be_scored_fails_by_name_with_one_alert(
    cloud: LocalCloud, alerts: AlertInbox, production: int, job: str, body: bytes, error: str
) -> None:
    alerts.drain()
    _upload(cloud, job, body)
    result = _scoring_execution(cloud, job)
    assert result["status"] == "FAILED"
    assert result["error"] == error
    failed = [
        m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "BatchFailed"
    ]
    assert len(failed) == 1
    assert json.loads(failed[0]["Message"])["Error"] == error


def test_mlstack_score_pins_a_version_keeps_columns_and_prints_the_account(
    cloud: LocalCloud,
    stack: StackClient,
    production: int,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job's version is resolved once: production moving during the job changes nothing."""
    import mlstack_score.app as scoring
    from mlstack.cli.main import main

    rows = _rows()[:50]
    rows[10]["flipper_length_mm"] = "220"
    path = tmp_path / "weekly.csv"
    path.write_bytes(to_csv(rows))

    original = scoring.score_batch
    moved: list[int | None] = []

    def production_moves_first(job: dict[str, Any], items: list[dict[str, Any]]) -> Any:
        if not moved:  # another version takes production while the job runs
            upload = stack.upload_dataset(MODEL, penguins_bytes(), None, file_name="b.csv")
            assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
            moved.append(stack.registry.get_alias(MODEL))
        return original(job, items)

    monkeypatch.setattr(scoring, "score_batch", production_moves_first)
    code = main(["score", MODEL, str(path), "--keep", "customer,island", "--wait"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert moved
    assert moved[0] != production
    assert "scored 50 of 50 rows" in printed
    assert f"version {production} of {MODEL} scored 50 of 50 rows" in printed

    manifest = json.loads(_read(cloud, f"batch/{MODEL}/weekly/manifest.json"))
    assert manifest["version"] == production
    (part,) = manifest["parts"]
    scored = list(csv.DictReader(io.StringIO(_read(cloud, part))))
    assert list(scored[0])[:3] == ["customer", "island", "prediction"]
    instances = [as_instance({k: v for k, v in r.items()}, "customer") for r in rows]
    # The job's version left production meanwhile (Archived): pinned, the API serves it again
    # only while an alias points at it (mlstack_core.servable).
    assert main(["shadow", MODEL, str(production), "--reason", "compare with the job"]) == 0
    pinned = stack.request(
        "POST", f"/models/{MODEL}/predict?version={production}", {"instances": instances}
    )
    assert pinned.status == 200, pinned.body
    assert [r["prediction"] for r in scored] == pinned.body["predictions"]


def test_mlstack_score_output_brings_back_a_bom_semicolon_file_s_rows_in_order(
    production: int, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file saved by a spreadsheet (a byte order mark, ';' between cells), read as it says;
    --output waits and writes the rows in the file's order, the refused one beside them;
    --explain adds each input column's contribution to the predicted class's probability."""
    from mlstack.cli.main import main

    rows = _rows()
    path = tmp_path / "spreadsheet.csv"
    path.write_bytes(b"\xef\xbb\xbf" + to_csv(rows).decode().replace(",", ";").encode())
    output = tmp_path / "scored.csv"
    args = ["score", MODEL, str(path), "--delimiter", ";", "--keep", "customer"]
    code = main([*args, "--max-refused-share", "0.01", "--explain", "--output", str(output)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"scored {len(rows):,} of {len(rows):,} rows" in printed
    with output.open(newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert [r["customer"] for r in scored] == [r["customer"] for i, r in enumerate(rows) if i != 10]
    for row in scored:
        contributions = [float(v) for k, v in row.items() if k.startswith("contribution_")]
        assert contributions
        total = float(row["explained_base"]) + sum(contributions)
        assert total == pytest.approx(float(row[f"probability_{row['prediction']}"]), abs=1e-6)
    (refused,) = csv.DictReader(io.StringIO((tmp_path / "scored.errors.csv").read_text()))
    assert refused["data_row"] == "11"


def test_mlstack_score_refuses_a_bad_job_name_before_uploading(
    stack: StackClient, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack.cli.main import main

    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    assert main(["score", MODEL, str(path), "--job", "no/slash"]) == 2
    assert "is not a job name" in capsys.readouterr().err


def test_mlstack_score_refuses_a_refused_share_outside_0_to_1_before_uploading(
    stack: StackClient, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack.cli.main import main

    path = tmp_path / "share.csv"
    path.write_text("a\n1\n")
    for share in ("nan", "1", "-0.5"):
        assert main(["score", MODEL, str(path), "--max-refused-share", share]) == 2
        assert "max_refused_share must be a number in [0, 1)" in capsys.readouterr().err
    listed = stack.session.client("s3").list_objects_v2(
        Bucket=stack.outputs["DataBucketName"], Prefix=f"batch/{MODEL}/share"
    )
    assert listed["KeyCount"] == 0


def test_the_rows_scored_are_those_of_the_file_version_the_job_checked(
    cloud: LocalCloud, production: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is written again under its key after the job checked it: the Distributed Map
    still reads the checked version (ItemReader by VersionId), not the key's newest. The second
    write starts a job of its own, which fails on its header."""
    import mlstack_score.app as scoring

    original = scoring.resolve_job
    rewritten: list[bool] = []

    def rewritten_once_checked(request: dict[str, Any]) -> Any:
        job = original(request)
        if not rewritten:
            rewritten.append(True)
            _upload(cloud, "rewritten", b"island\nTorgersen\n")
        return job

    monkeypatch.setattr(scoring, "resolve_job", rewritten_once_checked)
    rows = _rows()[:10]
    _upload(cloud, "rewritten", to_csv(rows))
    sfn = cloud.client("stepfunctions")
    machine = cloud.outputs["ScoringStateMachineArn"]
    deadline = time.monotonic() + 120
    executions: list[dict[str, Any]] = []
    while len(executions) < 2 and time.monotonic() < deadline:
        listed = sfn.list_executions(stateMachineArn=machine)["executions"]
        executions = [e for e in listed if e["name"].startswith(f"{MODEL}-rewritten-")]
        time.sleep(0.1)
    assert len(executions) == 2
    ended = [cloud.wait_for_execution(e["executionArn"], timeout=300) for e in executions]
    by_status = {e["status"]: e for e in ended}
    assert set(by_status) == {"SUCCEEDED", "FAILED"}, [e.get("cause") for e in ended]
    assert by_status["FAILED"]["error"] == "HeaderLacksFeature"  # the second write's own job

    manifest = json.loads(_read(cloud, f"batch/{MODEL}/rewritten/manifest.json"))
    checked = json.loads(by_status["SUCCEEDED"]["input"])["dataset"]["version_id"]
    assert manifest["input"]["version_id"] == checked
    assert (manifest["rows_in"], manifest["rows_scored"]) == (len(rows), len(rows))


def test_mlstack_score_with_a_pinned_version_uses_it_whatever_production_is(
    cloud: LocalCloud, stack: StackClient, production: int, tmp_path: Any
) -> None:
    """--version travels as the file's metadata (mlstack-version), as an S3 upload can carry it."""
    from mlstack.cli.main import main

    upload = stack.upload_dataset(MODEL, penguins_bytes(), None, file_name="c.csv")
    assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
    assert stack.registry.get_alias(MODEL) != production
    # The old version, Archived since it left production, is served again as the shadow: a
    # version the API would serve pinned is one a job may pin.
    assert main(["shadow", MODEL, str(production), "--reason", "compare offline"]) == 0
    path = tmp_path / "rows.csv"
    path.write_bytes(to_csv([r for i, r in enumerate(_rows()[:30]) if i != 10]))
    args = ["score", MODEL, str(path), "--job", "pinned", "--version", str(production), "--wait"]
    assert main(args) == 0
    manifest = json.loads(_read(cloud, f"batch/{MODEL}/pinned/manifest.json"))
    assert (manifest["version"], manifest["rows_scored"]) == (production, 29)
