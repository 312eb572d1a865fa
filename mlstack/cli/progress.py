"""Follow a training execution and print one line per pipeline step as it happens; Preprocess's
adds how each column was read, and why, and the data warnings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from mlstack_core.columns_text import column_readings, kind_counts
from mlstack_core.evidence_text import judgement, metric_with_interval

if TYPE_CHECKING:
    from mlstack_core.documents import Rehearsal

Printer = Callable[[str], None]

# Columns listed one a line; a wider table lists its datetime, text and identifier columns and
# counts the rest by kind.
LISTED_COLUMNS: Final = 30
_PLAIN_KINDS: Final = ("numeric", "categorical")


def column_lines(schema: Mapping[str, Any], limit: int = LISTED_COLUMNS) -> list[str]:
    """Each column's name, kind and why, and under it what it became (a datetime's parts and
    training range, a text's TF-IDF bounds); identifiers say they are not features."""
    readings = column_readings(schema)
    shown = readings
    if len(readings) > limit:
        # Columns read as something other than a plain number or category come first: those
        # are the readings worth checking.
        notable = [r for r in readings if r.kind not in _PLAIN_KINDS][:limit]
        rest = [r for r in readings if r.kind in _PLAIN_KINDS][: limit - len(notable)]
        chosen = {id(r) for r in [*notable, *rest]}
        shown = [r for r in readings if id(r) in chosen]
    width = max((len(r.name) for r in shown), default=0)
    kind_width = max((len(r.kind) for r in shown), default=0)
    under = " " * (width + kind_width + 4)
    lines = []
    for r in shown:
        lines.append(f"{r.name:<{width}}  {r.kind:<{kind_width}}  {r.because}".rstrip())
        lines.extend(f"{under}{detail}" for detail in r.details)
    hidden = len(readings) - len(shown)
    if hidden:
        shown_ids = {id(r) for r in shown}
        counts = kind_counts([r for r in readings if id(r) not in shown_ids])
        lines.append(f"... and {hidden} more ({', '.join(counts)}; the model card lists all)")
    return lines


def summarize(state: str, output: dict[str, Any]) -> str:
    """An account of what a step produced, from the execution state it left behind: one line,
    and for Preprocess the columns as read and the data warnings under it."""
    if state == "MeasureDataset" and "compute" in output:
        compute = output["compute"]
        where = (
            f"ECS tasks on Fargate ({int(compute['cpu']) / 1024:g} vCPU, {compute['memory']} MiB)"
            if compute.get("path") == "fargate"
            else "the functions"
        )
        return f"trains on {where}: {compute.get('reason')}"
    if state == "InspectImport" and "admitted" in output:
        admitted = output["admitted"]
        lineage = admitted["lineage"]
        reads = f"{len(admitted['numeric'])} numeric, {len(admitted['categorical'])} categorical"
        return (
            f"admitted {lineage.get('file_name') or 'the file'} ({lineage.get('source')}): "
            f"reads {reads} column(s), answers {'classes' if admitted.get('classes') else 'values'}"
        )
    if state in ("Preprocess", "PrepareImport", "CollectPreparedRun") and "run" in output:
        run = output["run"]
        dataset, schema = run["dataset"], run["schema"]
        warnings = f", {len(run['warnings'])} warning(s)" if run.get("warnings") else ""
        details = "".join(
            f"\n      ! {w.get('code')} {w.get('column') or ''}: {w.get('message')}"
            for w in run.get("warnings", [])
        )
        splits = run.get("splits") or {}
        judged = (
            f", judged by {splits.get('repeats')} x {splits.get('folds')}-fold cross-validation"
            if splits.get("judged_on") == "cross_validation"
            else f", judged on {splits.get('holdout_rows')} holdout rows"
            if splits.get("holdout_rows")
            else ""
        )
        readings = column_readings(schema)
        features = [r for r in readings if r.feature]
        counted = kind_counts(features)
        identifiers = kind_counts([r for r in readings if not r.feature])
        columns = "".join(f"\n        {line}" for line in column_lines(schema))
        return (
            f"{dataset.get('rows')} rows, {len(features)} features ({', '.join(counted)})"
            + "".join(f", {words}" for words in identifiers)
            + f", task {run['task']}, "
            f"{run.get('candidate_count', len(run['candidates']))} candidates"
            f"{judged}{warnings}\n      columns, as read:{columns}{details}"
        )
    if state == "TrainCandidates" and "trained" in output:
        trained = output["trained"]
        ok = [t for t in trained if t.get("status") == "trained"]
        names = ", ".join(
            f"{t['candidate_id']} ({t['fit_seconds']:.2f}s)"
            if t.get("fit_seconds") is not None
            else f"{t['candidate_id']} (nothing to fit)"
            for t in ok
        )
        failed = len(trained) - len(ok)
        return f"{len(ok)} trained in parallel: {names}" + (f"; {failed} failed" if failed else "")
    if state == "Evaluate" and "evaluation" in output:
        evaluation = output["evaluation"]
        best = evaluation["best"]
        metric = evaluation["metric"]
        evidence = evaluation.get("evidence")
        verdict = (evidence or {}).get("verdict")
        # The verdict is one of the reasons; it gets a line of its own below.
        reasons = [r for r in evaluation["reasons"] if r != verdict]
        because = f" ({'; '.join(reasons)})" if reasons else ""
        return (
            f"best {best['candidate_id']} {metric}={metric_with_interval(best, metric)} as ONNX, "
            f"{describe_parity(best.get('parity') or {})}, "
            f"{describe_rehearsal(evaluation.get('rehearsal'))}; "
            f"decision: {evaluation['decision']}{because}"
            + "".join(f"\n      {line}" for line in judgement(evidence))
        )
    if state in ("RegisterAndPromote", "RecordRejection") and "registration" in output:
        registration = output["registration"]
        promoted = "promoted to production" if registration.get("promoted") else "not promoted"
        return f"version {registration['version']} {registration['status']}, {promoted}"
    return ""


