"""``mlstack``: the command line on the user's machine.

Commands act on a stack by name; boto3 talks to AWS, or to the local cloud when AWS_ENDPOINT_URL
is set (as printed by ``mlstack local up``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from mlstack.progress import follow_execution
from mlstack.stack import StackClient


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_local_up(args: argparse.Namespace) -> int:
    from mlstack.localcloud import REGION, LocalCloud, quiet_local_logs

    quiet_local_logs()
    with LocalCloud(
        host=args.host,
        moto_port=args.port,
        api_port=args.api_port,
        stack_name=args.stack,
        parameters={"LogLevel": args.log_level},
    ) as cloud:
        print(f"AWS endpoint (moto): {cloud.endpoint_url}")
        print(f"  export AWS_ENDPOINT_URL={cloud.endpoint_url} AWS_DEFAULT_REGION={REGION}")
        print(f"HTTP API:            {cloud.api_url}")
        print(f"Stack {cloud.stack_name} outputs:")
        for name, value in cloud.outputs.items():
            print(f"  {name:24} {value}")
        print("Ready. Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mlstack.demo import run_demo

    return run_demo()


def cmd_train(args: argparse.Namespace) -> int:
    client = StackClient(args.stack)
    spec: dict[str, Any] | None = None
    if args.spec:
        spec = json.loads(Path(args.spec).read_text())
    if args.target:
        spec = {**(spec or {}), "target": args.target}
    upload = client.upload_dataset(args.model, Path(args.csv), spec)
    print(f"uploaded s3://{upload['bucket']}/{upload['key']} (version {upload['version_id']})")
    execution_arn = client.find_execution(upload)
    print(f"training run: {execution_arn}")
    if not args.wait:
        return 0
    description = follow_execution(client.session.client("stepfunctions"), execution_arn)
    failed = f" with {failure_summary(description)}" if description.get("error") else ""
    print(f"run {description['status']}{failed}")
    return 0 if description["status"] == "SUCCEEDED" else 1


def cmd_predict(args: argparse.Namespace) -> int:
    client = StackClient(args.stack)
    text = Path(args.file).read_text() if args.file != "-" else sys.stdin.read()
    body = json.loads(text)
    instances = body["instances"] if isinstance(body, dict) and "instances" in body else body
    response = client.predict(args.model, instances)
    _print_json(response.body)
    return 0 if response.status == 200 else 1


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def format_models(client: StackClient, model: str | None) -> str:
    """The registry, readable: all models, or one model's versions and its production details."""
    registry = client.registry
    if model is None:
        names = registry.list_models()
        if not names:
            return "no models registered yet\n"
        rows = []
        for name in names:
            production = registry.get_alias(name)
            rows.append([name, str(production or "-"), str(len(registry.list_versions(name)))])
        return _table(["MODEL", "PRODUCTION", "VERSIONS"], rows)

    versions = registry.list_versions(model)
    if not versions:
        return f"model {model!r} has no versions\n"
    production = registry.get_alias(model)
    rows = []
    for version in versions:
        metric = version.get("metric", "")
        value = version.get("metrics", {}).get(metric)
        rows.append(
            [
                f"{version['version']}{' *' if version['version'] == production else ''}",
                version["status"],
                version.get("family", ""),
                f"{metric}={value:.4f}" if value is not None else "",
                str(version.get("dataset", {}).get("rows", "")),
                version.get("created_at", "")[:19].replace("T", " "),
                (version.get("status_reason") or "")[:70],
            ]
        )
    out = [f"model {model}: production = version {production or '-'}  (* marks it)\n\n"]
    out.append(_table(["VERSION", "STATUS", "FAMILY", "SCORE", "ROWS", "CREATED", "REASON"], rows))
    if production:
        current = registry.get_version(model, production)
        dataset = current.get("dataset", {})
        features = current.get("schema", {}).get("features", [])
        details = [
            ("family", f"{current.get('family')}  params {json.dumps(current.get('params'))}"),
            (
                "metrics",
                ", ".join(
                    f"{k}={v:.4f}"
                    for k, v in current.get("metrics", {}).items()
                    if isinstance(v, float)
                ),
            ),
            ("parity", json.dumps(current.get("parity", {}))),
            (
                "dataset",
                f"s3://{dataset.get('bucket')}/{dataset.get('key')} "
                f"version {dataset.get('version_id')}",
            ),
            ("sha256", str(dataset.get("sha256"))),
            (
                "rows",
                f"{dataset.get('rows')} ({current.get('splits', {}).get('train_rows')} train, "
                f"{current.get('splits', {}).get('holdout_rows')} holdout)",
            ),
            ("features", ", ".join(f"{f['name']}:{f['kind'][:3]}" for f in features)),
            ("classes", str(current.get("classes") or "-")),
            (
                "artifact",
                f"s3://{current['artifact']['bucket']}/{current['artifact']['key']} "
                f"sha256 {current['artifact']['sha256'][:16]}",
            ),
            (
                "libraries",
                ", ".join(f"{k} {v}" for k, v in current.get("library_versions", {}).items()),
            ),
            ("execution", str(current.get("execution_arn"))),
        ]
        out.append(f"\nproduction version {production}:\n")
        out.extend(f"  {label:10} {value}\n" for label, value in details)
    return "".join(out)


