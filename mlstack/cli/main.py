"""``mlstack``: the command line on the user's machine.

Commands act on a stack by name; boto3 talks to AWS, or to the local cloud when AWS_ENDPOINT_URL
is set (as printed by ``mlstack local up``)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from mlstack.cli import help as command_help
from mlstack.cli.errors import (
    EXIT_HELP,
    CommandError,
    RunFailed,
    debugging,
    exit_code,
    explain,
    require_model,
    unknown_model,
)
from mlstack.cli.explain import format_explanations
from mlstack.cli.help import add_command
from mlstack.cli.progress import follow_execution
from mlstack.cli.stack import StackClient
from mlstack.cli.views import failure_summary, format_history, format_models, format_move
from mlstack_core.errors import EXIT_OK, EXIT_REFUSED, EXIT_RUN_FAILED
from mlstack_core.storage_keys import job_prefix, model_name_problem


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def cmd_local_up(args: argparse.Namespace) -> int:
    from mlstack.localcloud import REGION, LocalCloud, quiet_local_logs

    quiet_local_logs()
    for port, option in ((args.port, "--port"), (args.api_port, "--api-port")):
        if port and not _port_free(args.host, port):
            raise CommandError(
                f"port {port} on {args.host} is in use (another `mlstack local up`?): stop it, "
                f"or choose another with {option}"
            )
    with LocalCloud(
        host=args.host,
        moto_port=args.port,
        api_port=args.api_port,
        stack_name=args.stack,
        parameters={"LogLevel": args.log_level},
    ) as cloud:
        print(f"AWS endpoint (moto): {cloud.endpoint_url}")
        print(
            f"  export AWS_ENDPOINT_URL={cloud.endpoint_url} AWS_DEFAULT_REGION={REGION} "
            "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
        )
        print(f"HTTP API:            {cloud.api_url}")
        print(f"Stack {cloud.stack_name} outputs:")
        for name, value in cloud.outputs.items():
            print(f"  {name:24} {value}")
        if args.with_demo_model:
            _train_demo_model(cloud)
        print("Ready. Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def _train_demo_model(cloud: Any) -> None:
    """Model 'penguins' in production, so the README's examples run against a fresh stack."""
    from mlstack.cli.demo import penguins_csv

    client = StackClient(cloud.stack_name)
    upload = client.upload_dataset("penguins", penguins_csv(), {"target": "species"}, "data.csv")
    print("Training model 'penguins' (palmerpenguins) ...", flush=True)
    result = cloud.wait_for_execution(client.find_execution(upload))
    if result["status"] != "SUCCEEDED":
        raise RunFailed(f"the demo model did not train: {failure_summary(result)}")
    print(f"Model 'penguins' is in production (version {client.registry.get_alias('penguins')})")


def cmd_demo(args: argparse.Namespace) -> int:
    from mlstack.cli.demo import run_demo

    return run_demo()


def cmd_train(args: argparse.Namespace) -> int:
    problem = model_name_problem(args.model)
    if problem:
        raise CommandError(problem)
    csv_path = Path(args.csv)
    if not csv_path.is_file():
        raise CommandError(f"no such file: {csv_path}")
    client = StackClient(args.stack)
    spec: dict[str, Any] | None = None
    if args.spec:
        try:
            spec = json.loads(Path(args.spec).read_text())
        except json.JSONDecodeError as error:
            raise CommandError(f"{args.spec} is not valid JSON: {error}") from error
    if args.target:
        spec = {**(spec or {}), "target": args.target}
    if spec is None:
        stored = client.stored_spec(args.model)
        if stored is None:
            # Without a spec the name must be a model's: a new one needs its target named.
            known = client.registry.list_models()
            typo = f"{unknown_model(args.model, known)}. " if args.model not in known else ""
            raise CommandError(
                f"{typo}{args.model!r} has no spec yet: name the column to predict with "
                "--target COLUMN (or give --spec spec.json)"
            )
        print(f"using the spec stored for {args.model!r}: {json.dumps(stored)}")
    upload = client.upload_dataset(args.model, csv_path, spec)
    return _follow_run(client, upload, "training run", args.wait)


