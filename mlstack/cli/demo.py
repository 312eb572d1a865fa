"""``mlstack demo``: the whole loop once, in this process, on the Palmer penguins dataset.

The dataset ships inside the installed ``palmerpenguins`` package: 344 penguins, numeric
measurements and categorical island/sex, with missing values.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from importlib import resources
from typing import Any

from mlstack.cli.progress import follow_execution
from mlstack.cli.stack import StackClient
from mlstack.cli.views import failure_summary, format_models
from mlstack.localcloud import LocalCloud, quiet_local_logs

MODEL = "penguins"
TARGET = "species"
SPEC: dict[str, Any] = {"target": TARGET, "metric": "accuracy", "threshold": 0.9}


def penguins_csv() -> bytes:
    return resources.files("palmerpenguins").joinpath("data/penguins.csv").read_bytes()


def csv_records(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def as_instance(row: dict[str, str], target: str) -> dict[str, Any]:
    """A CSV row as a client would send it: numbers as numbers, missing as null."""
    instance: dict[str, Any] = {}
    for column, value in row.items():
        if column == target:
            continue
        if value in ("", "NA"):
            instance[column] = None
        else:
            try:
                instance[column] = float(value) if "." in value else int(value)
            except ValueError:
                instance[column] = value
    return instance


def _shuffled_labels(data: bytes, target: str, seed: int = 7) -> bytes:
    """The same file with its labels shuffled: a challenger that must not reach production."""
    rows = csv_records(data)
    labels = [row[target] for row in rows]
    random.Random(seed).shuffle(labels)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()), lineterminator="\n")
    writer.writeheader()
    for row, label in zip(rows, labels, strict=True):
        writer.writerow({**row, target: label})
    return out.getvalue().encode()


def _subscribe_alerts(cloud: LocalCloud) -> str:
    sqs = cloud.client("sqs")
    queue_url: str = sqs.create_queue(QueueName="mlstack-demo-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    cloud.client("sns").subscribe(
        TopicArn=cloud.outputs["AlertsTopicArn"],
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
    )
    return queue_url


def _print_alerts(cloud: LocalCloud, queue_url: str) -> None:
    messages = cloud.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    for message in messages.get("Messages", []):
        envelope = json.loads(message["Body"])
        attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
        print(f"  alert on AlertsTopic: {envelope.get('Subject')} {attributes}")


def _run(
    client: StackClient,
    cloud: LocalCloud,
    title: str,
    data: bytes,
    file_name: str,
    spec: dict[str, Any] | None,
) -> dict[str, Any]:
    print(f"\n{title}")
    upload = client.upload_dataset(MODEL, data, spec, file_name=file_name)
    print(f"  uploaded s3://{upload['bucket']}/{upload['key']} -> EventBridge -> trigger")
    execution_arn = client.find_execution(upload)
    print(f"  execution {execution_arn.rsplit(':', 1)[-1]} running statemachine/training.asl.json")
    description = follow_execution(client.session.client("stepfunctions"), execution_arn)
    outcome = description["status"]
    if description.get("error"):
        outcome += f" with {failure_summary(description)}"
    print(f"  run {outcome}")
    return description


def run_demo() -> int:
    quiet_local_logs()
    started = time.perf_counter()
    print("mlstack demo: the whole loop on the local cloud (moto), no AWS account, no Docker\n")
    print("Deploying template.yaml (aws-sam-translator -> moto CloudFormation)...")
    with LocalCloud(parameters={"LogLevel": "ERROR"}, emit_metrics=False) as cloud:
        print(f"  stack {cloud.stack_name} ready in {time.perf_counter() - started:.1f}s; outputs:")
        for name, value in cloud.outputs.items():
            print(f"    {name:24} {value}")
        client = StackClient(cloud.stack_name)
        alerts = _subscribe_alerts(cloud)
        data = penguins_csv()
        rows = csv_records(data)

        first = _run(
            client,
            cloud,
            f"1. Train '{MODEL}' on palmerpenguins ({len(rows)} rows, "
            "numeric + categorical, with missing values)",
            data,
            "penguins.csv",
            SPEC,
        )
        if first["status"] != "SUCCEEDED":
            return 1
        production = client.registry.get_alias(MODEL)

        print(f"\n2. Predict over HTTP: POST {cloud.api_url}models/{MODEL}/predict")
        sample = [rows[i] for i in (0, 3, 120, 200, 300)]  # row 3 has every measurement missing
        response = client.predict(MODEL, [as_instance(row, TARGET) for row in sample])
        if response.status != 200:
            print(f"  HTTP {response.status}: {response.body}")
            return 1
        body = response.body
        print(f"  HTTP {response.status}, model {body['model']} version {body['version']}")
        for row, predicted, probabilities in zip(
            sample, body["predictions"], body["probabilities"], strict=True
        ):
            confidence = max(probabilities)
            print(
                f"    {row['island']:>9} {row['sex'] or 'NA':>6} bill {row['bill_length_mm']:>4}mm "
                f"-> {predicted:<9} (p={confidence:.2f}; actual {row[TARGET]})"
            )

        _run(
            client,
            cloud,
            "3. Upload a worse dataset (labels shuffled): the gate must reject it",
            _shuffled_labels(data, TARGET),
            "penguins-shuffled.csv",
            None,
        )
        after = client.registry.get_alias(MODEL)
        print(f"  production still version {after} (was {production})")
        _print_alerts(cloud, alerts)

        _run(
            client,
            cloud,
            "4. Upload a file without the target column: the run must fail by name",
            b"island,bill_length_mm\nDream,40.1\nBiscoe,47.0\n",
            "broken.csv",
            None,
        )
        print(f"  production still version {client.registry.get_alias(MODEL)}")
        _print_alerts(cloud, alerts)

        print("\n5. Registry (mlstack models penguins):")
        print("  " + format_models(client, MODEL).replace("\n", "\n  ").rstrip())
        ok = after == production
    print(f"\nDemo finished in {time.perf_counter() - started:.1f}s")
    return 0 if ok else 1
