"""Batch scoring through the local cloud against a plain script on the same machine.

    .venv/bin/python benchmarks/batch_scoring.py                     # 1,000,000 rows
    .venv/bin/python benchmarks/batch_scoring.py --write docs/batch-scoring.md  # measured block

The file: mixed types (5 numeric and 2 categorical features, an id column, some missing cells),
drawn from the penguins table. The model: a logistic regression trained on penguins through the
local cloud. Side by side, in this process, one thread each:

- the pipeline: upload ``batch/<model>/<job>.csv``; the trigger, the scoring state machine (moto's
  interpreter, the ItemReader, the ItemBatcher, one in-process Lambda per batch), the part files
  and the manifest;
- the plain script: read the CSV with ``csv``, build the ONNX feeds with numpy, ``session.run``
  in chunks, write one CSV with the id, the prediction and the probabilities.

Also measured: the same job with a scoring step that only counts its rows (the local cloud's own
cost), the scoring function's whole invocation for one batch, and the contract's time and peak
Python memory for one batch at several batch sizes (the ItemBatcher's ``MaxItemsPerBatch``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from measured import write_measured

from mlstack_core.storage_keys import batch_file_key, job_manifest_key, job_prefix

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench-batch"


def penguin_rows() -> list[dict[str, str]]:
    body = (resources.files("palmerpenguins") / "data" / "penguins.csv").read_text()
    return list(csv.DictReader(io.StringIO(body)))


def make_file(rows: int, seed: int = 7) -> bytes:
    """``rows`` rows like penguins (without the species), with an id and jittered numbers."""
    source = [{k: v for k, v in r.items() if k != "species"} for r in penguin_rows()]
    rng = random.Random(seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["id", *source[0]]
    writer.writerow(header)
    for i in range(rows):
        row = rng.choice(source)
        out = [f"id{i}"]
        for column in header[1:]:
            value = row[column]
            if value not in ("NA", "") and column.endswith(("_mm", "_g")):
                value = f"{float(value) * (1 + rng.uniform(-0.03, 0.03)):.1f}"
            out.append(value)
        writer.writerow(out)
    return buffer.getvalue().encode()


def plain_script(body: bytes, onnx: bytes, document: dict[str, Any], chunk: int) -> float:
    """What a user would write by hand: csv → numpy → session.run → csv. Seconds."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    numeric, categorical = document["schema"]["numeric"], document["schema"]["categorical"]
    inputs = {i.name for i in session.get_inputs()}
    started = time.perf_counter()
    reader = csv.DictReader(io.StringIO(body.decode()))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    classes = document["schema"].get("classes") or []
    writer.writerow(["id", "prediction", *(f"probability_{c}" for c in classes)])
    rows = list(reader)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        feeds = {}
        if "numeric" in inputs:
            feeds["numeric"] = np.array(
                [
                    [float(r[c]) if r[c] not in ("NA", "") else np.nan for c in numeric]
                    for r in part
                ],
                dtype=np.float32,
            )
        if "categorical" in inputs:
            feeds["categorical"] = np.array(
                [[r[c] if r[c] != "NA" else "" for c in categorical] for r in part], dtype=object
            )
        labels, probabilities = session.run(None, feeds)[:2]
        for r, label, p in zip(part, labels, probabilities, strict=True):
            writer.writerow([r["id"], label, *(f"{x:.6g}" for x in p)])
    return time.perf_counter() - started


def batch_costs(loaded: Any, rows: list[dict[str, str]], sizes: list[int]) -> list[dict[str, Any]]:
    """The scoring contract's time per row (median of 5, one thread: rows per second per vCPU)
    and peak Python memory (a separate run: tracemalloc slows what it watches) for one batch."""
    from mlstack_core.contract.batch import score_rows

    results = []
    for size in sizes:
        batch = rows[:size]
        score_rows(loaded, batch)  # warm
        times = []
        for _ in range(5):
            started = time.perf_counter()
            score_rows(loaded, batch)
            times.append(time.perf_counter() - started)
        seconds = sorted(times)[2]
        tracemalloc.start()
        score_rows(loaded, batch)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results.append(
            {
                "batch": size,
                "us_per_row": round(seconds / size * 1e6, 2),
                "rows_per_second_per_vcpu": round(size / seconds),
                "peak_mib": peak / 2**20,
            }
        )
    return results


def run_job(cloud: Any, stack: Any, body: bytes, job: str) -> tuple[float, dict[str, Any]]:
    """Upload ``batch/<model>/<job>.csv`` and wait for its job: (seconds, execution)."""
    s3 = cloud.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    started = time.perf_counter()
    key = batch_file_key(MODEL, job)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    upload = {"bucket": bucket, "key": key, "version_id": None}
    execution = stack.find_execution(upload, machine="ScoringStateMachineArn")
    result = cloud.wait_for_execution(execution, timeout=3600)
    seconds = time.perf_counter() - started
    assert result["status"] == "SUCCEEDED", result.get("cause")
    return seconds, result


