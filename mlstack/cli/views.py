"""What the CLI prints about the registry and runs: tables in words, not JSON."""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Mapping
from typing import Any

from mlstack.cli.progress import column_lines
from mlstack.cli.stack import StackClient
from mlstack_core.columns_text import column_readings
from mlstack_core.documents import VersionDocument
from mlstack_core.evidence_text import (
    advice,
    metric_names,
    metric_value,
    metric_with_interval,
    verdict,
)

# Where a detail's continuation lines start: under its value, past "  label      ".
_DETAIL_INDENT = "\n" + " " * 13


# The width the models table's REASON column wraps at (between words); --wide shows it whole.
REASON_WIDTH = 60


def _table(header: list[str], rows: list[list[str]], wrap_last: int | None = None) -> str:
    """Columns aligned. With ``wrap_last``, the last column's text is broken between words into
    lines at most that wide (a longer word stays whole), the rest under the first."""
    columns = list(zip(header, *rows, strict=True))
    widths = [max(len(str(cell)) for cell in column) for column in columns[:-1]]
    lines = []
    for row in [header, *rows]:
        *cells, last = (str(cell) for cell in row)
        parts = textwrap.wrap(last, wrap_last, break_long_words=False) if wrap_last else [last]
        for i, part in enumerate(parts or [""]):
            lead = cells if i == 0 else [""] * len(cells)
            aligned = [cell.ljust(width) for cell, width in zip(lead, widths, strict=True)]
            lines.append("  ".join([*aligned, part]))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def format_models(client: StackClient, model: str | None, wide: bool = False) -> str:
    """The registry, readable: all models, or one model's versions and its production details.
    A version's REASON wraps at ``REASON_WIDTH`` between words; ``wide`` keeps it on one line."""
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
    aliases = registry.aliases(model)
    production = registry.get_alias(model)
    marks = {
        int(entry["version"]): name
        + (f" {float(entry['share']):.0%}" if entry.get("share") is not None else "")
        for name, entry in aliases.items()
        if name != "production"
    }
    rows = []
    for version in versions:
        metric = version.get("metric", "")
        rows.append(
            [
                f"{version['version']}{' *' if version['version'] == production else ''}",
                version["status"],
                marks.get(int(version["version"]), ""),
                version.get("family", ""),
                f"{metric}={metric_with_interval(version, metric)}"
                if metric_value(version, metric) is not None
                else "",
                str(version.get("dataset", {}).get("rows", "")),
                version.get("created_at", "")[:19].replace("T", " "),
                version.get("status_reason") or "",
            ]
        )
    challengers = ", ".join(f"{role} = version {v}" for v, role in sorted(marks.items()))
    out = [
        f"model {model}: production = version {production or '-'}  (* marks it)"
        + (f"; {challengers}" if challengers else "")
        + "\n\n"
    ]
    out.append(
        _table(
            ["VERSION", "STATUS", "ALIAS", "FAMILY", "SCORE", "ROWS", "CREATED", "REASON"],
            rows,
            wrap_last=None if wide else REASON_WIDTH,
        )
    )
    production_schema: Mapping[str, Any] = {}
    if production:
        current = registry.get_version(model, production)
        production_schema = current.get("schema") or {}
        dataset = current.get("dataset", {})
        features = current.get("schema", {}).get("features", [])
        details = [
            ("family", f"{current.get('family')}  params {json.dumps(current.get('params'))}"),
            ("metrics", _metric_lines(current)),
            *_judgement(current),
            ("parity", json.dumps(current.get("parity", {}))),
            (
                "dataset",
                f"s3://{dataset.get('bucket')}/{dataset.get('key')} "
                f"version {dataset.get('version_id')}",
            ),
            ("sha256", str(dataset.get("sha256"))),
            ("rows", _rows_line(dataset, current.get("splits") or {})),
            ("features", ", ".join(f"{f['name']}:{str(f.get('kind'))[:3]}" for f in features)),
            ("columns", _DETAIL_INDENT.join(column_lines(production_schema))),
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
    newest = max(versions, key=lambda v: int(v["version"]))
    if newest["version"] != production and newest.get("evidence"):
        # Why the last run did not reach production, and what would help; and how it read the
        # columns when production read them as other kinds (or there is no production).
        schema: Mapping[str, Any] = newest.get("schema") or {}
        read_otherwise = _kinds(schema) != _kinds(production_schema)
        out.append(f"\nnewest version {newest['version']} ({newest['status']}):\n")
        out.extend(
            f"  {label:10} {value}\n"
            for label, value in [
                ("metrics", _metric_lines(newest)),
                *_judgement(newest),
                *(
                    [("columns", _DETAIL_INDENT.join(column_lines(schema)))]
                    if read_otherwise
                    else []
                ),
            ]
        )
    return "".join(out)


def _kinds(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(r.name, r.kind) for r in column_readings(schema)]


def _metric_lines(document: VersionDocument) -> str:
    """Every defined metric of a version with its interval, one a line."""
    return _DETAIL_INDENT.join(
        f"{name}={metric_with_interval(document, name)}"
        for name in metric_names(document)
        if metric_value(document, name) is not None
    )


def _judgement(document: VersionDocument) -> list[tuple[str, str]]:
    """The gate's verdict on a version and, when the evidence fell short, the advice."""
    evidence = document.get("evidence")
    lines = [("verdict", verdict(evidence)), ("advice", advice(evidence))]
    return [(label, text) for label, text in lines if text]


def failure_summary(description: dict[str, Any]) -> str:
    """``Error: message`` from a failed execution, whose cause is the Lambda error payload."""
    error = description.get("error", "")
    cause = description.get("cause", "")
    with contextlib.suppress(ValueError, AttributeError):
        cause = json.loads(cause).get("errorMessage", cause)
    return f"{error}: {cause}" if cause else str(error)


def format_history(client: StackClient, model: str) -> str:
    """Every move of production and of the challengers, oldest first: who, when and why."""
    entries = [
        e for e in client.registry.history(model) if e.get("kind") in ("alias", "challenger")
    ]
    if not entries:
        return f"model {model!r} has no alias moves yet\n"
    rows = []
    for entry in entries:
        alias = entry.get("alias", "")
        if entry.get("kind") == "challenger" and entry.get("version") is None:
            change = f"{alias} off"
        elif entry.get("kind") == "challenger":
            share = entry.get("share")
            change = f"{alias} -> {entry.get('version')}" + (f" ({share:.0%})" if share else "")
        else:
            verb = "rolled back" if entry.get("rollback") else "moved"
            change = f"{alias} {verb} {entry.get('previous') or '-'} -> {entry.get('version')}"
        rows.append(
            [
                str(entry.get("at", ""))[:19].replace("T", " "),
                change,
                str(entry.get("actor", "")),
                str(entry.get("reason", "")),
            ]
        )
    return _table(["WHEN", "CHANGE", "WHO", "WHY"], rows)


def _rows_line(dataset: Mapping[str, Any], splits: Mapping[str, Any]) -> str:
    """How many rows, and how the version was judged on them."""
    if splits.get("judged_on") == "cross_validation":
        folds = f"{splits.get('repeats')} x {splits.get('folds')}-fold"
        return f"{dataset.get('rows')} (judged by {folds} cross-validation; fitted on every row)"
    return (
        f"{dataset.get('rows')} ({splits.get('train_rows')} train, "
        f"{splits.get('holdout_rows')} holdout)"
    )


def format_move(command: str, result: Mapping[str, Any]) -> str:
    """What a lifecycle command did, in words: which alias moved where, or what a person decided
    and where production is now. ``--json`` prints ``result`` itself, for scripts."""
    model = result["model"]
    if "decision" in result:  # approve, reject: the run resumed, and where it left the version
        run = result.get("run")
        ended = "its run is still RUNNING" if run == "RUNNING" else f"its run {run}"
        return (
            f"version {result['version']} of {model!r} {result['decision']} by {result['actor']}"
            f" ({result['reason']}); {ended}; version {result['version']} is {result['status']};"
            f" production = version {result.get('production') or '-'}"
        )
    if command in ("canary", "shadow"):
        if result.get(command) is None:
            return f"{model!r}: {command} off (it was version {result.get('previous')})"
        share = f", {float(result['share']):.0%} of requests" if command == "canary" else ""
        return (
            f"{model!r}: {command} = version {result[command]}{share}, beside production version"
            f" {result.get('production')}; {result['note']}"
        )
    verb = "rolled back" if command == "rollback" else "moved"
    return (
        f"{model!r}: production {verb} from version {result.get('previous') or '-'} to version "
        f"{result['production']}"
    )
