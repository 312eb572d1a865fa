"""Every state's payload stays under Step Functions' 256 KB in the largest run the stack allows:
the widest table (MaxDatasetColumns), the largest cross-validated search one candidate may run
(MAX_CV_POINTS points x MAX_FOLDS folds), as many candidates as the inline Map carries and as
MaxCandidates allows, and a batch job whose file's header is a MiB of columns.

The sizes are those of the real handlers' outputs: one candidate is trained for real and its
result copied under other names (training a hundred would say nothing more about sizes), and the
training state machine's own ResultSelector (statemachine/training.asl.json) is applied to
Train's output as Step Functions applies it."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from typing import Any

import numpy as np
import pytest

from mlstack_core.candidates import INLINE_MAP_LIMIT, MAX_CV_POINTS, MAX_FOLDS
from mlstack_core.settings import guard_settings
from mlstack_preprocess.guards import RUN_STATE_BUDGET_BYTES
from tests.helpers import ROOT
from tests.helpers.lambda_context import FakeLambdaContext
from tests.helpers.stack import Stack, load_handler, register_event
from tests.helpers.tables import penguins_bytes

pytestmark = [pytest.mark.unit, pytest.mark.slow]

STATE_LIMIT_BYTES = 256 * 1024  # Step Functions: a state's input or output, a task's result
MODEL = "widest"
ROWS = 160


def size(payload: Any) -> int:
    return len(json.dumps(payload).encode())


def widest_table(columns: int, name_prefix: str, rows: int = ROWS, seed: int = 0) -> bytes:
    """``columns - 1`` numeric features named ``<name_prefix><i>`` and a binary label."""
    rng = np.random.default_rng(seed)
    names = [f"{name_prefix}{i:04d}" for i in range(columns - 1)]
    values = rng.normal(size=(rows, columns - 1))
    label = (values[:, :5].sum(axis=1) + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    lines = [",".join([*names, "label"])]
    lines += [",".join([*(f"{v:.3f}" for v in values[r]), str(label[r])]) for r in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def train_selector() -> dict[str, str]:
    """The inline Map's TrainCandidate ResultSelector (none: Train's output as it is)."""
    machine = json.loads((ROOT / "statemachine" / "training.asl.json").read_text())
    task = machine["States"]["TrainCandidates"]["ItemProcessor"]["States"]["TrainCandidate"]
    selector: dict[str, str] = task.get("ResultSelector", {})
    return selector


def select(selector: dict[str, str], output: dict[str, Any]) -> dict[str, Any]:
    """A flat ResultSelector (``"name.$": "$.field"``) applied to a task's result."""
    if not selector:
        return output
    return {
        name.removesuffix(".$"): output.get(path.removeprefix("$."))
        for name, path in selector.items()
    }


def renamed(aws: Stack, entry: dict[str, Any], candidate_id: str) -> dict[str, Any]:
    """Train's output for another candidate of the same size: the same result under another
    name, stored beside the first (where Train stores one) when Train stores its result."""
    copied = {**copy.deepcopy(entry), "candidate_id": candidate_id}
    if "result_key" not in entry:
        return copied
    whole = json.loads(
        aws.s3.get_object(Bucket=aws.model_bucket, Key=entry["result_key"])["Body"].read()
    )
    body = json.dumps({**whole, "candidate_id": candidate_id}).encode()
    key = entry["result_key"].replace(entry["candidate_id"], candidate_id)
    put = aws.s3.put_object(Bucket=aws.model_bucket, Key=key, Body=body)
    copied.update(
        result_key=key,
        result_version_id=put.get("VersionId"),
        result_sha256=hashlib.sha256(body).hexdigest(),
    )
    return copied


