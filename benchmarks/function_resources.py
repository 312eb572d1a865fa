"""Peak memory and time of every function's handler on one dataset: the numbers behind the
MemorySize and Timeout of each function in template.yaml.

    .venv/bin/python benchmarks/function_resources.py                 # 100k rows
    .venv/bin/python benchmarks/function_resources.py --rows 20000 200000

moto runs as a server in this process; each handler runs in a fresh Python process (a cold Lambda
container) against it through AWS_ENDPOINT_URL, in pipeline order: RunLock, Preprocess, Train for
each default candidate, Evaluate, Register, then Predict on 1,000 holdout-like rows, and Trigger.
A step's peak RSS is the child's ``VmHWM`` (what Lambda reports as Max Memory Used; it includes
the Python interpreter, the imports and boto3). Not ``ru_maxrss``: Linux carries the parent's
high-water mark across fork and exec, so every child would report at least this process's size.
Times are this machine's, with one thread per native pool as on a 1-vCPU Lambda; Lambda below
1,769 MB gets less than one vCPU.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlstack_core.idempotency import TABLE_DEFINITION as IDEMPOTENCY_TABLE
from mlstack_core.registry import TABLE_DEFINITION
from mlstack_core.storage_keys import dataset_key, spec_key

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
REGION = "us-east-1"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(function: str, event_path: Path) -> None:
    """Run ``mlstack_<function>.app``'s handler on the event; print one JSON line."""
    sys.path[:0] = [str(ROOT / "functions" / function), str(ROOT / "layers/core")]
    started = time.perf_counter()
    module = importlib.import_module(f"mlstack_{function}.app")
    imported = time.perf_counter()

    class Context:
        function_name = function
        memory_limit_in_mb = 10240
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function}"
        aws_request_id = "bench"

        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    result = module.handler(json.loads(event_path.read_text()), Context())
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "result": result,
                "import_seconds": imported - started,
                "handler_seconds": done - imported,
                "peak_rss_mb": peak_rss_mb(),
            },
            default=str,
        )
    )


