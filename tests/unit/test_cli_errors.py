"""Every failure a user can cause ends with a sentence and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from moto import mock_aws

from mlstack.cli.main import main
from mlstack_core.errors import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE

pytestmark = pytest.mark.unit


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No region, credentials, profile or endpoint from this machine; one attempt per call."""
    for name in (
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_no_region(no_aws_configuration: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["models", "churn"], capsys)
    assert code == EXIT_UNREACHABLE
    assert "no AWS region is set: export AWS_DEFAULT_REGION" in err


def test_no_credentials(
    no_aws_configuration: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    code, err = _run(["models", "churn"], capsys)
    assert code == EXIT_UNREACHABLE
    assert "no AWS credentials were found" in err
    assert "AWS_ACCESS_KEY_ID=testing" in err


def test_the_local_cloud_is_not_running(
    no_aws_configuration: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    code, err = _run(["models", "churn"], capsys)
    assert code == EXIT_UNREACHABLE
    assert "start the local cloud with `mlstack local up`" in err


def test_a_stack_that_does_not_exist(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_aws():
        code, err = _run(["--stack", "nope", "models", "churn"], capsys)
    assert code == EXIT_UNREACHABLE
    assert "no stack named 'nope' in region us-east-1: check --stack and AWS_DEFAULT_REGION" in err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "no such file"),
        ("{not json", "is not valid JSON"),
        ('"a string"', "must hold a list of records"),
    ],
)
def test_predict_with_a_bad_file(
    tmp_path: Path, content: str | None, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rows.json"
    if content is not None:
        path.write_text(content)
    with mock_aws():
        code, err = _run(["predict", "churn", str(path)], capsys)
    assert code == EXIT_USAGE
    assert needle in err


@pytest.mark.parametrize("option", ["--port", "--api-port"])
def test_local_up_on_a_busy_port(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = "--api-port" if option == "--port" else "--port"
        code, err = _run(["local", "up", option, str(port), other, str(_free_port())], capsys)
    assert code == EXIT_USAGE
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert f"choose another with {option}" in err


def test_debug_shows_the_traceback(
    no_aws_configuration: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import NoRegionError

    with pytest.raises(NoRegionError):
        main(["--debug", "models", "churn"])


def test_an_unexpected_error_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only failures a user can cause are turned into sentences; a bug still shows itself."""
    from mlstack.cli import main as cli

    def broken(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_models", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["models", "churn"])


def test_a_key_error_is_a_bug_not_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyError is a LookupError, but not one a user causes: it shows itself."""
    from mlstack.cli import report

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("evaluation")

    monkeypatch.setattr(report, "write_report", broken)
    with pytest.raises(KeyError):
        main(["report", "churn"])


def test_the_stack_s_named_errors_are_sentences_with_their_class_s_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack.cli import main as cli
    from mlstack_core.errors import ModelNotFound

    def missing(args: object) -> int:
        raise ModelNotFound("model 'churn' has no version 7")

    monkeypatch.setattr(cli, "cmd_models", missing)
    code, err = _run(["models", "churn"], capsys)
    assert code == ModelNotFound.exit_code == EXIT_REFUSED
    assert err.strip() == "mlstack models: model 'churn' has no version 7"


def test_an_unknown_model_is_named_with_the_closest_models_first() -> None:
    from mlstack.cli.errors import unknown_model

    models = ["churn-watch", "iris", "churn"]
    assert unknown_model("churnn", models) == (
        "no model named 'churnn'; models: churn, churn-watch, iris"
    )
    assert (
        unknown_model("wine", models) == "no model named 'wine'; models: churn, churn-watch, iris"
    )
    assert unknown_model("churn", []) == "no model named 'churn'; no models are registered yet"


def test_help_ends_with_the_exit_code_table(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["--help"])
    assert ended.value.code == 0
    printed = capsys.readouterr().out
    for line in (
        "exit codes:",
        "  0  success",
        "  1  the training run or batch job followed with --wait ended FAILED",
        "  2  usage error",
        "  3  refused by the stack",
        "  4  the stack cannot be reached",
    ):
        assert line in printed, printed


def test_the_readme_states_the_same_exit_code_table() -> None:
    from mlstack_core.errors import EXIT_OK, EXIT_RUN_FAILED
    from tests.helpers import ROOT

    section = (ROOT / "README.md").read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code, meaning in (
        (EXIT_OK, "success"),
        (EXIT_RUN_FAILED, "the run failed"),
        (EXIT_USAGE, "usage error"),
        (EXIT_REFUSED, "refused by the stack"),
        (EXIT_UNREACHABLE, "the stack cannot be reached"),
    ):
        assert f"\n| {code} | {meaning}" in section, (code, meaning)