def test_every_state_of_the_largest_training_run_stays_under_256_kb(aws: Stack) -> None:
    guards = guard_settings()
    grid = {"C": [round(0.01 * 1.3**i, 6) for i in range(MAX_CV_POINTS)]}
    aws.put_spec(
        MODEL,
        {
            "target": "label",
            "candidates": [{"family": "logistic_regression", "grid": grid, "cv": MAX_FOLDS}],
        },
    )
    # MaxDatasetColumns columns; at this width short names already bring the run near its
    # budget in Preprocess (RUN_STATE_BUDGET_BYTES), which longer ones would exceed.
    state: dict[str, Any] = aws.upload(MODEL, widest_table(guards.max_columns, "f"))
    state["run"] = aws.preprocess(state)
    run = state["run"]
    assert size(run) > 0.9 * RUN_STATE_BUDGET_BYTES
    assert len(run["schema"]["numeric"]) == guards.max_columns - 1
    assert run["splits"].get("folds_key"), "judged by cross-validation"
    sizes = {"Preprocess": size(state)}

    (candidate,) = run["candidates"]
    trained = load_handler("train")({"run": run, "candidate": candidate}, FakeLambdaContext())
    assert trained["status"] == "trained", trained.get("error")
    assert len(trained["cv"]["points"]) == MAX_CV_POINTS
    assert len(trained["cv"]["points"][0]["fold_scores"]) == MAX_FOLDS
    sizes["Train (the task's result)"] = size(trained)

    # The inline Map: as many candidates as travel in the state, each Train's result selected.
    selector = train_selector()
    inline = [
        select(selector, renamed(aws, trained, f"{candidate['candidate_id']}-{i:04d}"))
        for i in range(INLINE_MAP_LIMIT)
    ]
    state["trained"] = inline
    sizes["TrainCandidates"] = size(state)

    # Evaluate with as many candidates as the stack allows (a Distributed Map's results are a
    # reference in the state; the inline list is kept here, the larger of the two).
    many = [
        renamed(aws, trained, f"{candidate['candidate_id']}-{i:04d}")
        for i in range(guards.max_candidates)
    ]
    evaluation = aws.evaluate(run, many)
    sizes["Evaluate (the task's result)"] = size(evaluation)
    state["evaluation"] = evaluation
    sizes["Evaluate"] = size(state)

    event = register_event("promote", run, evaluation)
    sizes["RegisterAndPromote (its input)"] = size(event)
    state["registration"] = load_handler("register")(event, FakeLambdaContext())
    assert state["registration"]["promoted"] is True
    sizes["RegisterAndPromote"] = size(state)

    too_large = {name: bytes_ for name, bytes_ in sizes.items() if bytes_ >= STATE_LIMIT_BYTES}
    assert too_large == {}, sizes


def test_a_batch_job_keeping_a_header_of_a_mib_stays_under_256_kb(aws: Stack) -> None:
    """The job travels in every batch's input (the Map's BatchInput), which Step Functions
    bounds further: MaxInputBytesPerBatch in statemachine/scoring.asl.json."""
    aws.put_spec("penguins", {"target": "species", "candidates": ["logistic_regression"]})
    assert aws.run_register_step(aws.run_pipeline("penguins", penguins_bytes()))["promoted"]
    rows = list(csv.DictReader(io.StringIO(penguins_bytes().decode())))[:3]
    extra = [f"kept_column_with_a_long_name_{i:06d}" for i in range(27_000)]
    header = [*rows[0], *extra]
    assert len(",".join(header).encode()) < 2**20  # the header fits the file's first MiB
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([*row.values(), *("x" for _ in extra)] for row in rows)
    put = aws.s3.put_object(
        Bucket=aws.data_bucket, Key="batch/penguins/wide.csv", Body=buffer.getvalue().encode()
    )
    dataset = {"bucket": aws.data_bucket, "key": "batch/penguins/wide.csv"}
    dataset["version_id"] = put.get("VersionId")
    request = {"model": "penguins", "job": "wide", "dataset": dataset}
    handler = load_handler("score")
    job = handler({"action": "resolve", "request": request}, FakeLambdaContext())

    machine = json.loads((ROOT / "statemachine" / "scoring.asl.json").read_text())
    batch_limit = machine["States"]["ScoreRows"]["ItemBatcher"]["MaxInputBytesPerBatch"]
    assert size({**request, "job": job}) < STATE_LIMIT_BYTES
    assert size({"job": job}) < batch_limit // 10, "the job leaves the batch room for rows"

    items = [
        {"row": i, "values": dict(zip(header, r, strict=True))}
        for i, r in enumerate([[*row.values(), *("x" for _ in extra)] for row in rows])
    ]
    scored = handler(
        {"action": "score", "BatchInput": {"job": job}, "Items": items}, FakeLambdaContext()
    )
    part = aws.s3.get_object(Bucket=aws.data_bucket, Key=scored["part_key"])["Body"].read()
    assert next(csv.reader(io.StringIO(part.decode())))[: len(header)] == header
