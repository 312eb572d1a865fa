"""`mlstack local up` serves the stack to other processes, like a real AWS endpoint would."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from mlstack.cli.demo import as_instance
from mlstack.cli.stack import StackClient
from mlstack.localcloud.packaging import ARTIFACT_BUCKET
from mlstack.sam import load_template, project_root
from tests.helpers import ROOT
from tests.helpers.local_cloud import penguin_rows, to_csv

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EarlyRequests(threading.Thread):
    """GET /health on the API port again and again while the local cloud starts."""

    def __init__(self, api_port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{api_port}/health"
        self.answers: list[tuple[int, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    self.answers.append((response.status, response.read().decode()))
            except urllib.error.HTTPError as error:
                self.answers.append((error.code, error.read().decode()))
            except OSError:
                pass  # not listening yet
            time.sleep(0.02)


def start_local_up(port: int, api_port: int, *options: str) -> subprocess.Popen[str]:
    """``mlstack local up`` in another process, with none of this machine's AWS settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "-m", "mlstack.cli", "local", "up", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--api-port", str(api_port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )


@contextlib.contextmanager
def ready_local_up(port: int, api_port: int) -> Iterator[subprocess.Popen[str]]:
    """``start_local_up``, once it has said Ready; stopped afterwards."""
    process = start_local_up(port, api_port)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Ready"):
                break
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Terminate, and kill what a training run in flight keeps alive past the grace period (a
    walkthrough that ends by starting a run leaves one)."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


LOCAL_UP: dict[str, object] = {}
PROJECT_ROOT = project_root()


@pytest.fixture(scope="module")
def local_up() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port, api_port = _free_port(), _free_port()
    early = EarlyRequests(api_port)
    early.start()
    process = start_local_up(port, api_port)
    assert process.stdout is not None
    printed = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        printed.append(line)
        if line.startswith("Ready"):
            break
        if time.monotonic() > deadline:
            break
    early.done.set()
    early.join()
    LOCAL_UP.update(printed=printed, early_answers=early.answers)
    assert any(f":{api_port}/" in line for line in printed), "".join(printed)
    assert any(f":{port}" in line for line in printed), "".join(printed)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop(process)


