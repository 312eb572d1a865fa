"""The training tasks' command line: the state machine's RunTask overrides name the step and its
input (``preprocess --event JSON``, ``train --model M --run-id R --candidate JSON``), since a
task gets its input in its command, not in an event.

Each step runs the functions' own code (``mlstack_preprocess.preprocess``,
``mlstack_train.train``) and leaves its result where the next state reads it, in S3: a task's
output is its exit code, so the prepared run, a candidate's result and a named error are objects
(``mlstack_core.storage_keys``) that CollectPreparedRun and CollectTrainedCandidate read.
"""

from __future__ import annotations

import argparse
import json
import traceback
from collections.abc import Callable

from mlstack_core.clients import client
from mlstack_core.observability.pipeline import correlate, logger, metrics
from mlstack_core.payloads import Candidate, ExecutionInput, Run
from mlstack_core.settings import stack_settings
from mlstack_core.storage_keys import (
    candidate_task_error_key,
    prepared_run_key,
    preprocess_task_error_key,
)

EXIT_OK = 0
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlstack_task", description=__doc__)
    steps = parser.add_subparsers(dest="step", required=True)
    preprocess = steps.add_parser("preprocess", help="validate and split the upload")
    preprocess.add_argument("--event", required=True, help="Preprocess's event, as JSON")
    train = steps.add_parser("train", help="fit and export one candidate")
    train.add_argument("--model", required=True)
    train.add_argument("--run-id", required=True)
    train.add_argument("--candidate", required=True, help="the candidate, as JSON")
    return parser


def main(argv: list[str]) -> int:
    """Run one step; its exit code (0: its result is stored; 1: its named error is)."""
    arguments = _parser().parse_args(argv)
    if arguments.step == "preprocess":
        event: ExecutionInput = json.loads(arguments.event)
        return _stored(
            lambda: prepare_run(event),
            error_key=preprocess_task_error_key(event["model"], event.get("execution_name", "")),
        )
    candidate: Candidate = json.loads(arguments.candidate)
    return _stored(
        lambda: train_candidate(arguments.model, arguments.run_id, candidate),
        error_key=candidate_task_error_key(
            arguments.model, arguments.run_id, candidate["candidate_id"]
        ),
    )


def prepare_run(event: ExecutionInput) -> None:
    """Preprocess, as its function runs it; the run is stored for CollectPreparedRun."""
    from mlstack_preprocess.app import SETTINGS
    from mlstack_preprocess.preprocess import CsvEngine, handle
    from mlstack_task import columnar

    SETTINGS.check()
    correlate(event)
    # Arrow reads and writes the CSV here: the same tables, bytes and named errors as the
    # function's csv module, several times faster (mlstack_task.columnar).
    run = handle(event, CsvEngine(columnar.read_csv, columnar.write_split_to))
    client("s3").put_object(
        Bucket=stack_settings().model_bucket,
        Key=prepared_run_key(run["model"], run["run_id"]),
        Body=json.dumps(run).encode(),
        ContentType="application/json",
    )
    logger.info("Run prepared", extra={"model": run["model"], "run_id": run["run_id"]})


def train_candidate(model: str, run_id: str, candidate: Candidate) -> None:
    """Train one candidate of the prepared run, as its function does; the result is stored under
    the candidate's prefix (``storage_keys.candidate_result_key``)."""
    from mlstack_train.app import SETTINGS
    from mlstack_train.train import train_candidate as fit_export_and_store

    SETTINGS.check()
    bucket = stack_settings().model_bucket
    s3 = client("s3")
    body = s3.get_object(Bucket=bucket, Key=prepared_run_key(model, run_id))["Body"].read()
    run: Run = json.loads(body)
    correlate({"run": run})
    entry = fit_export_and_store(run, candidate, s3=s3, bucket=bucket)
    logger.info(
        "Candidate trained",
        extra={"candidate_id": entry["candidate_id"], "status": entry["status"]},
    )


def _stored(step: Callable[[], None], *, error_key: str) -> int:
    """Run ``step``; on any error, store its name and message where the collecting state reads
    them, as Lambda reports a function's error (the class name is the error's name)."""
    try:
        step()
        return EXIT_OK
    except Exception as error:
        logger.exception("Training task failed")
        document = {
            "errorType": type(error).__name__,
            "errorMessage": str(error),
            "stackTrace": traceback.format_exception(error)[-5:],
        }
        client("s3").put_object(
            Bucket=stack_settings().model_bucket,
            Key=error_key,
            Body=json.dumps(document).encode(),
            ContentType="application/json",
        )
        return EXIT_FAILED
    finally:
        metrics.flush_metrics()