def _follow_run(client: StackClient, upload: dict[str, Any], what: str, wait: bool) -> int:
    """The run an upload started, named; with ``wait``, followed step by step to its end."""
    print(f"uploaded s3://{upload['bucket']}/{upload['key']} (version {upload['version_id']})")
    execution_arn = client.find_execution(upload)
    print(f"{what}: {execution_arn}")
    if not wait:
        return 0
    description = follow_execution(
        client.session.client("stepfunctions"),
        execution_arn,
        pending_version=client.pending_version,
    )
    if description.get("awaiting_approval"):
        return EXIT_OK
    print(f"run {description['status']}{_failure(description)}")
    return EXIT_OK if description["status"] == "SUCCEEDED" else EXIT_RUN_FAILED


def _read_spec_file(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CommandError(f"{path} is not a readable JSON spec: {error}") from error
    if not isinstance(spec, dict):
        raise CommandError(f"{path} must hold a JSON object")
    return spec


def _caller(client: StackClient) -> str | None:
    """Who is importing, as the credentials say (recorded in the manifest; the stack also takes
    the S3 event's requester)."""
    try:
        arn: str = client.session.client("sts").get_caller_identity()["Arn"]
    except Exception:  # no STS in reach: the upload's event still names the requester
        return None
    return arn


# What ``mlstack import`` imports on the user's machine (the ``import`` extra).
IMPORT_NEEDS = ("numpy", "pandas", "sklearn", "skl2onnx", "onnx", "onnxmltools", "onnxruntime")


def cmd_import(args: argparse.Namespace) -> int:
    # The base install carries none of the converters: say which extra brings them.
    missing = [name for name in IMPORT_NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise CommandError(
            f"mlstack import converts models on this machine and needs {', '.join(missing)}: "
            "pip install 'mlstack[import]'"
        )
    from mlstack.cli.importing import prepare_import, upload_import

    problem = model_name_problem(args.model)
    if problem:
        raise CommandError(problem)
    # Everything on this machine first: a model that cannot be carried is refused offline.
    prepared = prepare_import(
        args.model,
        Path(args.file),
        Path(args.holdout),
        args.target,
        train_sample=Path(args.train_sample) if args.train_sample else None,
        spec=_read_spec_file(args.spec),
    )
    client = StackClient(args.stack)
    known = client.registry.list_models()
    if args.model not in known:  # a new model, or a typo: say which names the stack knows
        print(f"{unknown_model(args.model, known)}: importing a new model")
    prepared.manifest["uploaded_by"] = _caller(client)
    source = prepared.manifest["source"]
    print(f"converted {Path(args.file).name} ({source}) to ONNX and answered the holdout with it")
    if prepared.dropped_rows:
        print(f"left out {prepared.dropped_rows} holdout row(s) without {args.target!r}")
    upload = upload_import(
        client.session.client("s3"), client.outputs["DataBucketName"], args.model, prepared
    )
    return _follow_run(client, upload, "import run", args.wait)


def cmd_score(args: argparse.Namespace) -> int:
    from mlstack.cli.batch import (
        data_rows,
        download_output,
        follow_job,
        manifest_summary,
        read_manifest,
        upload_batch,
    )

    path = Path(args.csv)
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    client = StackClient(args.stack)
    keep = [c.strip() for c in args.keep.split(",") if c.strip()] if args.keep else None
    upload = upload_batch(
        client,
        args.model,
        path,
        job=args.job,
        version=args.version,
        keep=keep,
        max_refused_share=args.max_refused_share,
        delimiter=args.delimiter,
        explain=args.explain,
    )
    print(f"uploaded s3://{upload['bucket']}/{upload['key']} (version {upload['version_id']})")
    execution_arn = client.find_execution(upload, machine="ScoringStateMachineArn")
    print(f"scoring job: {execution_arn}")
    if not (args.wait or args.output):
        return 0
    prefix = job_prefix(args.model, upload["job"])
    description = follow_job(client, execution_arn, prefix, data_rows(path))
    manifest = read_manifest(client, upload["bucket"], prefix, upload["version_id"])
    if description["status"] != "SUCCEEDED":
        print(f"job {description['status']}{_failure(description)}")
    elif manifest is not None:
        print(manifest_summary(manifest, upload["bucket"]))
    if args.output and manifest is not None:
        # Also from a job that refused too many rows: its rows and errors.csv are kept.
        for written in download_output(client, manifest, upload["bucket"], Path(args.output)):
            print(f"wrote {written}")
    return EXIT_OK if description["status"] == "SUCCEEDED" else EXIT_RUN_FAILED


def _failure(description: dict[str, Any]) -> str:
    return f" with {failure_summary(description)}" if description.get("error") else ""


def cmd_feedback(args: argparse.Namespace) -> int:
    from mlstack.cli.monitoring import upload_feedback

    client = StackClient(args.stack)
    require_model(client.registry, args.model)
    uploaded = upload_feedback(client, args.model, Path(args.csv))
    print(
        f"uploaded {uploaded['rows']} labels to s3://{uploaded['bucket']}/{uploaded['key']}; the "
        f"next check joins them (mlstack monitor {args.model} --now to check now)"
    )
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from mlstack.cli.monitoring import (
        describe_drift,
        describe_quality,
        latest_reports,
        retraining_run,
        run_checks,
    )

    client = StackClient(args.stack)
    require_model(client.registry, args.model)
    if args.now:
        result = run_checks(client, args.model)
        if result.get("status") == "error":
            print(f"drift check failed: {result.get('error')}")
    reports = latest_reports(client, args.model)
    for line in [*describe_drift(reports["drift"]), *describe_quality(reports["quality"])]:
        print(line)
    if args.now:
        run = retraining_run(client, reports["quality"])
        if run:
            print(f"  training run: {run}")
    return 0


def _read_instances(file: str) -> list[Any]:
    """Records from a JSON file (or - for stdin): a list, or {"instances": [...]}."""
    text = Path(file).read_text() if file != "-" else sys.stdin.read()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"{file} is not valid JSON: {error}") from error
    instances = body["instances"] if isinstance(body, dict) and "instances" in body else body
    if not isinstance(instances, list):
        raise CommandError(
            f'{file} must hold a list of records or {{"instances": [...]}}, not '
            f"{type(instances).__name__}"
        )
    return instances


def cmd_predict(args: argparse.Namespace) -> int:
    client = StackClient(args.stack)
    instances = _read_instances(args.file)
    require_model(client.registry, args.model)
    response = client.predict(args.model, instances)
    _print_json(response.body)
    return EXIT_OK if response.status == 200 else EXIT_REFUSED


def cmd_explain(args: argparse.Namespace) -> int:
    client = StackClient(args.stack)
    instances = _read_instances(args.file)
    require_model(client.registry, args.model)
    response = client.explain(args.model, instances, args.version)
    if args.json or response.status != 200:
        _print_json(response.body)
    else:
        print("\n".join(format_explanations(response.body)))
    return EXIT_OK if response.status == 200 else EXIT_REFUSED


def cmd_models(args: argparse.Namespace) -> int:
    client = StackClient(args.stack)
    if args.model is not None:
        require_model(client.registry, args.model)
    print(format_models(client, args.model, wide=args.wide), end="")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    client = StackClient(args.stack)
    require_model(client.registry, args.model)
    print(format_history(client, args.model), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mlstack.cli.report import decision_text, describe, write_report

    data, target, names = write_report(
        StackClient(args.stack),
        args.model,
        args.version,
        Path(args.out) if args.out else None,
        upload=not args.no_upload,
    )
    decision = decision_text(data.document, data.evaluation)
    print(f"{data.model} v{data.version} ({data.task}, {decision}):")
    for line in describe(data):
        print(f"  {line}")
    print("plots:")
    for name in names:
        print(f"  {target / name}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from mlstack.cli.card import write_card
    from mlstack.cli.report import decision_text

    data, target = write_card(
        StackClient(args.stack), args.model, args.version, Path(args.out) if args.out else None
    )
    print(f"{data.model} v{data.version} ({decision_text(data.document, data.evaluation)}):")
    print(f"  {target / 'card.md'}\n  {target / 'card.html'} (plots embedded)")
    return 0


def _lifecycle(args: argparse.Namespace) -> int:
    from mlstack.cli import lifecycle

    if args.command in ("canary", "shadow") and not args.off and args.version is None:
        raise CommandError(f"give a VERSION, or --off to stop the {args.command}")
    client = StackClient(args.stack)
    require_model(client.registry, args.model)
    actor = lifecycle.current_actor(client)
    reason = args.reason or f"{args.command} by {actor}"
    if args.command == "approve":
        result = lifecycle.approve(client, args.model, args.version, args.reason or "approved")
    elif args.command == "reject":
        result = lifecycle.reject(client, args.model, args.version, args.reason or "rejected")
    elif args.command == "promote":
        result = lifecycle.promote(client, args.model, args.version, actor, reason, args.force)
    elif args.command in ("canary", "shadow") and args.off:
        result = lifecycle.clear_challenger(client, args.model, args.command, actor, reason)
    elif args.command == "canary":
        result = lifecycle.canary(client, args.model, args.version, args.share, actor, reason)
    elif args.command == "shadow":
        result = lifecycle.shadow(client, args.model, args.version, actor, reason)
    else:
        result = lifecycle.rollback(client, args.model, actor, reason)
    print(json.dumps(result) if args.json else format_move(args.command, result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlstack",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="mlstack", help="stack name (default: mlstack)")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (or MLSTACK_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    local = add_command(commands, "local")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = add_command(local_commands, "up", "local")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=4566, help="AWS endpoint (moto)")
    up.add_argument("--api-port", type=int, default=3000, help="HTTP API")
    up.add_argument("--log-level", default="WARNING", help="log level of the functions")
    up.add_argument(
        "--with-demo-model",
        action="store_true",
        help="train the bundled penguins dataset as model 'penguins' before saying Ready",
    )
    up.set_defaults(handler=cmd_local_up)

    demo = add_command(commands, "demo")
    demo.set_defaults(handler=cmd_demo)

    train = add_command(commands, "train")
    train.add_argument("csv", help=command_help.TRAINING_CSV)
    train.add_argument("--model", required=True, help="the model's name (new or existing)")
    train.add_argument(
        "--target", help="the column to predict (written to the spec); a new model needs it"
    )
    train.add_argument("--spec", help="a spec.json to upload with the CSV")
    train.add_argument("--wait", action="store_true", help="follow the run until it ends")
    train.set_defaults(handler=cmd_train)

    imports = add_command(commands, "import")
    imports.add_argument("model", help="the model's name (new or existing)")
    imports.add_argument("file", help=command_help.IMPORT_FILE)
    imports.add_argument("--holdout", required=True, help=command_help.IMPORT_HOLDOUT)
    imports.add_argument("--target", required=True, help="the holdout's column the model predicts")
    imports.add_argument(
        "--train-sample",
        help="rows of the training data: the drift baseline and explanations' background "
        "(default: the holdout)",
    )
    imports.add_argument("--spec", help="a spec.json for the model (the gate's settings)")
    imports.add_argument("--wait", action="store_true", help="follow the run until it ends")
    imports.set_defaults(handler=cmd_import)

    score = add_command(commands, "score")
    score.add_argument("model", help=command_help.MODEL)
    score.add_argument("csv", help=command_help.SCORING_CSV)
    score.add_argument("--job", help="job name (default: the file's name without .csv)")
    score.add_argument("--version", type=int, help="score with this version, not production")
    score.add_argument("--keep", help="input columns to copy to the output (default: all)")
    score.add_argument(
        "--max-refused-share",
        type=float,
        help="fail the job when a larger share of rows is refused, in [0, 1) (default 0.01)",
    )
    score.add_argument(
        "--delimiter",
        help="the file's delimiter, \\t for a tab (default: the one the model was trained on)",
    )
    score.add_argument(
        "--explain",
        action="store_true",
        help="add each input column's contribution to every answer (explained_base and "
        "contribution_<column>; a classifier's to the predicted class's probability)",
    )
    score.add_argument("--wait", action="store_true", help="follow the job until it ends")
    score.add_argument(
        "--output",
        metavar="FILE",
        help="wait, then write the scored rows to FILE in the input's order, and any refused "
        "rows to FILE's name with .errors.csv (implies --wait)",
    )
    score.set_defaults(handler=cmd_score)

    feedback = add_command(commands, "feedback")
    feedback.add_argument("model", help=command_help.MODEL)
    feedback.add_argument("csv", help=command_help.FEEDBACK_CSV)
    feedback.set_defaults(handler=cmd_feedback)

    monitor = add_command(commands, "monitor")
    monitor.add_argument("model", help=command_help.MODEL)
    monitor.add_argument("--now", action="store_true", help="run the scheduled checks first")
    monitor.set_defaults(handler=cmd_monitor)

    predict = add_command(commands, "predict")
    predict.add_argument("model", help=command_help.MODEL)
    predict.add_argument("file", help=command_help.PREDICT_FILE)
    predict.set_defaults(handler=cmd_predict)

    explain = add_command(commands, "explain")
    explain.add_argument("model", help=command_help.MODEL)
    explain.add_argument("file", help=command_help.PREDICT_FILE)
    explain.add_argument("--version", type=int, help="explain this version instead of production")
    explain.add_argument("--json", action="store_true", help=command_help.JSON_OUTPUT)
    explain.set_defaults(handler=cmd_explain)

    for name in ("approve", "reject", "promote"):
        command = add_command(commands, name)
        command.add_argument("model", help=command_help.MODEL)
        command.add_argument("version", type=int, help=command_help.VERSION)
        command.add_argument("--reason", help="recorded with the move")
        command.add_argument("--json", action="store_true", help=command_help.JSON_OUTPUT)
        if name == "promote":
            command.add_argument(
                "--force",
                action="store_true",
                help="promote even a Rejected or PendingApproval version",
            )
        command.set_defaults(handler=_lifecycle)
    canary = add_command(commands, "canary")
    canary.add_argument("model", help=command_help.MODEL)
    canary.add_argument("version", type=int, nargs="?", help=command_help.CHALLENGER_VERSION)
    canary.add_argument(
        "--share", type=float, default=0.1, help="share of requests, in (0, 1] (default 0.1)"
    )
    canary.add_argument("--off", action="store_true", help="stop the canary")
    canary.add_argument("--reason", help="recorded with the change")
    canary.add_argument("--json", action="store_true", help=command_help.JSON_OUTPUT)
    canary.set_defaults(handler=_lifecycle)
    shadow = add_command(commands, "shadow")
    shadow.add_argument("model", help=command_help.MODEL)
    shadow.add_argument("version", type=int, nargs="?", help=command_help.CHALLENGER_VERSION)
    shadow.add_argument("--off", action="store_true", help="stop the shadow")
    shadow.add_argument("--reason", help="recorded with the change")
    shadow.add_argument("--json", action="store_true", help=command_help.JSON_OUTPUT)
    shadow.set_defaults(handler=_lifecycle)
    back = add_command(commands, "rollback")
    back.add_argument("model", help=command_help.MODEL)
    back.add_argument("--reason", help="recorded with the move")
    back.add_argument("--json", action="store_true", help=command_help.JSON_OUTPUT)
    back.set_defaults(handler=_lifecycle)

    report = add_command(commands, "report")
    report.add_argument("model", help=command_help.MODEL)
    report.add_argument("version", type=int, nargs="?", help=command_help.PINNED_VERSION)
    report.add_argument("--out", help="directory (default: reports/<model>/v<version>)")
    report.add_argument(
        "--no-upload", action="store_true", help="do not store the PNGs beside the version"
    )
    report.set_defaults(handler=cmd_report)

    card = add_command(commands, "card")
    card.add_argument("model", help=command_help.MODEL)
    card.add_argument("version", type=int, nargs="?", help=command_help.PINNED_VERSION)
    card.add_argument("--out", help="directory (default: cards/<model>/v<version>)")
    card.set_defaults(handler=cmd_card)

    models = add_command(commands, "models")
    models.add_argument("model", nargs="?", help=command_help.MODELS_MODEL)
    models.add_argument(
        "--wide", action="store_true", help="show each REASON whole on one line (no wrapping)"
    )
    models.set_defaults(handler=cmd_models)

    history = add_command(commands, "history")
    history.add_argument("model", help=command_help.MODEL)
    history.set_defaults(handler=cmd_history)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        sentence = None if debugging(args) else explain(error, args.command, args.stack)
        if sentence is None:
            raise
        print(f"mlstack {args.command}: {sentence}", file=sys.stderr)
        return exit_code(error)
    return code


if __name__ == "__main__":
    sys.exit(main())