def test_another_process_trains_and_predicts_through_local_up(
    local_up: tuple[str, subprocess.Popen[str]],
) -> None:
    endpoint, _ = local_up
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    cloudformation = session.client("cloudformation", endpoint_url=endpoint)
    stack = cloudformation.describe_stacks(StackName="mlstack")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert {
        "DataBucketName",
        "ModelBucketName",
        "TrainingStateMachineArn",
        "ApiUrl",
        "RegistryTableName",
        "AlertsTopicArn",
    } <= outputs.keys()

    s3 = session.client("s3", endpoint_url=endpoint)
    rows = penguin_rows()
    s3.put_object(
        Bucket=outputs["DataBucketName"],
        Key="datasets/remote/spec.json",
        Body=json.dumps({"target": "species"}).encode(),
    )
    s3.put_object(
        Bucket=outputs["DataBucketName"], Key="datasets/remote/data.csv", Body=to_csv(rows)
    )

    sfn = session.client("stepfunctions", endpoint_url=endpoint)
    deadline = time.monotonic() + 180
    status = "RUNNING"
    while time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=outputs["TrainingStateMachineArn"])
        statuses = [e["status"] for e in executions["executions"]]
        if statuses and statuses[0] != "RUNNING":
            status = statuses[0]
            break
        time.sleep(0.5)
    assert status == "SUCCEEDED"

    request = urllib.request.Request(
        outputs["ApiUrl"].rstrip("/") + "/models/remote/predict",
        data=json.dumps({"instances": [as_instance(rows[0], "species")]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert response.status == 200
    assert body["model"] == "remote"
    assert body["predictions"] == [rows[0]["species"]]

    with urllib.request.urlopen(outputs["ApiUrl"].rstrip("/") + "/health", timeout=30) as health:
        assert health.status == 200


def test_requests_before_the_stack_exists_get_503_starting(
    local_up: tuple[str, subprocess.Popen[str]],
) -> None:
    answers = LOCAL_UP["early_answers"]
    assert isinstance(answers, list)
    starting = [body for status, body in answers if status == 503]
    assert all(json.loads(body)["error"] == "starting" for body in starting)
    assert {status for status, _ in answers} <= {503, 200}
    printed = "".join(str(line) for line in LOCAL_UP["printed"])  # type: ignore[attr-defined]
    assert "Traceback" not in printed
    # The export line is enough for another shell: endpoint, region and credentials.
    assert "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing" in printed


def _readme_block(starting: str) -> str:
    """The README's bash block whose first line starts with ``starting``."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    [block] = [b for b in blocks if b.startswith(starting)]
    return block


def _run_shell(script: str, cwd: Path, port: int) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, as a user's shell after the README's export line (the test's port)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        PATH=f"{Path(sys.executable).parent}:{environment['PATH']}",
    )
    if (PROJECT_ROOT / ".venv").exists() and not (cwd / ".venv").exists():
        (cwd / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    return subprocess.run(
        ["bash", "-c", "set -euxo pipefail\n" + script],
        check=False,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_with_demo_model_the_readme_examples_run_as_written(tmp_path: Path) -> None:
    """`mlstack local up --with-demo-model`, then the README's HTTP, report and card examples.

    The one change is the ports (free ones, not 3000 and 4566)."""
    port, api_port = _free_port(), _free_port()
    process = start_local_up(port, api_port, "--with-demo-model")
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("Ready") or len(printed) > 200:
                break
        assert any("Model 'penguins' is in production (version 1)" in p for p in printed), printed

        http = _readme_block("API=http://127.0.0.1:3000").replace(":3000", f":{api_port}", 1)
        ran = _run_shell(http, tmp_path, port)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        decoder, text = json.JSONDecoder(), ran.stdout.strip()
        answer, end = decoder.raw_decode(text)  # curl prints the bodies back to back
        model_view, _ = decoder.raw_decode(text[end:].lstrip())
        assert (answer["model"], answer["version"], answer["predictions"]) == (
            "penguins",
            1,
            ["Gentoo"],
        )
        assert model_view["production"]["version"] == 1

        plots = _readme_block(".venv/bin/mlstack report penguins").splitlines()[0]
        card = _readme_block(".venv/bin/mlstack card penguins").splitlines()[0]
        ran = _run_shell(f"{plots}\n{card}", tmp_path, port)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert (tmp_path / "reports/penguins/v1/confusion_matrix.png").exists()
        assert "gate: promote" in (tmp_path / "cards/penguins/v1/card.md").read_text()
    finally:
        stop(process)


def test_the_readme_walkthrough_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command of the README's local walkthrough, in its order, against a fresh local up.

    The one change is the endpoint's port (a free one, not 4566). It runs in a copy of the
    checkout's ``examples/`` so the card it writes lands there; ``.venv`` is linked in."""
    shutil.copytree(PROJECT_ROOT / "examples", tmp_path / "examples")
    port, api_port = _free_port(), _free_port()
    script = _readme_block("export AWS_ENDPOINT_URL=")
    script = script.replace("127.0.0.1:4566", f"127.0.0.1:{port}", 1)
    assert script.count(f":{port}") == 1
    with ready_local_up(port, api_port):
        # The export line, with the test's port, is the script's own first line.
        ran = _run_shell(script, tmp_path, port)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "Traceback" not in ran.stdout + ran.stderr

        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        aws = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        registry = StackClient("mlstack", session=aws).registry
        assert registry.get_alias("churn") == 2  # approved, moved to 1, rolled back to 2
        assert registry.aliases("churn")["canary"] == {"version": 1, "share": 0.1}
        assert registry.aliases("churn")["shadow"] == {"version": 1}
        reasons = [e.get("reason") for e in registry.history("churn") if e["kind"] == "alias"]
        assert "report reviewed" in reasons
        assert "hotfix" in reasons
        assert "production = version 2" in ran.stdout  # approve said where production is
        assert '"predictions"' in ran.stdout
        # The batch job's rows came back: every customer, in the file's order, with production's
        # answer and nothing refused.
        churn = tmp_path / "examples/churn"
        with (
            (churn / "customers.csv").open(newline="") as sent,
            (churn / "scored.csv").open(newline="") as back,
        ):
            customers, scored = list(csv.DictReader(sent)), list(csv.DictReader(back))
        assert [r["customer_id"] for r in scored] == [r["customer_id"] for r in customers]
        assert list(scored[0]) == ["customer_id", "prediction", "probability_no", "probability_yes"]
        assert {r["prediction"] for r in scored} <= {"no", "yes"}
        assert not (churn / "scored.errors.csv").exists()
        assert "scored 200 of 200 rows" in ran.stdout
        card = (tmp_path / "examples/churn/cards/churn/v2/card.md").read_text()
        assert "Customers likely to leave" in card
        assert "gate: promote; approved by" in card


def test_the_readme_monitoring_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """The README's drift-and-feedback walkthrough, as written, against a fresh local up: the
    prediction function's captures reach the Monitor within seconds, the outcomes make quality
    fall, and the check says so and starts a training run."""
    shutil.copytree(PROJECT_ROOT / "examples", tmp_path / "examples")
    port, api_port = _free_port(), _free_port()
    script = _readme_block("cd examples/churn      # last year's model")
    with ready_local_up(port, api_port):
        ran = _run_shell(script, tmp_path, port)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        printed = ran.stdout
        first, second = printed.split("uploaded 200 labels", 1)
        assert "drift of version 1:" in first
        assert "monthly_charges" in first
        assert "quality of production version 1: not enough labels" in first
        assert "quality of production version 1: fallen" in second
        assert "beyond noise: worse than the holdout by more than the margin" in second
        assert "whose upload starts a training run" in second
        assert "training run: arn:aws:states:" in second


def _raw_request(
    url: str, method: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """A request as a browser or a hostile client sends it: headers exactly as given."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.putrequest(method, parts.path or "/", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_local_up_answers_sdks_not_web_pages(local_up: tuple[str, subprocess.Popen[str]]) -> None:
    """moto's server allows any origin by default: a page in the developer's browser could
    drive it. `local up` refuses browser requests, preflights and oversized bodies first."""
    endpoint, _ = local_up
    list_buckets = {"Host": endpoint.removeprefix("http://")}
    status, _, _ = _raw_request(endpoint + "/", "GET", list_buckets)
    assert status == 200

    status, headers, body = _raw_request(
        endpoint + "/", "GET", {**list_buckets, "Origin": "https://evil.example"}
    )
    assert status == 403
    assert "not web pages" in json.loads(body)["message"]
    assert not any(name.lower().startswith("access-control-") for name in headers)

    preflight = {
        **list_buckets,
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "PUT",
    }
    status, headers, _ = _raw_request(endpoint + "/any-bucket/key", "OPTIONS", preflight)
    assert status == 403
    assert not any(name.lower().startswith("access-control-") for name in headers)

    # One MiB past the stack's upload limit and the room the endpoint leaves for the request.
    limit_mib = int(load_template(ROOT / "template.yaml")["Parameters"]["MaxUploadMiB"]["Default"])
    huge = {**list_buckets, "Content-Length": str((limit_mib + 2) * 1024 * 1024)}
    status, _, body = _raw_request(endpoint + "/any-bucket/key", "PUT", huge)
    assert status == 413
    assert "MaxUploadMiB" in json.loads(body)["message"]


def test_local_api_caps_request_bodies(local_up: tuple[str, subprocess.Popen[str]]) -> None:
    endpoint, _ = local_up
    api_url = _outputs(endpoint)["ApiUrl"].rstrip("/")
    headers = {"Content-Type": "application/json", "Content-Length": str(7 * 1024 * 1024)}
    status, _, body = _raw_request(api_url + "/models/any/predict", "POST", headers)
    assert status == 413
    assert "at most 6291456" in json.loads(body)["message"]

    status, _, body = _raw_request(
        api_url + "/models/any/predict", "POST", {"Content-Length": "-5"}
    )
    assert status == 400
    assert "Content-Length" in json.loads(body)["message"]


def test_local_up_runs_only_the_projects_handlers(
    local_up: tuple[str, subprocess.Popen[str]],
) -> None:
    """Lambda's API is open to any local process; a function it creates with a handler outside
    the project (or with new code) is refused by name, and nothing of it is imported or run."""
    endpoint, _ = local_up
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    functions = session.client("lambda", endpoint_url=endpoint)
    stack_function = next(
        f for f in functions.list_functions()["Functions"] if "PredictFunction" in f["FunctionName"]
    )
    bucket, key = ARTIFACT_BUCKET, "code/functions/predict.zip"  # the project's own code
    s3 = session.client("s3", endpoint_url=endpoint)
    s3.put_object(Bucket=bucket, Key="code/elsewhere.zip", Body=_zip({"evil.py": "x = 1\n"}))

    cases = {
        "stdlib-handler": ({"S3Bucket": bucket, "S3Key": key}, "os.getcwd"),
        "parent-module": ({"S3Bucket": bucket, "S3Key": key}, "mlstack_core.settings.forget"),
        "new-code": ({"S3Bucket": bucket, "S3Key": "code/elsewhere.zip"}, "evil.handler"),
    }
    for name, (code_location, handler) in cases.items():
        functions.create_function(
            FunctionName=f"foreign-{name}",
            Runtime="python3.12",
            Role=stack_function["Role"],
            Handler=handler,
            Code=code_location,
        )
        answer = functions.invoke(FunctionName=f"foreign-{name}", Payload=b"{}")
        assert answer.get("FunctionError"), name
        error = json.loads(answer["Payload"].read())
        assert error["errorType"] == "ForeignFunctionCode", (name, error)


def _outputs(endpoint: str) -> dict[str, str]:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    cloudformation = session.client("cloudformation", endpoint_url=endpoint)
    stack = cloudformation.describe_stacks(StackName="mlstack")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def _zip(files: dict[str, str]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()
