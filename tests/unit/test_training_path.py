"""Where a run trains, and what the Fargate path's tasks hand back: MeasureDataset's choice and
sizes, the training image's entrypoint, and CollectPreparedRun / CollectTrainedCandidate turning
a task's stored result or failure into what the Lambda path's states return or raise, each
through its real event."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core.candidates import spec_families
from mlstack_core.errors import (
    ComputeOutsideStackLimits,
    DatasetTooLargeForStack,
    ForeignDataset,
    SingleClass,
    SpecError,
    TooFewRows,
    TrainingTaskFailed,
    TrainingTaskOutOfMemory,
    TrainingTaskStopped,
    TrainingTaskTimedOut,
)
from mlstack_core.settings import TrainingComputeSettings, forget
from mlstack_core.storage_keys import (
    candidate_result_key,
    candidate_task_error_key,
    prepared_run_key,
    preprocess_task_error_key,
)
from mlstack_preprocess.sizing import (
    FARGATE_MEMORY,
    TableSize,
    compute_for,
    estimated_train_mib,
    fargate_size,
    table_size,
)
from tests.helpers.local_cloud import penguin_rows
from tests.helpers.stack import Stack, load_handler
from tests.helpers.tables import mixed_csv

pytestmark = pytest.mark.unit

# What a spec without candidates trains (random forests among them).
DEFAULT_FAMILIES = spec_families({})
SETTINGS = TrainingComputeSettings(
    large_dataset_threshold_mib=256,
    train_function_memory_mib=3008,
    task_max_cpu=4096,
    task_max_memory_mib=30720,
    task_timeout_seconds=14400,
    subnet_ids=("subnet-1", "subnet-2"),
    security_group_ids=("sg-1",),
    assign_public_ip="ENABLED",
)
EVENT: Any = {"model": "m", "dataset": {"bucket": "b", "key": "datasets/m/d.csv"}}


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    out.write(",".join(rows[0]) + "\n")
    for row in rows:
        out.write(",".join(row.values()) + "\n")
    return out.getvalue().encode()


# ------------------------------------------------------------------------------ measuring
@given(
    rows=st.integers(min_value=1, max_value=3000),
    columns=st.integers(min_value=1, max_value=40),
    width=st.integers(min_value=1, max_value=12),
)
@settings(max_examples=60)
def test_rows_are_counted_in_a_whole_file_and_estimated_from_its_first_bytes(
    rows: int, columns: int, width: int
) -> None:
    header = ",".join(f"c{i}" for i in range(columns)) + "\n"
    line = ",".join("7" * width for _ in range(columns)) + "\n"
    body = (header + line * rows).encode()
    whole = table_size(body, len(body), ",")
    assert (whole.columns, whole.estimated_rows) == (columns, rows)
    # A sample that holds part of the file: lines of one length give the count back.
    cut = len(header) + len(line) * max(1, rows // 3) + len(line) // 2
    if cut < len(body):
        sampled = table_size(body[:cut], len(body), ",")
        assert sampled.columns == columns
        assert sampled.estimated_rows == rows


def test_a_header_longer_than_the_sample_estimates_no_rows_and_keeps_the_columns_it_saw() -> None:
    body = b"a,b,c"  # no newline within the sample
    assert table_size(body, 10_000_000, ",").estimated_rows == 0


@given(memory=st.integers(min_value=1, max_value=30720))
def test_a_task_size_is_one_fargate_allows_and_holds_the_memory_asked(memory: int) -> None:
    cpu, given_memory = fargate_size(memory, SETTINGS)
    least, most, step = FARGATE_MEMORY[cpu]
    assert least <= given_memory <= most
    assert given_memory % step == 0
    assert given_memory >= memory
    assert cpu <= SETTINGS.task_max_cpu
    assert given_memory <= SETTINGS.task_max_memory_mib


def test_a_table_needing_more_than_the_largest_task_fails_by_name() -> None:
    with pytest.raises(DatasetTooLargeForStack, match="TrainingTaskMaxMemoryMiB"):
        fargate_size(30721, SETTINGS)


def test_the_path_follows_the_threshold_the_estimate_and_the_spec() -> None:
    small = table_size(b"a,b\n1,2\n", 8, ",")
    assert compute_for(small, {}, SETTINGS, EVENT, DEFAULT_FAMILIES)["path"] == "lambda"
    # Ten columns, 61 bytes a row (the shape docs/large-path.md measures): 5 million rows.
    header = ",".join(f"c{i}" for i in range(10)) + "\n"
    line = ",".join(["1.23456"] * 6 + ["lv"] * 3 + ["0.5"]) + "\n"
    assert len(line) == 61
    big = table_size((header + line * 100).encode(), 300 * 2**20, ",")
    chosen = compute_for(big, {}, SETTINGS, EVENT, DEFAULT_FAMILIES)
    assert chosen["path"] == "fargate"
    assert "LargeDatasetThresholdMiB" in chosen["reason"]
    assert chosen["network"] == {
        "Subnets": ["subnet-1", "subnet-2"],
        "SecurityGroups": ["sg-1"],
        "AssignPublicIp": "ENABLED",
    }
    assert chosen["candidate_seconds"] is not None
    assert chosen["candidate_seconds"] > SETTINGS.task_timeout_seconds
    # Below the threshold, but more memory than the Train function has: Fargate too.
    wide = TableSize(100 * 2**20, 500, 20_000)
    assert estimated_train_mib(wide, DEFAULT_FAMILIES) > SETTINGS.train_function_memory_mib
    assert compute_for(wide, {}, SETTINGS, EVENT, DEFAULT_FAMILIES)["path"] == "fargate"
    assert (
        compute_for(big, {"path": "lambda"}, SETTINGS, EVENT, DEFAULT_FAMILIES)["path"] == "lambda"
    )
    asked = {"path": "fargate", "cpu": 2048}
    forced = compute_for(small, asked, SETTINGS, EVENT, DEFAULT_FAMILIES)
    assert (forced["path"], forced["cpu"]) == ("fargate", "2048")
    assert compute_for(small, {}, SETTINGS, EVENT, DEFAULT_FAMILIES)["candidate_seconds"] is None


def test_the_estimate_follows_the_families_the_spec_trains() -> None:
    """Ordinal-coded and sparse one-hot families need a third of what dense one-hot ones do: a
    ten-million-row, ten-column table of ridge and HistGradientBoosting fits the stack's default
    largest task; with the default candidates (a random forest among them) it does not."""
    header = ",".join(f"c{i}" for i in range(10)) + "\n"
    line = ",".join(["1.23456"] * 6 + ["lv"] * 3 + ["0.5"]) + "\n"
    ten_million = table_size((header + line * 100).encode(), 10_000_000 * len(line), ",")
    lean = {"ridge", "hist_gradient_boosting"}
    assert estimated_train_mib(ten_million, lean) * 3 < estimated_train_mib(
        ten_million, DEFAULT_FAMILIES
    )
    assert estimated_train_mib(ten_million, {"ridge", "random_forest"}) == estimated_train_mib(
        ten_million, DEFAULT_FAMILIES
    )
    assert compute_for(ten_million, {}, SETTINGS, EVENT, lean)["path"] == "fargate"
    with pytest.raises(DatasetTooLargeForStack, match="TrainingTaskMaxMemoryMiB"):
        compute_for(ten_million, {}, SETTINGS, EVENT, DEFAULT_FAMILIES)
    assert spec_families({"candidates": ["ridge", {"family": "hist_gradient_boosting"}]}) == lean


@pytest.mark.parametrize("asked", [{"cpu": 8192}, {"memory_mib": 61440}], ids=["cpu", "memory"])
def test_a_spec_never_asks_for_more_than_the_stack_allows(asked: dict[str, int]) -> None:
    small = table_size(b"a,b\n1,2\n", 8, ",")
    with pytest.raises(ComputeOutsideStackLimits, match="TrainingTask"):
        compute_for(small, {"path": "fargate", **asked}, SETTINGS, EVENT, DEFAULT_FAMILIES)


@pytest.fixture
def compute_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRAINING_SUBNET_IDS", "subnet-a,subnet-b")
    monkeypatch.setenv("TRAINING_SECURITY_GROUP_IDS", "sg-a")
    forget()
    yield
    forget()


def _measure_event(aws: Stack, body: bytes, model: str = "sized") -> dict[str, Any]:
    return {"action": "measure", **aws.upload(model, body)}


def test_measure_dataset_chooses_through_its_real_event(
    aws: Stack, compute_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _csv(penguin_rows())
    aws.put_spec("sized", {"target": "species"})
    measured = load_handler("preprocess")(_measure_event(aws, body), aws.context)
    assert measured["path"] == "lambda"
    assert measured["columns"] == len(penguin_rows()[0])
    assert measured["estimated_rows"] == len(penguin_rows())
    command = measured["preprocess_command"]
    assert command[:2] == ["preprocess", "--event"]
    assert json.loads(command[2])["dataset"]["key"] == "datasets/sized/data.csv"

    monkeypatch.setenv("LARGE_DATASET_THRESHOLD_MIB", "0")
    forget()
    measured = load_handler("preprocess")(_measure_event(aws, body), aws.context)
    assert measured["path"] == "fargate"
    assert measured["network"]["Subnets"] == ["subnet-a", "subnet-b"]

    aws.put_spec("sized", {"target": "species", "compute": {"path": "auto", "cpu": 16384}})
    with pytest.raises(ComputeOutsideStackLimits):
        load_handler("preprocess")(_measure_event(aws, body), aws.context)


def test_measure_dataset_reads_no_object_outside_the_stacks_datasets(aws: Stack) -> None:
    event = _measure_event(aws, b"a,b\n1,2\n")
    event["dataset"] = {**event["dataset"], "bucket": "someone-elses"}
    with pytest.raises(ForeignDataset):
        load_handler("preprocess")(event, aws.context)


def test_a_spec_that_does_not_load_leaves_its_error_to_preprocess(aws: Stack) -> None:
    aws.put_spec("sized", b"{not json")
    measured = load_handler("preprocess")(_measure_event(aws, b"a,b\n1,2\n"), aws.context)
    assert measured["path"] == "lambda"


# ------------------------------------------------------------------------------ collecting
CANDIDATE = {"candidate_id": "c00-ridge", "family": "ridge", "params": {}}


def _failed(
    exit_code: int | None, reason: str = "", stop_code: str = "EssentialContainerExited"
) -> dict[str, str]:
    description = {
        "StopCode": stop_code,
        "StoppedReason": "Essential container in task exited",
        "Memory": "4096",
        "Containers": [{"Name": "training", "ExitCode": exit_code, "Reason": reason}],
    }
    return {"Error": "States.TaskFailed", "Cause": json.dumps(description)}


def test_a_prepared_run_comes_back_as_preprocess_returns_it(aws: Stack) -> None:
    run = {"model": "m", "run_id": "r1", "candidates": [CANDIDATE]}
    aws.s3.put_object(
        Bucket=aws.model_bucket, Key=prepared_run_key("m", "r1"), Body=json.dumps(run)
    )
    assert _collect_for(aws, "m", "r1", "preprocess", {"task_arn": "arn:task"}) == run


def test_a_trained_candidate_comes_back_as_trains_state_keeps_it(aws: Stack) -> None:
    result = {**CANDIDATE, "status": "trained", "fit_seconds": 1.5, "cv": {"big": "report"}}
    body = json.dumps(result).encode()
    key = candidate_result_key("m", "r1", "c00-ridge")
    put = aws.s3.put_object(Bucket=aws.model_bucket, Key=key, Body=body)
    collected = _collect_for(aws, "m", "r1", "train", {"task_arn": "arn:task"}, candidate=CANDIDATE)
    import hashlib

    assert collected == {
        "candidate_id": "c00-ridge",
        "family": "ridge",
        "status": "trained",
        "fit_seconds": 1.5,
        "result_key": key,
        "result_version_id": put["VersionId"],
        "result_sha256": hashlib.sha256(body).hexdigest(),
    }


@pytest.mark.parametrize(
    ("stored", "raised"),
    [
        ({"errorType": "SpecError", "errorMessage": "spec.json: bad"}, SpecError),
        ({"errorType": "TooFewRows", "errorMessage": "3 rows"}, TooFewRows),
        ({"errorType": "MemoryError", "errorMessage": ""}, TrainingTaskFailed),
    ],
    ids=["spec", "dataset", "foreign-error"],
)
def test_a_tasks_stored_error_fails_the_state_by_the_same_name(
    aws: Stack, stored: dict[str, str], raised: type[Exception]
) -> None:
    aws.s3.put_object(
        Bucket=aws.model_bucket, Key=preprocess_task_error_key("m", "r1"), Body=json.dumps(stored)
    )
    with pytest.raises(raised) as caught:
        _collect_for(aws, "m", "r1", "preprocess", _failed(1))
    assert type(caught.value) is raised
    if stored["errorType"] == "MemoryError":
        assert "MemoryError" in str(caught.value)


@pytest.mark.parametrize(
    ("task", "raised", "words"),
    [
        (_failed(137, "OutOfMemoryError: Container killed"), TrainingTaskOutOfMemory, "4096 MiB"),
        (_failed(None, stop_code="UserInitiated"), TrainingTaskStopped, "stopped"),
        ({"Error": "States.Timeout", "Cause": ""}, TrainingTaskTimedOut, "TrainingTaskTimeout"),
        (_failed(2), TrainingTaskFailed, "exit code 2"),
    ],
    ids=["out-of-memory", "stopped", "timed-out", "crashed"],
)
def test_a_task_that_left_no_error_fails_by_how_it_stopped(
    aws: Stack, task: dict[str, str], raised: type[Exception], words: str
) -> None:
    with pytest.raises(raised, match=words) as caught:
        _collect_for(aws, "m", "r1", "train", task, candidate=CANDIDATE)
    assert type(caught.value) is raised
    assert "c00-ridge" in str(caught.value)


def test_a_candidate_whose_task_stored_an_error_is_not_collected_even_if_it_exited_zero(
    aws: Stack,
) -> None:
    key = candidate_task_error_key("m", "r1", "c00-ridge")
    aws.s3.put_object(
        Bucket=aws.model_bucket,
        Key=key,
        Body=json.dumps({"errorType": "TooFewRows", "errorMessage": "x"}),
    )
    with pytest.raises(TooFewRows):
        _collect_for(aws, "m", "r1", "train", {"task_arn": "arn:task"}, candidate=CANDIDATE)


# ---------------------------------------------------------------------- the image's entrypoint
@pytest.mark.slow
def test_the_images_steps_leave_what_the_collecting_states_hand_on(aws: Stack) -> None:
    """``preprocess`` stores the run Preprocess's function would return; ``train`` stores the
    result Train's would; the collecting states return them as the Lambda path's states do."""
    from mlstack_task.main import main

    aws.put_spec("tasked", {"target": "species", "candidates": ["logistic_regression"]})
    event = aws.upload("tasked", _csv(penguin_rows()))
    assert main(["preprocess", "--event", json.dumps(event)]) == 0
    run_id = event["execution_name"]
    collected_run = _collect_for(aws, "tasked", run_id, "preprocess", {"task_arn": "arn:task"})
    assert collected_run == aws.preprocess(aws.upload("tasked", _csv(penguin_rows()))) | {
        "run_id": run_id,
        "execution_arn": event["execution_arn"],
        "dataset": collected_run["dataset"],
        "splits": collected_run["splits"],
        "feature_baseline_key": collected_run["feature_baseline_key"],
        "background_split_key": collected_run["background_split_key"],
    }
    candidate = collected_run["candidates"][0]
    arguments = ["train", "--model", "tasked", "--run-id", run_id]
    assert main([*arguments, "--candidate", json.dumps(candidate)]) == 0
    entry = _collect_for(
        aws, "tasked", run_id, "train", {"task_arn": "arn:task"}, candidate=candidate
    )
    assert (entry["candidate_id"], entry["status"]) == (candidate["candidate_id"], "trained")
    evaluation = aws.evaluate(collected_run, [entry])
    assert evaluation["decision"] == "promote"


@pytest.mark.slow
def test_a_bad_upload_fails_the_preprocess_task_by_the_datasets_own_error(aws: Stack) -> None:
    from mlstack_task.main import main

    aws.put_spec("tasked", {"target": "species"})
    event = aws.upload("tasked", b"species,bill\nAdelie,1\n")
    assert main(["preprocess", "--event", json.dumps(event)]) == 1
    with pytest.raises(SingleClass, match="single class 'Adelie'"):
        _collect_for(aws, "tasked", event["execution_name"], "preprocess", _failed(1))


def _collect_for(aws: Stack, model: str, run_id: str, step: str, task: Any, **extra: Any) -> Any:
    event = {"step": step, "model": model, "run_id": run_id, "task": task, **extra}
    return load_handler("taskresult")(event, aws.context)


@pytest.mark.parametrize("size_known", [True, False], ids=["size-given", "size-unknown"])
def test_an_empty_file_is_measured_and_left_to_preprocess(aws: Stack, size_known: bool) -> None:
    """No range of an empty object can be read; Preprocess then fails it as EmptyDataset."""
    event = _measure_event(aws, b"")
    if not size_known:
        del event["dataset"]["size"]
    measured = load_handler("preprocess")(event, aws.context)
    assert (measured["path"], measured["dataset_bytes"], measured["estimated_rows"]) == (
        "lambda",
        0,
        0,
    )


def _wide_numeric(rows: int, columns: int) -> bytes:
    """Hundreds of numeric columns and an integer label that follows the first."""
    generator = np.random.default_rng(7)
    values = generator.normal(size=(rows, columns)).round(4)
    labels = (values[:, 0] > 0).astype(int)
    header = ",".join([*(f"x{i}" for i in range(columns)), "label"])
    lines = [",".join([*map(str, row), str(y)]) for row, y in zip(values, labels, strict=True)]
    return ("\n".join([header, *lines]) + "\n").encode()


def _one_categorical(rows: int) -> bytes:
    levels = ["red", "Zürich", "a,b"]
    lines = [f'"{levels[i % 3]}",{i % 3 == 1}' for i in range(rows)]
    return ("colour,flag\n" + "\n".join(lines) + "\n").encode()


SHAPED_UPLOADS = {
    "dates, free text, an identifier, a True/False label": (lambda: mixed_csv(300), "returned"),
    "three hundred numeric columns, integer labels": (lambda: _wide_numeric(240, 300), "label"),
    "one categorical feature with odd levels": (lambda: _one_categorical(240), "flag"),
}


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(SHAPED_UPLOADS))
def test_the_images_steps_prepare_and_train_other_shapes_as_the_functions_do(
    aws: Stack, shape: str
) -> None:
    """The training image's steps on tables unlike the penguins: the run it prepares is the one
    Preprocess's function prepares (schema, kinds, warnings), and its candidate trains."""
    from mlstack_task.main import main

    make, target = SHAPED_UPLOADS[shape]
    body = make()
    aws.put_spec("shaped", {"target": target, "candidates": ["logistic_regression"]})
    event = aws.upload("shaped", body)
    assert main(["preprocess", "--event", json.dumps(event)]) == 0
    run_id = event["execution_name"]
    collected = _collect_for(aws, "shaped", run_id, "preprocess", {"task_arn": "arn:task"})
    by_function = aws.preprocess(aws.upload("shaped", body))
    for part in ("schema", "task", "warnings", "candidates", "spec"):
        assert collected[part] == by_function[part], part
    candidate = collected["candidates"][0]
    arguments = ["train", "--model", "shaped", "--run-id", run_id]
    assert main([*arguments, "--candidate", json.dumps(candidate)]) == 0
    entry = _collect_for(
        aws, "shaped", run_id, "train", {"task_arn": "arn:task"}, candidate=candidate
    )
    assert entry["status"] == "trained"
    assert aws.evaluate(collected, [entry])["decision"] in ("promote", "reject")
