"""`mlstack`'s one exit-code table: each kind of ending exits with its own code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core.errors import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_RUN_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

# Registered without a run (a version number allocated): the registry then knows their names.
KNOWN = ("zebrafish", "zebrafish-watch")


@pytest.fixture(scope="module")
def known_models(stack: StackClient) -> list[str]:
    for name in KNOWN:
        stack.registry.allocate_version(name)
    return stack.registry.list_models()


def test_each_kind_of_ending_has_its_own_exit_code(
    cloud: LocalCloud,
    known_models: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Success.
    assert main(["models"]) == EXIT_OK
    # A usage error: argparse's own, and a file that is not there.
    with pytest.raises(SystemExit) as usage:
        main(["promote", "zebrafish"])
    assert usage.value.code == EXIT_USAGE
    assert main(["score", "zebrafish", str(tmp_path / "missing.csv")]) == EXIT_USAGE
    capsys.readouterr()
    # Refused by the stack: a move it does not allow (printed as every other failure).
    assert main(["rollback", "zebrafish"]) == EXIT_REFUSED
    assert capsys.readouterr().err.startswith("mlstack rollback: 'zebrafish' has no earlier")
    assert main(["promote", "zebrafish", "9"]) == EXIT_REFUSED
    assert capsys.readouterr().err.startswith("mlstack promote: model 'zebrafish' has no version 9")
    # A run that ended FAILED.
    data = tmp_path / "broken.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    argv = ["train", str(data), "--model", "zebrafish-broken", "--target", "label", "--wait"]
    assert main(argv) == EXIT_RUN_FAILED
    assert "run FAILED with TargetColumnMissing" in capsys.readouterr().out


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("argv", [["models"], ["card", "zebrafish"], ["rollback", "zebrafish"]])
def test_a_stack_that_cannot_be_reached_has_its_own_exit_code(argv: list[str]) -> None:
    """Run as a user runs it (its own process, so the local cloud's in-process mock is not in
    the way), with AWS_ENDPOINT_URL at a port where nothing listens."""
    environment: dict[str, Any] = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "1",
    }
    ran = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", *argv],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == EXIT_UNREACHABLE, ran.stderr
    assert "start the local cloud with `mlstack local up`" in ran.stderr
    assert "Traceback" not in ran.stderr
