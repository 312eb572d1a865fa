"""What ground-truth capture costs a prediction request, side by side with capture off.

    .venv/bin/python benchmarks/capture.py                      # prints the table
    .venv/bin/python benchmarks/capture.py --write docs/capture.md

One logistic regression (benchmarks/serving.py's data and training) is registered twice in an
in-process moto registry: ``capture-off`` without ``quality.capture`` in its spec and
``capture-on`` with it. One prediction handler (``mlstack_predict.app.handler``, as deployed)
serves both, interleaved
(serving.py's ``interleaved``), at 1 and 100 rows per request, with every request recorded
and with the template's default share (0.1). The flush interval is 1 s, so
the timings include the writes of the captures to S3 (moto), spread over the requests as on AWS
they are spread over 300 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["CAPTURE_SAMPLE_RATE"] = "1"
os.environ["DRIFT_FLUSH_SECONDS"] = "1"

import serving

ROOT = serving.ROOT
BATCHES = (1, 100)
RATES = (1.0, 0.1)  # every request; the template's CaptureSampleRate default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per timing")
    parser.add_argument("--write", type=Path, help="write the table to this Markdown file")
    args = parser.parse_args(argv)

    import boto3
    from moto import mock_aws

    from mlstack_core.registry import Registry

    records, matrix, labels = serving.make_data(serving.TRAIN_ROWS + max(BATCHES), seed=7)
    family = next(f for f in serving.families() if f.name == "logistic_regression")
    serving.train(family, matrix[: serving.TRAIN_ROWS], labels[: serving.TRAIN_ROWS])
    test = records[serving.TRAIN_ROWS :]
    rows = []
    with mock_aws():
        s3 = boto3.client("s3")
        dynamodb = boto3.resource("dynamodb")
        serving.create_resources(s3, dynamodb)
        registry = Registry(os.environ["REGISTRY_TABLE"], dynamodb)
        for model, capture in (("capture-off", False), ("capture-on", True)):
            serving.publish(s3, registry, model, family)
            _respec(registry, model, registry.get_version(model, 1), capture)
        app = serving.load_app()
        from mlstack_predict import predictor

        predictor.reset_predictor()
        context = serving.Context()
        recorder = predictor.get_predictor().capture
        for rate in RATES:
            recorder.sample_rate = rate
            for n in BATCHES:
                body = json.dumps({"instances": test[:n]})
                events = {m: serving.api_event(m, body) for m in ("capture-off", "capture-on")}
                with serving.stdout_to_devnull():
                    for event in events.values():
                        assert app.handler(event, context)["statusCode"] == 200
                    times = serving.interleaved(
                        {m: (lambda e=e: app.handler(e, context)) for m, e in events.items()},
                        args.budget,
                    )
                rows.append(
                    {
                        "rate": rate,
                        "batch": n,
                        "off_ms": times["capture-off"] * 1000,
                        "on_ms": times["capture-on"] * 1000,
                        "on_over_off": times["capture-on"] / times["capture-off"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        assert predictor.get_predictor().monitoring.wait(30), "the writes are done"
        written = s3.list_objects_v2(
            Bucket=os.environ["MODEL_BUCKET"], Prefix="monitoring/capture-on/"
        ).get("KeyCount", 0)
        assert written > 0, "the captures were written"
        assert predictor.get_predictor().capture.errors == 0
    text = markdown(rows, " ".join(sys.argv[1:]))
    print(text)
    if args.write:
        args.write.write_text(text)
    return 0


def _respec(registry: Any, model: str, document: dict[str, Any], capture: bool) -> None:
    """The version as a model trained with (or without) ``quality.capture`` would have it."""
    from mlstack_core.registry_keys import model_pk, version_sk

    respecified = {**document, "spec": {"quality": {"capture": capture}}}
    registry._table.update_item(
        Key={"pk": model_pk(model), "sk": version_sk(1)},
        UpdateExpression="SET doc = :doc",
        ExpressionAttributeValues={":doc": json.dumps(respecified, default=str)},
    )


def markdown(rows: list[dict[str, Any]], arguments: str) -> str:
    lines = [
        "# Ground-truth capture: what it costs a request",
        "",
        f"`python benchmarks/capture.py {arguments}`".replace(" `", "`"),
        "on this project's machine (2 cores, shared). The prediction handler, as deployed, serving",
        "a model with capture off and one with capture on (captures written to S3 every",
        "second), interleaved in one process; medians. Sample rate 1 records every request;",
        "0.1 is the template's `CaptureSampleRate` default.",
        "",
        "| sample rate | rows per request | capture off, ms | capture on, ms | on / off |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {r['rate']} | {r['batch']} | {r['off_ms']:.3f} | {r['on_ms']:.3f} | "
            f"{r['on_over_off']:.2f} |"
            for r in rows
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
