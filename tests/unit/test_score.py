"""The batch scoring function through the payloads its state machine sends: resolve the job,
score batches as the Distributed Map hands them out (ItemReader rows, ItemBatcher batches),
summarise from the ResultWriter's files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.demo import as_instance
from mlstack_core.errors import NoExplanationBackground
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import Stack, load_handler
from tests.helpers.tables import penguins_bytes, records_csv

pytestmark = [pytest.mark.unit, pytest.mark.slow]

MODEL = "penguins"
JOB = "batch/penguins/nightly"
BATCH_ROWS = 25


@pytest.fixture
def production(aws: Stack) -> Stack:
    aws.put_spec(MODEL, {"target": "species", "candidates": ["logistic_regression"]})
    assert aws.run_register_step(aws.run_pipeline(MODEL, penguins_bytes()))["promoted"] is True
    return aws


def _input_rows() -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(penguins_bytes().decode())))[:80]
    for i, row in enumerate(rows):
        row["customer"] = f"c{i:03d}"  # an id the output keeps
        del row["species"]
    rows[7]["bill_depth_mm"] = "deep"
    rows[41]["body_mass_g"] = "4,000"
    return rows


def _upload(aws: Stack, key: str, body: bytes) -> dict[str, Any]:
    put = aws.s3.put_object(Bucket=aws.data_bucket, Key=key, Body=body)
    return {"bucket": aws.data_bucket, "key": key, "version_id": put.get("VersionId")}


def _handler(event: dict[str, Any]) -> Any:
    return load_handler("score")(event, FakeLambdaContext())


def _run_job(
    aws: Stack, rows: list[dict[str, str]], body: bytes | None = None, **request: Any
) -> dict[str, Any]:
    """The scoring state machine's steps, with its payloads; ``body`` the file's bytes when
    they are not ``rows`` as plain CSV."""
    dataset = _upload(aws, "batch/penguins/nightly.csv", body or records_csv(rows))
    job = _handler(
        {
            "action": "resolve",
            "request": {"model": MODEL, "job": "nightly", "dataset": dataset, **request},
        }
    )
    # The ItemReader: the object version the job names, as comma-separated UTF-8 (a BOM kept).
    reader = job["rows"]
    text = aws.s3.get_object(
        Bucket=reader["bucket"], Key=reader["key"], VersionId=reader["version_id"]
    )["Body"].read()
    read = list(csv.DictReader(io.StringIO(text.decode("utf-8"), newline="")))
    items = [{"row": i, "values": values} for i, values in enumerate(read)]  # ItemSelector
    outputs = [
        _handler(
            {"action": "score", "BatchInput": {"job": job}, "Items": items[i : i + BATCH_ROWS]}
        )
        for i in range(0, len(items), BATCH_ROWS)
    ]
    results = "batch/penguins/nightly/map-runs/SUCCEEDED_0.json"  # ResultWriter's files
    aws.s3.put_object(
        Bucket=aws.data_bucket,
        Key=results,
        Body=json.dumps([{"Status": "SUCCEEDED", "Output": json.dumps(o)} for o in outputs]),
    )
    manifest = {
        "DestinationBucket": aws.data_bucket,
        "ResultFiles": {"SUCCEEDED": [{"Key": results}]},
    }
    writer = {"Bucket": aws.data_bucket, "Key": "batch/penguins/nightly/map-runs/manifest.json"}
    aws.s3.put_object(Body=json.dumps(manifest), **writer)
    summary: dict[str, Any] = _handler(
        {"action": "summarise", "job": job, "scored": {"result_writer": writer}}
    )
    return summary


def _read(aws: Stack, key: str) -> str:
    return aws.s3.get_object(Bucket=aws.data_bucket, Key=key)["Body"].read().decode()


def test_a_job_scores_every_row_as_the_api_does_keeps_ids_and_accounts_for_refusals(
    production: Stack,
) -> None:
    aws = production
    rows = _input_rows()
    summary = _run_job(aws, rows, max_refused_share=0.05)

    manifest = json.loads(_read(aws, "batch/penguins/nightly/manifest.json"))
    assert (manifest["rows_in"], manifest["rows_scored"], manifest["rows_refused"]) == (80, 78, 2)
    assert manifest["version"] == summary["version"] == 1
    assert manifest["parts"] == sorted(manifest["parts"])  # in input order
    scored: list[dict[str, str]] = []
    for key in manifest["parts"]:
        scored += list(csv.DictReader(io.StringIO(_read(aws, key))))
    assert [r["customer"] for r in scored] == [
        r["customer"] for i, r in enumerate(rows) if i not in (7, 41)
    ]
    refused = list(csv.DictReader(io.StringIO(_read(aws, manifest["errors"]))))
    assert [r["data_row"] for r in refused] == ["8", "42"]
    assert "'bill_depth_mm'" in refused[0]["reason"]

    # Joined back to the input by id, each answer is the API's for the same row.
    by_id = {r["customer"]: r for r in rows}
    instances = [as_instance({**by_id[r["customer"]]}, "customer") for r in scored]
    status, answer = aws.serve(MODEL, {"instances": instances})
    assert status == 200, answer
    assert [r["prediction"] for r in scored] == answer["predictions"]
    for r, probabilities in zip(scored, answer["probabilities"], strict=True):
        for cls, p in zip(answer["classes"], probabilities, strict=True):
            assert float(r[f"probability_{cls}"]) == pytest.approx(p, abs=1e-6)


def test_a_job_with_more_refusals_than_allowed_fails_by_name_after_its_account(
    production: Stack,
) -> None:
    with pytest.raises(Exception, match="2 of 80 rows were refused") as raised:
        _run_job(production, _input_rows())
    assert type(raised.value).__name__ == "TooManyRefusedRows"
    manifest = json.loads(_read(production, "batch/penguins/nightly/manifest.json"))
    assert manifest["rows_refused"] == 2
    assert manifest["status"] == "failed"


def test_a_file_with_a_byte_order_mark_is_scored_as_training_reads_it(
    production: Stack,
) -> None:
    rows = _input_rows()
    summary = _run_job(
        production, rows, body=b"\xef\xbb\xbf" + records_csv(rows), max_refused_share=0.05
    )
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"]) == (80, 78, 2)


def test_a_file_is_read_with_the_delimiter_its_version_was_trained_on_or_the_jobs(
    aws: Stack,
) -> None:
    aws.put_spec(
        MODEL, {"target": "species", "candidates": ["logistic_regression"], "delimiter": ";"}
    )
    training = penguins_bytes().decode().replace(",", ";").encode()
    assert aws.run_register_step(aws.run_pipeline(MODEL, training))["promoted"] is True
    rows = _input_rows()
    rows[41]["body_mass_g"] = "4;000"  # quoted in a ';' file, a cell the ItemReader must keep
    semicolons = records_csv(rows).decode().replace(",", ";").replace("4;000", '"4;000"')
    summary = _run_job(aws, rows, body=semicolons.encode(), max_refused_share=0.05)
    assert (summary["rows_in"], summary["rows_scored"], summary["rows_refused"]) == (80, 78, 2)
    manifest = json.loads(_read(aws, "batch/penguins/nightly/manifest.json"))
    (first, *_) = csv.DictReader(io.StringIO(_read(aws, manifest["parts"][0])))
    assert first["customer"] == "c000"

    # The job's option overrides the version's; a header read wrongly says which one looks right.
    rows[41]["body_mass_g"] = "4000"
    pipes = records_csv(rows).decode().replace(",", "|").encode()
    assert _run_job(aws, rows, body=pipes, delimiter="|", max_refused_share=0.05)["rows_in"] == 80
    with pytest.raises(Exception, match=r"looks '\|'-separated.*--delimiter '\|'") as raised:
        _run_job(aws, rows, body=pipes)
    assert type(raised.value).__name__ == "HeaderLacksFeature"


class _LocalScoringMachine:
    """What ``mlstack score --wait`` asks of the stack, with the local definition (no
    ItemBatcher) and the real data bucket."""

    def __init__(self, aws: Stack) -> None:
        self.outputs = {"DataBucketName": aws.data_bucket, "ScoringStateMachineArn": "machine"}
        self.session = self
        self.s3 = aws.s3
        self.calls = 0

    def client(self, name: str) -> Any:
        return self.s3 if name == "s3" else self

    def describe_state_machine(self, **_: str) -> dict[str, Any]:
        return {"definition": json.dumps({"States": {"ScoreRows": {"Type": "Map"}}})}

    def describe_execution(self, **_: str) -> dict[str, Any]:
        self.calls += 1
        return {"status": "RUNNING" if self.calls == 1 else "SUCCEEDED"}


def test_progress_counts_rows_whatever_the_batches(production: Stack) -> None:
    from mlstack.cli.batch import follow_job

    _run_job(production, _input_rows(), max_refused_share=0.05)  # 4 parts of 25, 25, 25, 5
    said: list[str] = []
    stack: Any = _LocalScoringMachine(production)
    follow_job(stack, "job", "batch/penguins/nightly", 80, say=said.append, poll_seconds=0)
    assert said == ["  scored 80 of 80 rows"]


def test_the_output_comes_back_as_one_file_in_input_order_with_its_errors_beside_it(
    production: Stack, tmp_path: Path
) -> None:
    from mlstack.cli.batch import download_output, read_manifest

    rows = _input_rows()
    _run_job(production, rows, max_refused_share=0.05)
    stack: Any = _LocalScoringMachine(production)
    checked = production.s3.head_object(Bucket=production.data_bucket, Key=f"{JOB}.csv")
    manifest = read_manifest(stack, production.data_bucket, JOB, checked["VersionId"])
    assert manifest is not None
    assert read_manifest(stack, production.data_bucket, JOB, "an earlier upload") is None

    output = tmp_path / "scored.csv"
    written = download_output(stack, manifest, production.data_bucket, output)
    assert written == [output, tmp_path / "scored.errors.csv"]
    with output.open(newline="") as handle:
        scored = list(csv.DictReader(handle))
    assert [r["customer"] for r in scored] == [
        r["customer"] for i, r in enumerate(rows) if i not in (7, 41)
    ]
    assert set(scored[0]) >= {"island", "prediction", "probability_Gentoo"}
    refused = list(csv.DictReader(io.StringIO(written[1].read_text())))
    assert [r["data_row"] for r in refused] == ["8", "42"]


def test_a_pinned_version_scores_the_whole_job_and_an_unservable_one_is_refused(
    production: Stack,
) -> None:
    aws = production
    state = aws.run_pipeline(MODEL, penguins_bytes())
    state["evaluation"]["decision"] = "reject"
    assert aws.run_register_step(state)["version"] == 2  # Rejected: never served
    assert _run_job(aws, _input_rows(), version=1, max_refused_share=0.05)["version"] == 1
    with pytest.raises(Exception, match="only approved versions") as raised:
        _run_job(aws, _input_rows(), version=2)
    assert type(raised.value).__name__ == "VersionNotServed"


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        (b"", "EmptyDataset", "is empty"),
        (b"island,bill_length_mm\nTorgersen,39.1\n", "HeaderLacksFeature", "'bill_depth_mm'"),
    ],
    ids=["empty-file", "header-lacks-a-feature"],
)
def test_a_file_that_cannot_be_scored_fails_at_once_by_name(
    production: Stack, body: bytes, error: str, needle: str
) -> None:
    dataset = _upload(production, "batch/penguins/bad.csv", body)
    with pytest.raises(Exception, match=needle) as raised:
        _handler(
            {"action": "resolve", "request": {"model": MODEL, "job": "bad", "dataset": dataset}}
        )
    assert type(raised.value).__name__ == error


def test_an_alias_does_not_let_a_job_pin_a_version_that_was_not_approved(
    production: Stack,
) -> None:
    """A job's pinned version follows ?version=N's rule: an aliased version used to skip the
    status check, so a job pinned to a Rejected shadow scored with it."""
    aws = production
    state = aws.run_pipeline(MODEL, penguins_bytes())
    state["evaluation"]["decision"] = "reject"
    assert aws.run_register_step(state)["version"] == 2
    aws.registry.set_status(MODEL, 2, "Approved", "test", "reviewed")
    aws.registry.set_challenger(MODEL, "shadow", 2, actor="test", reason="compare")
    aws.registry.set_status(MODEL, 2, "Rejected", "test", "withdrawn")

    with pytest.raises(Exception, match="version 2 of 'penguins' is Rejected") as raised:
        _run_job(aws, _input_rows(), version=2)
    assert type(raised.value).__name__ == "VersionNotServed"


def test_the_allowed_refused_share_is_a_finite_number_below_one(production: Stack) -> None:
    """From the request or the file's metadata, as an upload carries it: NaN and 1 would let
    every row be refused and the job succeed."""
    dataset = _upload(production, "batch/penguins/share.csv", records_csv(_input_rows()[:5]))
    request = {"model": MODEL, "job": "share", "dataset": dataset}
    for share in ["nan", "NaN", "1", 1.0, "inf", "-0.01", "a lot", True]:
        with pytest.raises(Exception, match=r"must be a number in \[0, 1\)") as raised:
            _handler({"action": "resolve", "request": {**request, "max_refused_share": share}})
        assert type(raised.value).__name__ == "RefusedShareOutOfRange"
    metadata = {"mlstack-max-refused-share": "nan"}
    put = production.s3.put_object(
        Bucket=production.data_bucket, Key=dataset["key"], Body=b"x\n1\n", Metadata=metadata
    )
    pinned = {**dataset, "version_id": put["VersionId"]}
    with pytest.raises(Exception, match="got 'nan'"):
        _handler({"action": "resolve", "request": {**request, "dataset": pinned}})
    for share, allowed in [(0, 0.0), ("0.25", 0.25), (None, 0.01)]:
        job = _handler({"action": "resolve", "request": {**request, "max_refused_share": share}})
        assert job["max_refused_share"] == allowed


def test_the_job_names_the_file_version_it_checked(production: Stack) -> None:
    """The Distributed Map reads the file by the VersionId the job was resolved with
    (statemachine/scoring.asl.json): the event's, or the key's current version when none came."""
    first = _upload(production, "batch/penguins/fixed.csv", records_csv(_input_rows()[:5]))
    newest = _upload(production, "batch/penguins/fixed.csv", records_csv(_input_rows()[:3]))
    assert first["version_id"] != newest["version_id"]
    request = {"model": MODEL, "job": "fixed"}

    for dataset, expected in [
        (first, first["version_id"]),
        ({**first, "version_id": None}, newest["version_id"]),
    ]:
        job = _handler({"action": "resolve", "request": {**request, "dataset": dataset}})
        assert job["input"] == {**first, "version_id": expected}


def test_a_job_asked_to_explain_adds_each_columns_contribution_to_the_predicted_class(
    production: Stack,
) -> None:
    """``mlstack-explain``: beside each answer, the explained base and one contribution per input
    column, as the explain route gives them, adding up to the predicted class's probability."""
    aws = production
    rows = _input_rows()[:30]
    _run_job(aws, rows, explain="true", max_refused_share=0.05)
    manifest = json.loads(_read(aws, "batch/penguins/nightly/manifest.json"))
    scored: list[dict[str, str]] = []
    for key in manifest["parts"]:
        scored += list(csv.DictReader(io.StringIO(_read(aws, key))))
    assert len(scored) == 29  # row 7 is refused
    document = aws.registry.get_version(MODEL, 1)
    inputs = [*document["schema"]["numeric"], *document["schema"]["categorical"]]
    for row in scored:
        contributions = [float(row[f"contribution_{name}"]) for name in inputs]
        probability = float(row[f"probability_{row['prediction']}"])
        total = float(row["explained_base"]) + sum(contributions)
        assert total == pytest.approx(probability, abs=1e-6)


def test_a_job_asked_to_explain_a_version_without_background_rows_fails_at_once(
    production: Stack,
) -> None:
    aws = production
    document = aws.registry.get_version(MODEL, 1)
    document.pop("files", None)
    aws.registry.put_version(MODEL, 2, "Approved", document)
    dataset = _upload(aws, "batch/penguins/nightly.csv", records_csv(_input_rows()))
    with pytest.raises(NoExplanationBackground, match="has no background rows"):
        _handler(
            {
                "action": "resolve",
                "request": {
                    "model": MODEL,
                    "job": "nightly",
                    "dataset": dataset,
                    "version": 2,
                    "explain": "true",
                },
            }
        )
