"""What `mlstack` does with a model name the stack does not know (says so, naming the models, and
touches nothing), and its one exit-code table: each kind of ending exits with its own code."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.main import build_parser, main
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
from tests.helpers.local_cloud import penguin_rows, to_csv

pytestmark = pytest.mark.integration

# Registered without a run (a version number allocated): the registry then knows their names.
KNOWN = ("zebrafish", "zebrafish-watch")
TYPO = "zebrafishh"


def _commands_naming_a_model() -> set[str]:
    """Every subcommand with a MODEL argument (positional or --model), read from the parser."""
    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    return {
        name
        for name, command in subparsers.choices.items()
        if any(action.dest == "model" for action in command._actions)
    }


def _invocations(tmp_path: Path) -> dict[str, list[list[str]]]:
    rows = tmp_path / "rows.csv"
    rows.write_bytes(to_csv(penguin_rows()[:20]))
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,row,species\nabc,0,Adelie\n")
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"instances": [{"island": "Dream"}]}))
    out = str(tmp_path / "out")
    return {
        "train": [["train", str(rows), "--model", TYPO, "--wait"]],
        "score": [
            ["score", TYPO, str(rows), "--wait"],
            ["score", TYPO, str(rows), "--version", "1"],
        ],
        "feedback": [["feedback", TYPO, str(labels)]],
        "monitor": [["monitor", TYPO], ["monitor", TYPO, "--now"]],
        "predict": [["predict", TYPO, str(request)]],
        "explain": [["explain", TYPO, str(request)]],
        "approve": [["approve", TYPO, "1"]],
        "reject": [["reject", TYPO, "1"]],
        "promote": [["promote", TYPO, "1"], ["promote", TYPO, "1", "--force"]],
        "canary": [["canary", TYPO, "1"], ["canary", TYPO, "--off"]],
        "shadow": [["shadow", TYPO, "1"], ["shadow", TYPO, "--off"]],
        "rollback": [["rollback", TYPO]],
        "report": [["report", TYPO, "--out", out], ["report", TYPO, "1", "--out", out]],
        "card": [["card", TYPO, "--out", out], ["card", TYPO, "1", "--out", out]],
        "models": [["models", TYPO]],
        "history": [["history", TYPO]],
    }


def _stored_objects(cloud: LocalCloud) -> dict[str, list[tuple[str, str]]]:
    s3 = cloud.client("s3")
    stored = {}
    for output in ("DataBucketName", "ModelBucketName"):
        listing = s3.list_object_versions(Bucket=cloud.outputs[output])
        stored[output] = sorted(
            (entry["Key"], entry["VersionId"])
            for kind in ("Versions", "DeleteMarkers")
            for entry in listing.get(kind, [])
        )
    return stored


def _executions(cloud: LocalCloud) -> dict[str, list[str]]:
    sfn = cloud.client("stepfunctions")
    return {
        output: sorted(
            e["executionArn"]
            for e in sfn.list_executions(stateMachineArn=cloud.outputs[output])["executions"]
        )
        for output in ("TrainingStateMachineArn", "ScoringStateMachineArn")
    }


@pytest.fixture(scope="module")
def known_models(stack: StackClient) -> list[str]:
    for name in KNOWN:
        stack.registry.allocate_version(name)
    return stack.registry.list_models()


def test_every_command_that_names_a_model_refuses_an_unknown_one_before_touching_anything(
    cloud: LocalCloud,
    known_models: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    invocations = _invocations(tmp_path)
    # `mlstack import` brings a model, new or known, as `train --target` does: it names the
    # models it knows beside a new one (test_import's first import), and goes on.
    assert set(invocations) == _commands_naming_a_model() - {"import"}
    stored, executions = _stored_objects(cloud), _executions(cloud)
    capsys.readouterr()

    for command, argvs in invocations.items():
        for argv in argvs:
            code = main(argv)
            printed = capsys.readouterr()
            # train without --target names the option a new model needs: the call was incomplete.
            assert code == (EXIT_USAGE if command == "train" else EXIT_REFUSED), argv
            assert "Traceback" not in printed.err, argv
            first = printed.err.splitlines()[0]
            assert first.startswith(
                f"mlstack {command}: no model named {TYPO!r}; models: zebrafish, zebrafish-watch"
            ), (argv, printed.err)
            listed = first.split("; models: ")[1].split(". ")[0].split(", ")
            assert sorted(listed) == sorted(known_models), argv
            assert _stored_objects(cloud) == stored, argv
            assert _executions(cloud) == executions, argv
    assert not (tmp_path / "out").exists()
    assert TYPO not in StackClient(cloud.stack_name).registry.list_models()


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
