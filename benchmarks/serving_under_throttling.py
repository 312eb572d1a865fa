"""Prediction latency while the registry is throttled, side by side with a healthy registry.

    .venv/bin/python benchmarks/serving_under_throttling.py               # prints the table
    .venv/bin/python benchmarks/serving_under_throttling.py --seconds 5   # shorter

One logistic regression (benchmarks/serving.py's data and training) in an in-process moto
registry, served by the prediction handler (``mlstack_predict.app.handler``, as deployed) to one
client sending single-row requests at ``--rate`` per second (a request that finds the client
behind schedule is sent at once) for ``--seconds`` per case, with ``ALIAS_TTL_SECONDS=1`` so the
aliases fall due for a refresh every second:

- ``healthy``: every registry read answers;
- ``throttled``: every DynamoDB call of the prediction function is answered with
  ``ThrottlingException`` (the local cloud's fault injection, ``mlstack.localcloud.faults``),
  through botocore's standard retries (3 attempts, as ``awshttp`` makes); the last known aliases
  serve, and the registry is read again after ``ALIAS_ERROR_TTL_SECONDS`` (5);
- ``throttled, no error TTL``: the same with ``ALIAS_ERROR_TTL_SECONDS=0``, which is how the
  function behaved before failed reads were cached: every request once the aliases are due
  reads the registry, retries included.

Every request is timed alone (the handler call); p50, p99 and the largest are reported, with the
number of registry reads the function attempted (Query calls, before retries).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving

os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"  # one warning per failed read is not the point here
os.environ["AWS_RETRY_MODE"] = "standard"
os.environ["AWS_MAX_ATTEMPTS"] = "3"
os.environ["ALIAS_TTL_SECONDS"] = "1"
os.environ["DRIFT_SAMPLING"] = "off"

MODEL = "throttled"
CASES = (
    ("healthy", False, "5"),
    ("throttled", True, "5"),
    ("throttled, no error TTL", True, "0"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    args = parser.parse_args(argv)

    import boto3
    from moto import mock_aws

    from mlstack.localcloud.faults import Fault, FaultPlan
    from mlstack_core.registry import Registry
    from mlstack_core.settings import forget

    records, matrix, labels = serving.make_data(serving.TRAIN_ROWS + 1, seed=7)
    family = next(f for f in serving.families() if f.name == "logistic_regression")
    serving.train(family, matrix[: serving.TRAIN_ROWS], labels[: serving.TRAIN_ROWS])
    event = serving.api_event(MODEL, json.dumps({"instances": records[-1:]}))
    rows = []
    with mock_aws():
        s3 = boto3.client("s3")
        dynamodb = boto3.resource("dynamodb")
        serving.create_resources(s3, dynamodb)
        registry = Registry(os.environ["REGISTRY_TABLE"], dynamodb)
        serving.publish(s3, registry, MODEL, family)
        app = serving.load_app()
        from mlstack_predict import predictor

        context = serving.Context()
        for name, throttled, error_ttl in CASES:
            os.environ["ALIAS_ERROR_TTL_SECONDS"] = error_ttl
            forget()
            predictor.reset_predictor()
            with serving.stdout_to_devnull():
                assert app.handler(event, context)["statusCode"] == 200  # aliases, session
            client = predictor.get_predictor().registry._table.meta.client  # type: ignore[union-attr]
            reads = [0]
            client.meta.events.register(
                "before-call.dynamodb.Query",
                lambda reads=reads, **_: reads.__setitem__(0, reads[0] + 1),
            )
            plan = FaultPlan()
            client.meta.events.register_first("before-send.dynamodb", plan.before_send)
            client.meta.events.register("response-received", plan.response_received)
            if throttled:
                plan.arm(
                    Fault(
                        "PredictFunction",
                        "aws_error",
                        aws_service="dynamodb",
                        aws_error="ThrottlingException",
                        aws_failures=10**9,
                    )
                )
            latencies = []
            interval = 1 / args.rate
            deadline = time.perf_counter() + args.seconds
            slot = time.perf_counter()
            with serving.stdout_to_devnull():
                while slot < deadline:
                    time.sleep(max(0.0, slot - time.perf_counter()))
                    started = time.perf_counter()
                    slot = max(slot + interval, started)
                    response = app.handler(event, context)
                    latencies.append(time.perf_counter() - started)
                    assert response["statusCode"] == 200, response
            plan.arm(None)
            ms = np.asarray(latencies) * 1000
            rows.append(
                {
                    "case": name,
                    "error_ttl_s": float(error_ttl),
                    "requests": len(latencies),
                    "registry_reads": reads[0],
                    "throttled_answers": plan.aws_errors_answered,
                    "p50_ms": float(np.percentile(ms, 50)),
                    "p99_ms": float(np.percentile(ms, 99)),
                    "max_ms": float(ms.max()),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows, " ".join(sys.argv[1:] if argv is None else argv)))
    return 0


def markdown(rows: list[dict[str, Any]], arguments: str) -> str:
    healthy = rows[0]
    lines = [
        f"`python benchmarks/serving_under_throttling.py {arguments}`".replace(" `", "`"),
        "",
        "| case | `ALIAS_ERROR_TTL_SECONDS` | requests | registry reads | p50, ms | p99, ms "
        "| largest, ms | p99 / healthy p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['case']} | {r['error_ttl_s']:g} | {r['requests']} | {r['registry_reads']} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} | "
            f"{r['p99_ms'] / healthy['p99_ms']:.2f} |"
            for r in rows
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
