"""The metrics catalogue: every metric the stack's functions emit, and the AWS metrics it watches.

This table is the source of ``docs/metrics.md`` (``python -m mlstack.checks.catalogue --write``;
a test fails when the file differs from ``render()``). Tests hold the code to it from both sides:

- tests/unit/test_metrics_catalogue.py runs every function's handler, captures the EMF records it
  prints, and checks each metric's name, unit and dimension set against this table; it also scans
  each function's source for metric names, so a metric only an error path emits is covered too.
- ``mlstack.checks.template.metric_refs.check_metric_names`` checks every metric an alarm or the
  dashboard in template.yaml names against this table (and the service dimension against the
  functions).

Dimension cardinality: ``service`` is one of eight function names, ``function_name`` one per
function, and ``model`` is a registered model name (the predict function uses ``(unknown)`` for a
name not in the registry, so callers cannot invent series). Versions, variants, run and candidate
ids are EMF metadata (searchable in Logs Insights), never dimensions.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

SERVICE = ("service",)
SERVICE_MODEL = ("service", "model")
STACK_WIDE = (SERVICE,)
PER_MODEL = (SERVICE, SERVICE_MODEL)
PREDICT = (SERVICE_MODEL,)

# Logical id in template.yaml -> POWERTOOLS_SERVICE_NAME (checked against the template).
FUNCTIONS: dict[str, str] = {
    "TriggerFunction": "trigger",
    "PreprocessFunction": "preprocess",
    "TrainFunction": "train",
    "AdmitFunction": "admit",
    "EvaluateFunction": "evaluate",
    "RegisterFunction": "register",
    "RunLockFunction": "runlock",
    "PredictFunction": "predict",
    "MonitorFunction": "monitor",
    "ApprovalFunction": "approval",
    "ScoreFunction": "score",
    "TaskResultFunction": "taskresult",
}


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    service: str
    dimensions: tuple[tuple[str, ...], ...]
    meaning: str
    group: str


def _m(
    group: str,
    service: str,
    dimensions: tuple[tuple[str, ...], ...],
    rows: list[tuple[str, str, str]],
) -> list[Metric]:
    return [Metric(n, u, service, dimensions, text, group) for n, u, text in rows]


METRICS: list[Metric] = [
    *_m(
        "Serving",
        "predict",
        PREDICT,
        [
            ("PredictionRequests", "Count", "POST /models/{model}/predict requests"),
            ("PredictionErrors", "Count", "predict requests answered with any non-200 status"),
            ("PredictedRows", "Count", "rows scored (instances per request)"),
            ("PredictionLatency", "Milliseconds", "handler logic time of successful requests"),
            ("ModelLoadTime", "Milliseconds", "download, checksum, session and warm-up"),
            ("ModelLoadFailures", "Count", "versions refused (checksum, ONNX, schema)"),
            ("CanaryRequests", "Count", "requests answered by the canary version"),
            ("CanaryFallbacks", "Count", "canary picked but not loadable; production answered"),
            ("ShadowRequests", "Count", "requests also answered by the shadow version"),
            ("ShadowErrors", "Count", "shadow answers that failed (never change the answer)"),
            (
                "CaptureDropped",
                "Count",
                "sampled rows not captured because the container already held its maximum",
            ),
            ("ShadowAgreement", "Percent", "shadow vs served: identical labels"),
            ("ShadowMaxAbsDiff", "None", "shadow vs served: largest output difference"),
            ("ShadowLatency", "Milliseconds", "time spent running the shadow"),
            ("ExplainRequests", "Count", "POST /models/{model}/explain requests"),
            ("ExplainErrors", "Count", "explain requests answered with any non-200 status"),
            ("ExplainedRows", "Count", "rows explained (instances per request)"),
            ("ExplainLatency", "Milliseconds", "handler logic time of successful explain requests"),
        ],
    ),
    Metric(
        "ColdStart",
        "Count",
        "predict",
        (("function_name", "service"),),
        "first invocation of a container",
        "Serving",
    ),
    *_m(
        "Pipeline",
        "trigger",
        STACK_WIDE,
        [
            ("TrainingRunsStarted", "Count", "executions started by an upload"),
            ("DuplicateTriggers", "Count", "redelivered upload events (run already started)"),
            ("IgnoredObjects", "Count", "objects that are not datasets/<model>/<file>.csv"),
            ("RefusedUploads", "Count", "datasets above MaxUploadMiB: no run, an alert"),
            ("BatchJobsStarted", "Count", "scoring jobs started by a batch/<model>/<job>.csv"),
            ("ImportRunsStarted", "Count", "runs started by an import's manifest (mlstack import)"),
        ],
    ),
    *_m(
        "Pipeline",
        "preprocess",
        PER_MODEL,
        [
            ("DatasetRows", "Count", "data rows in the uploaded file"),
            ("DatasetColumns", "Count", "columns in the uploaded file"),
            ("TrainingRows", "Count", "rows in the training split"),
            ("HoldoutRows", "Count", "rows in the holdout split"),
            ("DataWarnings", "Count", "data and schema-change warnings"),
            ("Candidates", "Count", "candidates the Map trains"),
            ("RunsOnFargate", "Count", "1 when MeasureDataset sends the run to Fargate, else 0"),
        ],
    ),
    *_m(
        "Pipeline",
        "train",
        STACK_WIDE,
        [
            ("CandidateFailures", "Count", "1 per candidate that failed to fit or export, else 0"),
            ("FitSeconds", "Seconds", "fit time of one candidate (a whole search with cv)"),
            ("ExportSeconds", "Seconds", "ONNX conversion time"),
            ("OnnxBytes", "Bytes", "size of the exported model"),
        ],
    ),
    *_m(
        "Pipeline",
        "admit",
        PER_MODEL,
        [
            ("ImportsAdmitted", "Count", "imported models stored as their run's candidate"),
        ],
    ),
    *_m(
        "Pipeline",
        "evaluate",
        PER_MODEL,
        [
            (
                "BestCandidateScore",
                "None",
                "the winner's spec metric on the holdout (metadata `metric` names it)",
            ),
            (
                "ScoreImprovement",
                "None",
                "margin over production (or the baseline), in the metric's direction",
            ),
            (
                "GatePassed",
                "Count",
                "1 when the gate promotes, 0 when it rejects; the average is the pass rate",
            ),
            ("ViableCandidates", "Count", "candidates that passed parity"),
            (
                "ServingRehearsalFailures",
                "Count",
                "1 when the winner, served holdout rows as JSON requests through the serving "
                "contract, did not answer what the gate scored (the run rejects it), else 0",
            ),
            ("ExcludedCandidates", "Count", "candidates excluded (failed, parity)"),
            (
                "ParityLabelAgreement",
                "Percent",
                "winner: ONNX vs scikit-learn identical labels (classifiers)",
            ),
            ("ParityMaxAbsDiff", "None", "winner: largest ONNX vs scikit-learn output difference"),
        ],
    ),
    *_m(
        "Registry",
        "register",
        PER_MODEL,
        [
            ("PipelineDuration", "Seconds", "execution start to registration"),
            ("Promotions", "Count", "production moved by the pipeline"),
            ("Rejections", "Count", "challengers recorded as Rejected by the gate"),
            (
                "ConsecutiveRejections",
                "Count",
                "the model's newest versions rejected in a row "
                "(0 after a promotion); alarm RejectionsInARowAlarm",
            ),
            ("PromotionConflicts", "Count", "production moved during the run; not promoted"),
            ("CardFailures", "Count", "versions registered whose model card could not be written"),
        ],
    ),
    *_m(
        "Registry",
        "approval",
        PER_MODEL,
        [
            ("ApprovalsRequested", "Count", "versions waiting for a person's answer"),
            ("ApprovalsAnswered", "Count", "answers sent to a waiting run (approve or reject)"),
        ],
    ),
    *_m(
        "Registry",
        "approval",
        STACK_WIDE,
        [
            (
                "ApprovalsRefused",
                "Count",
                "approve/reject requests refused (no run waiting, wrong status, the uploader "
                "answering with ApproverMustDiffer)",
            ),
            (
                "UploadsRecorded",
                "Count",
                "dataset uploads CloudTrail reported (ApproverMustDiffer)",
            ),
        ],
    ),
    *_m(
        "Batch scoring",
        "score",
        PER_MODEL,
        [
            ("BatchRowsScored", "Count", "rows of a batch answered"),
            ("BatchRowsRefused", "Count", "rows of a batch the API would refuse (errors.csv)"),
            ("BatchJobSeconds", "Seconds", "a job from its start to its manifest"),
        ],
    ),
    *_m(
        "Pipeline",
        "runlock",
        STACK_WIDE,
        [
            ("RunLocksAcquired", "Count", "runs that took their model's lock"),
            ("RunsQueued", "Count", "lock attempts that found another run of the model"),
            ("RunLocksReleased", "Count", "1 when the lock was released, 0 if not held"),
            (
                "RunsEndedWithoutCleanup",
                "Count",
                "runs stopped, timed out or failed where no Catch reaches: lock freed, alerted",
            ),
        ],
    ),
    *_m(
        "Drift",
        "monitor",
        PER_MODEL,
        [
            (
                "DriftScore",
                "None",
                "largest per-feature PSI of served inputs vs the training "
                "baseline; alarm DriftAlarm",
            ),
            ("PredictionDrift", "None", "PSI of the served predictions vs the holdout's"),
            ("DriftedFeatures", "Count", "features whose PSI reached spec.drift.threshold"),
            ("DriftSampleRows", "Count", "sampled rows in the window"),
            ("DriftAlerts", "Count", "drift alerts published"),
            (
                "RetrainingRunsStarted",
                "Count",
                "training runs started because of drift, or datasets with labelled rows written "
                "because quality fell",
            ),
            ("MonitorErrors", "Count", "models whose check failed"),
        ],
    ),
    *_m(
        "Ground truth",
        "monitor",
        PER_MODEL,
        [
            (
                "GroundTruthScore",
                "None",
                "the production version's metric on the labelled captured rows of the window",
            ),
            ("GroundTruthRows", "Count", "labelled captured rows of the production version"),
            ("QualityAlerts", "Count", "quality alerts published (the metric fell)"),
        ],
    ),
    Metric("ModelsMonitored", "Count", "monitor", STACK_WIDE, "models checked per tick", "Drift"),
]

# AWS's own metrics the alarms and the dashboard use: namespace -> name -> dimension names.
AWS_METRICS: dict[str, dict[str, tuple[str, ...]]] = {
    "AWS/ApiGateway": {
        name: ("ApiName", "Stage")
        for name in ("Count", "4XXError", "5XXError", "Latency", "IntegrationLatency")
    },
    "AWS/Lambda": {
        name: ("FunctionName",)
        for name in ("Throttles", "Errors", "Duration", "ConcurrentExecutions", "Invocations")
    },
    "AWS/States": {
        name: ("StateMachineArn",)
        for name in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed")
    },
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible": ("QueueName",)},
}


def by_service() -> dict[str, dict[str, Metric]]:
    out: dict[str, dict[str, Metric]] = {}
    for metric in METRICS:
        out.setdefault(metric.service, {})[metric.name] = metric
    return out


def by_name() -> dict[str, list[Metric]]:
    out: dict[str, list[Metric]] = {}
    for metric in METRICS:
        out.setdefault(metric.name, []).append(metric)
    return out


def _dims(dimensions: tuple[tuple[str, ...], ...]) -> str:
    return "; ".join("[" + ", ".join(d) + "]" for d in dimensions)


INTRO = """
Every function writes CloudWatch Embedded Metric Format records to its log; CloudWatch turns them
into metrics in the namespace `mlstack/<stack name>` (`POWERTOOLS_METRICS_NAMESPACE`). The tests
capture each function's EMF output and compare names, units and dimensions with this table
(tests/unit/test_metrics_catalogue.py), and check that every metric an alarm or the dashboard in
template.yaml names is in it (`mlstack.checks.template.metric_refs.check_metric_names`).