@contextlib.contextmanager
def counting_only() -> Iterator[None]:
    """The scoring function's batch step replaced by one that only counts its rows: what the
    same job costs the local cloud itself (reading, batching, copying, invoking)."""
    sys.path.insert(0, str(ROOT / "functions" / "score"))
    from mlstack_score import app

    def count(job: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
        first = int(items[0]["row"]) if items else 0
        rows = len(items)
        return {
            "first_row": first,
            "rows": rows,
            "scored": rows,
            "refused": 0,
            "part_key": f"{job['prefix']}/parts/{first:012d}.csv",
            "refused_key": None,
        }

    original = app.score_batch
    app.score_batch = count
    try:
        yield
    finally:
        app.score_batch = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlstack.cli.stack import StackClient
    from mlstack.localcloud import LocalCloud, quiet_local_logs
    from mlstack_core.contract import load_model
    from mlstack_core.settings import serving_settings

    quiet_local_logs()
    body = make_file(args.rows)
    with LocalCloud(emit_metrics=False) as cloud:
        stack = StackClient(cloud.stack_name)
        spec = {"target": "species", "candidates": ["logistic_regression"]}
        csv_body = (resources.files("palmerpenguins") / "data" / "penguins.csv").read_bytes()
        upload = stack.upload_dataset(MODEL, csv_body, spec)
        assert cloud.wait_for_execution(stack.find_execution(upload))["status"] == "SUCCEEDED"
        document = stack.registry.get_version(MODEL, 1)
        artifact = document["artifact"]
        s3 = cloud.client("s3")
        onnx = s3.get_object(Bucket=artifact["bucket"], Key=artifact["key"])["Body"].read()

        pipeline, result = run_job(cloud, stack, body, "bench")
        s3 = cloud.client("s3")
        bucket = cloud.outputs["DataBucketName"]
        manifest_key = job_manifest_key(job_prefix(MODEL, "bench"))
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        assert manifest["rows_scored"] == args.rows, manifest
        with counting_only():
            local_cloud_only, _ = run_job(cloud, stack, body, "counting")
        loaded = load_model(onnx, document, serving_settings(), model=MODEL, version=1)
        # The scoring function's whole invocation for one 1,000-row batch (what Lambda bills):
        # the contract, the part file, its S3 put.
        job = json.loads(result["output"])["job"]
        read = list(csv.DictReader(io.StringIO(body.decode())))[:1000]
        event = {
            "action": "score",
            "BatchInput": {"job": job},
            "Items": [{"row": i, "values": r} for i, r in enumerate(read)],
        }
        invocations = []
        for _ in range(7):
            started = time.perf_counter()
            cloud.invoke_function("ScoreFunction", event)
            invocations.append(time.perf_counter() - started)
        batch_seconds = sorted(invocations)[3]

    plain = plain_script(body, onnx, document, 1000)
    rows = list(csv.DictReader(io.StringIO(body.decode())))[:4000]
    costs = batch_costs(loaded, rows, [250, 1000, 4000])
    report = {
        "rows": args.rows,
        "pipeline_seconds": round(pipeline, 2),
        "plain_seconds": round(plain, 2),
        "pipeline_over_plain": round(pipeline / plain, 2),
        "pipeline_rows_per_second": round(args.rows / pipeline),
        "local_cloud_only_seconds": round(local_cloud_only, 2),
        "local_cloud_only_over_plain": round(local_cloud_only / plain, 2),
        "plain_rows_per_second": round(args.rows / plain),
        "parts": len(manifest["parts"]),
        "function_seconds_per_1000_rows": round(batch_seconds, 4),
        "function_over_plain": round(batch_seconds / 1000 / (plain / args.rows), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "batches": costs,
    }
    print(json.dumps(report, indent=2))
    if args.write:
        write_measured(args.write, markdown(report, " ".join(sys.argv[1:])), "batch_scoring.py")


def markdown(report: dict[str, Any], arguments: str) -> str:
    rows = report["rows"]
    plain_us = report["plain_seconds"] / rows * 1e6
    lines = [
        f"`python benchmarks/batch_scoring.py {arguments}`".replace("  ", " "),
        "on this project's machine (2 cores, shared; one thread each).",
        "",
        "| | seconds | rows per second | against the plain script |",
        "|---|---:|---:|---:|",
        f"| the pipeline in the local cloud ({rows:,} rows, {report['parts']} parts) | "
        f"{report['pipeline_seconds']} | {report['pipeline_rows_per_second']:,} | "
        f"{report['pipeline_over_plain']}x |",
        f"| the same job with a scoring step that only counts its rows (the local cloud's own "
        f"cost) | {report['local_cloud_only_seconds']} | "
        f"{round(rows / report['local_cloud_only_seconds']):,} | "
        f"{report['local_cloud_only_over_plain']}x |",
        f"| a plain script (csv, numpy, session.run, csv) | {report['plain_seconds']} | "
        f"{report['plain_rows_per_second']:,} | 1x |",
        "",
        f"The scoring function's whole invocation for one 1,000-row batch (the contract, the "
        f"part file and its S3 put; median of 7): {report['function_seconds_per_1000_rows']} s, "
        f"**{report['function_over_plain']}x** the plain script's {plain_us:.1f} µs per row. "
        f"Peak resident memory of the benchmark process: {report['peak_rss_mib']:,} MiB.",
        "",
        "One batch through the scoring contract (`score_rows`), by batch size (the ItemBatcher's "
        "`MaxItemsPerBatch`): time per row (median of 5), rows per second on one vCPU, peak "
        "Python memory (tracemalloc, a separate run):",
        "",
        "| batch rows | µs per row | rows per second per vCPU | peak MiB |",
        "|---:|---:|---:|---:|",
        *(
            f"| {b['batch']} | {b['us_per_row']} | {b['rows_per_second_per_vcpu']:,} | "
            f"{b['peak_mib']:.1f} |"
            for b in report["batches"]
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