def failure_summary(description: dict[str, Any]) -> str:
    """``Error: message`` from a failed execution, whose cause is the Lambda error payload."""
    error = description.get("error", "")
    cause = description.get("cause", "")
    with contextlib.suppress(ValueError, AttributeError):
        cause = json.loads(cause).get("errorMessage", cause)
    return f"{error}: {cause}" if cause else str(error)


def cmd_models(args: argparse.Namespace) -> int:
    print(format_models(StackClient(args.stack), args.model), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mlstack.report import write_report

    try:
        data, target, names = write_report(
            StackClient(args.stack),
            args.model,
            args.version,
            Path(args.out) if args.out else None,
            upload=not args.no_upload,
        )
    except LookupError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 1
    print(f"{data.model} v{data.version} ({data.task}, decision {data.evaluation['decision']}):")
    for name in names:
        print(f"  {target / name}")
    return 0


def _lifecycle(args: argparse.Namespace) -> int:
    from mlstack import lifecycle

    client = StackClient(args.stack)
    actor = lifecycle.current_actor(client)
    reason = args.reason or f"{args.command} by {actor}"
    try:
        if args.command == "approve":
            result = lifecycle.approve(client, args.model, args.version, actor, reason)
        elif args.command == "reject":
            result = lifecycle.reject(client, args.model, args.version, actor, reason)
        elif args.command == "promote":
            result = lifecycle.promote(client, args.model, args.version, actor, reason, args.force)
        elif args.command in ("canary", "shadow") and (args.off or args.version is None):
            if not args.off:
                raise lifecycle.LifecycleError(
                    f"give a VERSION, or --off to stop the {args.command}"
                )
            result = lifecycle.clear_challenger(client, args.model, args.command, actor, reason)
        elif args.command == "canary":
            result = lifecycle.canary(
                client, args.model, args.version, args.share, actor, reason, args.force
            )
        elif args.command == "shadow":
            result = lifecycle.shadow(client, args.model, args.version, actor, reason)
        else:
            result = lifecycle.rollback(client, args.model, actor, reason)
    except lifecycle.LifecycleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlstack", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--stack", default="mlstack", help="stack name (default: mlstack)")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="the local cloud")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = local_commands.add_parser("up", help="serve the local cloud until interrupted")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=4566, help="AWS endpoint (moto)")
    up.add_argument("--api-port", type=int, default=3000, help="HTTP API")
    up.add_argument("--log-level", default="WARNING", help="log level of the functions")
    up.set_defaults(handler=cmd_local_up)

    demo = commands.add_parser(
        "demo", help="run the whole loop once, in process, on a bundled dataset"
    )
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser("train", help="upload a CSV (and spec) to start a training run")
    train.add_argument("csv")
    train.add_argument("--model", required=True)
    train.add_argument("--target", help="target column (written to the spec)")
    train.add_argument("--spec", help="a spec.json to upload with the CSV")
    train.add_argument("--wait", action="store_true", help="follow the run until it ends")
    train.set_defaults(handler=cmd_train)

    predict = commands.add_parser("predict", help="POST instances to the model's predict endpoint")
    predict.add_argument("model")
    predict.add_argument(
        "file", help='JSON file: {"instances": [...]} or a list of records; - for stdin'
    )
    predict.set_defaults(handler=cmd_predict)

    for name, text in (
        ("approve", "approve a version awaiting approval (resumes its run)"),
        ("reject", "reject a version awaiting approval (ends its run)"),
        ("promote", "point production at a version"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("model")
        command.add_argument("version", type=int)
        command.add_argument("--reason", help="recorded with the move")
        if name == "promote":
            command.add_argument(
                "--force",
                action="store_true",
                help="promote even a Rejected or PendingApproval version",
            )
        command.set_defaults(handler=_lifecycle)
    canary = commands.add_parser(
        "canary", help="send a share of prediction requests to a version (or --off)"
    )
    canary.add_argument("model")
    canary.add_argument("version", type=int, nargs="?")
    canary.add_argument(
        "--share", type=float, default=0.1, help="share of requests, in (0, 1] (default 0.1)"
    )
    canary.add_argument("--off", action="store_true", help="stop the canary")
    canary.add_argument("--force", action="store_true", help="canary a Rejected version anyway")
    canary.add_argument("--reason", help="recorded with the change")
    canary.set_defaults(handler=_lifecycle)
    shadow = commands.add_parser(
        "shadow", help="score a version silently beside production (or --off)"
    )
    shadow.add_argument("model")
    shadow.add_argument("version", type=int, nargs="?")
    shadow.add_argument("--off", action="store_true", help="stop the shadow")
    shadow.add_argument("--reason", help="recorded with the change")
    shadow.set_defaults(handler=_lifecycle)
    back = commands.add_parser("rollback", help="point production back at its previous version")
    back.add_argument("model")
    back.add_argument("--reason", help="recorded with the move")
    back.set_defaults(handler=_lifecycle)

    report = commands.add_parser(
        "report", help="plot a version's evaluation (PNGs), challenger beside champion"
    )
    report.add_argument("model")
    report.add_argument("version", type=int, nargs="?", help="default: production")
    report.add_argument("--out", help="directory (default: reports/<model>/v<version>)")
    report.add_argument(
        "--no-upload", action="store_true", help="do not store the PNGs beside the version"
    )
    report.set_defaults(handler=cmd_report)

    models = commands.add_parser("models", help="list models, or one model's versions")
    models.add_argument("model", nargs="?")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