**Dimensions.** `service` is the function (`POWERTOOLS_SERVICE_NAME`). Metrics listed with
`[service]; [service, model]` are published under both sets, so one series per function serves
the stack-wide alarms (`Maximum` of `DriftScore` over `[service]` is the worst model) and one per
model the dashboard. `model` is a registered model name: the predict function uses `(unknown)` for
any other, so callers cannot create series. Versions, variants, run and candidate ids are EMF
metadata (`model_version`, `variant`, `candidate_id`, `metric`), queryable in Logs Insights, never
dimensions: the number of series grows with the number of models only.

Rollbacks and manual promotions are made by the `mlstack` CLI with the user's credentials, not by
a function, so they are not metrics: the registry records each move with actor and reason
(`mlstack models NAME`).
"""


def _paragraphs(text: str) -> list[str]:
    return [*text.strip().splitlines(), ""]


def render() -> str:
    lines = [
        "# Metrics catalogue",
        "",
        "<!-- Generated by `python -m mlstack.checks.catalogue --write` from",
        "     mlstack/checks/catalogue.py; a test fails when this file and the table differ.",
        "     Do not edit by hand. -->",
        "",
        *_paragraphs(INTRO),
    ]
    groups: dict[str, list[Metric]] = {}
    for metric in METRICS:
        groups.setdefault(metric.group, []).append(metric)
    for group, metrics in groups.items():
        lines += [
            f"## {group}",
            "",
            "| metric | unit | dimensions | emitted by | meaning |",
            "|---|---|---|---|---|",
        ]
        for m in metrics:
            lines.append(
                f"| `{m.name}` | {m.unit} | {_dims(m.dimensions)} | {m.service} | {m.meaning} |"
            )
        lines.append("")
    lines += [
        "## AWS metrics used by the alarms and the dashboard",
        "",
        "| namespace | metric | dimensions |",
        "|---|---|---|",
    ]
    for namespace, metrics_of in AWS_METRICS.items():
        for name, dimensions in metrics_of.items():
            lines.append(f"| {namespace} | `{name}` | {', '.join(dimensions)} |")
    lines += [
        "",
        "Run duration per step is the Lambda `Duration` of each step's function (dashboard",
        '"Step duration"); the whole run\'s is `PipelineDuration`.',
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render docs/metrics.md from the catalogue")
    parser.add_argument("--write", action="store_true", help="write docs/metrics.md")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        from mlstack.sam import project_root

        (project_root() / "docs/metrics.md").write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["AWS_METRICS", "FUNCTIONS", "METRICS", "Metric", "by_name", "by_service", "render"]