def describe_parity(parity: dict[str, Any]) -> str:
    """How closely the ONNX export reproduces scikit-learn, in words for either task."""
    if parity.get("label_agreement") is not None:
        return (
            f"parity: {100 * parity['label_agreement']:.1f}% same labels, "
            f"max probability diff {parity.get('max_abs_diff', 0):.2g}"
        )
    if parity.get("max_scaled_diff") is not None:
        return (
            f"parity: max diff {parity.get('max_abs_diff', 0):.2g} "
            f"({parity['max_scaled_diff']:.2g} of the target's spread)"
        )
    return "parity: not measured"


def describe_rehearsal(rehearsal: Rehearsal | None) -> str:
    """Whether the winner was served holdout rows as the API would serve them."""
    if not rehearsal:
        return "serving not rehearsed"
    if not rehearsal.get("passed"):
        return f"{rehearsal.get('error')}: {rehearsal.get('reason')}"
    rows = " + ".join(str(request["rows"]) for request in rehearsal.get("requests", []))
    return f"served as scored ({rows} rows over the API contract)"


PendingVersion = Callable[[str, str], int | None]


def follow_execution(
    sfn: Any,
    execution_arn: str,
    echo: Printer = print,
    timeout: float = 900,
    poll: float = 0.1,
    pending_version: PendingVersion | None = None,
) -> dict[str, Any]:
    """Print steps until the execution ends, or until it waits for a person's approval (then the
    commands that answer it are printed and ``awaiting_approval`` is set in the result); return
    describe_execution's result. ``pending_version(model, execution_arn)`` finds the version
    awaiting approval."""
    seen = 0
    awaiting = queued = False
    entered: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while True:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        for event in events[seen:]:
            kind = event["type"]
            if kind.endswith("StateEntered"):
                name = event["stateEnteredEventDetails"]["name"]
                entered[name] = time.monotonic()
                if name == "AwaitApproval":
                    awaiting = True
                elif name == "ApprovalDecision":
                    echo("  - approval received")
            elif kind.endswith("StateExited"):
                details = event["stateExitedEventDetails"]
                name = details["name"]
                if name.startswith("Notify"):
                    echo(f"  - {name}: alert published")
                    continue
                elapsed = time.monotonic() - entered.get(name, time.monotonic())
                try:
                    output = json.loads(details.get("output") or "{}")
                except ValueError:
                    output = {}
                summary = summarize(name, output) if isinstance(output, dict) else ""
                echo(f"  - {name} done in {elapsed:.1f}s" + (f": {summary}" if summary else ""))
            elif kind in ("LambdaFunctionFailed", "TaskFailed") and not queued:
                failure: dict[str, Any] = next(
                    (v for k, v in event.items() if k.endswith("FailedEventDetails")), {}
                )
                if failure.get("error") == "ModelBusy":
                    queued = True
                    try:
                        holder = json.loads(failure.get("cause") or "{}").get("errorMessage", "")
                    except ValueError:
                        holder = ""
                    echo(
                        f"  - queued: {holder or 'another run of this model is going'}; this run "
                        "starts when that one ends"
                    )
            elif kind == "MapIterationStarted":
                index = event["mapIterationStartedEventDetails"].get("index")
                echo(f"    . Map iteration {index} started")
            elif kind in ("ExecutionFailed", "ExecutionSucceeded"):
                pass
        seen = len(events)
        if description["status"] != "RUNNING" and seen == len(events):
            return description
        if awaiting:
            model = json.loads(description.get("input") or "{}").get("model", "MODEL")
            version = pending_version(model, execution_arn) if pending_version else None
            if version is not None or pending_version is None:
                number = str(version) if version is not None else "VERSION"
                echo(
                    f"  - awaiting approval (spec approval: manual): the run resumes on\n"
                    f"      mlstack approve {model} {number} --reason '...'\n"
                    f"      mlstack reject {model} {number} --reason '...'"
                )
                return {**description, "awaiting_approval": True, "version": version}
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still running after {timeout}s")
        time.sleep(poll)