def run(function: str, event: dict[str, Any], environment: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(event, handle)
    completed = subprocess.run(
        [sys.executable, __file__, "--child", function, handle.name],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        check=False,
    )
    os.unlink(handle.name)
    lines = [line for line in completed.stdout.splitlines() if line.startswith('{"result"')]
    if completed.returncode or not lines:
        raise RuntimeError(f"{function} failed:\n{completed.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(lines[-1])
    return measured


def pipeline(rows: int, data_dir: Path) -> list[dict[str, Any]]:
    # moto's backends live as long as this process: fresh names for every size.
    data, models, table = (f"bench-{rows}-{kind}" for kind in ("data", "models", "registry"))
    import logging

    import boto3
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from preprocess_memory import dataset_path

    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[union-attr]
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DATA_BUCKET": data,
        "MODEL_BUCKET": models,
        "REGISTRY_TABLE": table,
        "IDEMPOTENCY_TABLE": f"{table}-idempotency",
        "APPROVAL_ANSWERS_TABLE": f"{table}-approval-answers",  # read on the approval path only
        "RUN_LOCK_TABLE": f"{table}-runlock",
        # Required by the functions that publish alerts or start scoring jobs; nothing is sent.
        "ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:bench-alerts",
        "SCORING_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_SERVICE_NAME": "bench",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    session = boto3.Session(region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")
    s3 = session.client("s3", endpoint_url=endpoint)
    for bucket in (data, models):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(TableName=table, **TABLE_DEFINITION)
    dynamodb.create_table(TableName=f"{table}-idempotency", **IDEMPOTENCY_TABLE)
    # The run lock's own table, as the RunLock function's code declares it.
    sys.path.insert(0, str(ROOT / "functions" / "runlock"))
    from mlstack_runlock.lock_table import TABLE_DEFINITION as RUN_LOCK_TABLE

    dynamodb.create_table(TableName=f"{table}-runlock", **RUN_LOCK_TABLE)
    sfn = session.client("stepfunctions", endpoint_url=endpoint)
    machine = sfn.create_state_machine(
        name=f"bench-{rows}",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/bench",
    )["stateMachineArn"]
    environment["STATE_MACHINE_ARN"] = machine

    csv_path = dataset_path(data_dir, rows)
    s3.put_object(Bucket=data, Key=spec_key("bench"), Body=b'{"target": "label"}')
    put = s3.put_object(
        Bucket=data, Key=dataset_key("bench", "data.csv"), Body=csv_path.read_bytes()
    )
    arn = f"arn:aws:states:{REGION}:123456789012:execution:bench:run-1"
    results = []

    def step(function: str, label: str, event: dict[str, Any]) -> Any:
        measured = run(function, event, environment)
        results.append({"function": function, "step": label, **measured})
        print(
            f"{label:<32} peak {measured['peak_rss_mb']:6.0f} MiB  "
            f"import {measured['import_seconds']:5.2f} s  "
            f"handler {measured['handler_seconds']:7.2f} s",
            flush=True,
        )
        return measured["result"]

    step(
        "runlock", "RunLock acquire", {"action": "acquire", "model": "bench", "execution_arn": arn}
    )
    state: dict[str, Any] = {
        "model": "bench",
        "dataset": {
            "bucket": data,
            "key": dataset_key("bench", "data.csv"),
            "version_id": put.get("VersionId"),
            "etag": put["ETag"].strip('"'),
            "size": csv_path.stat().st_size,
        },
        "execution_arn": arn,
        "execution_name": "run-1",
    }
    run_document = step("preprocess", "Preprocess", state)
    trained = [
        step(
            "train",
            f"Train {candidate['candidate_id']}",
            {"run": run_document, "candidate": candidate},
        )
        for candidate in run_document["candidates"]
    ]
    evaluation = step("evaluate", "Evaluate", {"run": run_document, "trained": trained})
    step(
        "register",
        "Register promote",
        {"action": "promote", "run": run_document, "evaluation": evaluation, "execution_arn": arn},
    )
    holdout = s3.get_object(Bucket=models, Key=run_document["splits"]["holdout_key"])["Body"].read()
    reader = csv.DictReader(io.StringIO(holdout.decode()))
    instances = [
        {k: (None if v == "" else float(v) if k.startswith("num_") or k == "count" else v)
         for k, v in row.items() if k != "label"}
        for _, row in zip(range(1000), reader, strict=False)
    ]  # fmt: skip
    event = json.loads((ROOT / "tests/events/apigw_predict.json").read_text())
    event.update(
        path="/models/bench/predict",
        pathParameters={"model": "bench"},
        body=json.dumps({"instances": instances}),
    )
    response = step("predict", "Predict (1,000 rows, cold)", event)
    assert response["statusCode"] == 200, response
    step(
        "trigger",
        "Trigger",
        json.loads((ROOT / "tests/events/eventbridge_s3_object_created.json").read_text()),
    )
    server.stop()
    return results


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "mlstack")
    parser.add_argument("--json", type=Path, help="write all measurements here")
    parser.add_argument(
        "--write", type=Path, help="write the table as a generated page (docs/resources.md)"
    )
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    everything = {}
    for rows in args.rows:
        print(f"--- {rows:,} rows", flush=True)
        everything[rows] = [
            {k: v for k, v in r.items() if k != "result"} for r in pipeline(rows, args.data_dir)
        ]
        if args.json:
            args.json.write_text(json.dumps(everything, indent=1))
    if args.write:
        command = " ".join(["benchmarks/function_resources.py", *sys.argv[1:]])
        args.write.write_text(render(everything, command))


def _function_settings() -> dict[str, tuple[str, str]]:
    """(MemorySize, Timeout) of each function directory, from template.yaml."""
    from mlstack.sam import load_template

    template = load_template(ROOT / "template.yaml")
    defaults = template.get("Globals", {}).get("Function", {})
    settings = {}
    for declared in template["Resources"].values():
        if declared.get("Type") != "AWS::Serverless::Function":
            continue
        properties = declared["Properties"]
        directory = Path(properties["CodeUri"]).name
        memory = properties.get("MemorySize", defaults.get("MemorySize"))
        timeout = properties.get("Timeout", defaults.get("Timeout"))
        settings[directory] = (
            f"`{memory['Ref']}`" if isinstance(memory, dict) else str(memory),
            f"`{timeout['Ref']}`" if isinstance(timeout, dict) else str(timeout),
        )
    return settings


def render(everything: dict[int, list[dict[str, Any]]], command: str) -> str:
    """The measurements as the Markdown page the template's MemorySize and Timeout cite."""
    sizes = list(everything)
    settings = _function_settings()
    lines = [
        "# Memory and time of each function",
        "",
        f"<!-- Generated by `{command}`. Do not edit by hand. -->",
        "",
        "Peak memory is each handler's `VmHWM` in a fresh process (what Lambda reports as Max "
        "Memory Used); times are this machine's, one thread per native pool. MemorySize and "
        "Timeout are template.yaml's.",
        "",
        "| step | " + " | ".join(f"{rows:,} rows" for rows in sizes) + " | MemorySize | Timeout |",
        "|---|" + "---|" * len(sizes) + "---|---|",
    ]
    steps = [r["step"] for r in everything[sizes[0]]]
    for index, step_name in enumerate(steps):
        cells = []
        for rows in sizes:
            r = everything[rows][index]
            cells.append(f"{r['peak_rss_mb']:.0f} MiB, {r['handler_seconds']:.1f} s")
        memory, timeout = settings.get(everything[sizes[0]][index]["function"], ("", ""))
        lines.append(f"| {step_name} | " + " | ".join(cells) + f" | {memory} | {timeout} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
