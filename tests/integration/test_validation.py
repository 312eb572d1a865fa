"""Every named data and spec error, through the real stack: upload → Trigger → real ASL → Preprocess
fails by name → alert → Fail, while the promoted model stays in production.

One model name is trained and promoted once (module fixture); every case then uploads its own spec
and CSV for that model, so "production is unchanged" is checked against a real promoted version.
Also here: the warnings Preprocess records (constant, high-cardinality, and columns changed since
the last registered version) reaching the registry through Register.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from mlstack.cli.main import main
from mlstack.cli.stack import StackClient
from mlstack.localcloud import LocalCloud
from mlstack_core import errors
from mlstack_core.kinds.inference import MAX_SCHEMA_CATEGORIES
from tests.helpers.local_cloud import (
    AlertInbox,
    entered_states,
    execution_events,
    function_environment,
    penguin_rows,
    to_csv,
    wait_for_status,
)

pytestmark = pytest.mark.integration

MODEL = "validation"
TARGET = "species"
GOOD_SPEC: dict[str, Any] = {"target": TARGET}
# Delete spec.json before the upload.
NO_SPEC = object()


def penguins_with(**changes: Any) -> bytes:
    """The penguins file with columns replaced (a list of values) or removed (None)."""
    rows = penguin_rows()
    out = []
    for i, original in enumerate(rows):
        row = dict(original)
        for name, values in changes.items():
            if values is None:
                row.pop(name)
            else:
                row[name] = values[i % len(values)]
        out.append(row)
    return to_csv(out)


def rows_csv(header: list[str], rows: list[list[Any]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


@dataclass(frozen=True)
class Case:
    id: str
    error: str
    body: bytes
    spec: Any = None  # dict, raw bytes, NO_SPEC, or None for GOOD_SPEC
    # Strings the cause must contain: each names the problem (column, row, value, field).
    needles: tuple[str, ...] = ()
    # Preprocess's environment for this case: a stack parameter set lower than its default.
    environment: dict[str, str] = field(default_factory=dict)


_FEW = [["Dream", 40.1, "Adelie"], ["Biscoe", 47.0, "Gentoo"], ["Dream", 39.0, "Adelie"]]

DATA_CASES = [
    Case("empty-file", "EmptyDataset", b"", needles=("empty",)),
    Case(
        "above-max-upload",
        "DatasetTooLarge",
        to_csv(penguin_rows()),
        needles=("MaxUploadMiB",),
        environment={"MAX_UPLOAD_MIB": "0.01"},
    ),
    Case(
        "above-max-rows",
        "TooManyRows",
        to_csv(penguin_rows()),
        needles=("344 rows", "MaxDatasetRows"),
        environment={"MAX_DATASET_ROWS": "300"},
    ),
    Case(
        "above-max-columns",
        "TooManyColumns",
        to_csv(penguin_rows()),
        needles=("8 columns", "MaxDatasetColumns"),
        environment={"MAX_DATASET_COLUMNS": "5"},
    ),
    Case(
        "run-state-too-large",
        "RunStateTooLarge",
        rows_csv(
            [f"{i:03d}_" + "long column name " * 14 for i in range(400)] + ["species"],
            [[(r * 7 + c) % 13 for c in range(400)] + [("a", "b")[r % 2]] for r in range(60)],
        ),
        needles=("of the run's state", "256 KB", "shorten the column names"),
    ),
    Case(
        "above-max-classes",
        "TooManyClasses",
        to_csv(penguin_rows()),
        needles=("3 classes", "MaxClasses"),
        environment={"MAX_CLASSES": "2"},
    ),
    Case("blank-lines-only", "EmptyDataset", b"\n\n\n", needles=("empty",)),
    Case(
        "header-only", "HeaderOnly", b"island,bill_length_mm,species\n", needles=("no data rows",)
    ),
    Case(
        "target-missing",
        "TargetColumnMissing",
        penguins_with(species=None),
        needles=("'species'",),
    ),
    Case(
        "target-all-missing",
        "TargetAllMissing",
        penguins_with(species=["NA", "", "null"]),
        needles=("'species'",),
    ),
    Case("single-class", "SingleClass", penguins_with(species=["Adelie"]), needles=("'Adelie'",)),
    Case(
        "too-few-rows-per-class",
        "TooFewRowsPerClass",
        rows_csv(["x", "species"], [[i, "rare" if i == 0 else "common"] for i in range(30)]),
        needles=("'rare'",),
    ),
    Case(
        "too-few-rows-regression",
        "TooFewRows",
        rows_csv(["x", "y"], [[1, 1.5], [2, 2.5], [3, 3.5]]),
        spec={"target": "y", "task": "regression"},
        needles=("3 usable rows",),
    ),
    Case(
        "unparseable-declared-number",
        "UnparseableNumber",
        penguins_with(bill_length_mm=["39.1", "40.3", "forty"]),
        spec={"target": TARGET, "columns": {"types": {"bill_length_mm": "numeric"}}},
        needles=("'bill_length_mm'", "'forty'", "data row 3"),
    ),
    Case(
        "declared-datetime-without-a-date",
        "UnreadableDates",
        to_csv(penguin_rows()),
        spec={"target": TARGET, "columns": {"types": {"island": "datetime"}}},
        needles=("'island' is declared datetime", "no value reads as a date", "'Biscoe'"),
    ),
    Case(
        "unparseable-cells-of-120-kb",
        "UnparseableNumber",
        penguins_with(
            bill_length_mm=["39.1", "40.3", "x" * 120_000],
            bill_depth_mm=["18.7", "17.4", "y" * 120_000],
        ),
        spec={
            "target": TARGET,
            "columns": {"types": {"bill_length_mm": "numeric", "bill_depth_mm": "numeric"}},
        },
        needles=("'bill_length_mm'", "characters in all"),
    ),
    Case(
        "unparseable-regression-target",
        "UnparseableNumber",
        rows_csv(["x", "y"], [[i, "heavy" if i == 7 else i * 1.5] for i in range(40)]),
        spec={"target": "y", "task": "regression"},
        needles=("'heavy'",),
    ),
    Case(
        "column-all-missing",
        "ColumnAllMissing",
        penguins_with(sex=["NA", ""]),
        needles=("'sex'", "spec.columns.drop"),
    ),
    Case(
        "not-utf8",
        "NotUtf8",
        "island,species\nCaf\u00e9,Adelie\nDream,Gentoo\n".encode("latin-1"),
        needles=("UTF-8",),
    ),
    Case(
        "utf16",
        "NotUtf8",
        "island,species\nDream,Adelie\n".encode("utf-16"),
        needles=("UTF-8",),
    ),
    Case(
        "wrong-delimiter",
        "WrongDelimiter",
        rows_csv(["island", "bill_length_mm", "species"], _FEW, delimiter=";"),
        needles=('"delimiter": ";"',),
    ),
    Case(
        "duplicate-columns",
        "DuplicateColumns",
        rows_csv(["island", "island", "species"], _FEW),
        needles=("'island'",),
    ),
    Case(
        "blank-column-name",
        "BlankColumnName",
        rows_csv(
            ["", "island", "bill_length_mm", "species"], [[i, *r] for i, r in enumerate(_FEW)]
        ),
        needles=("index=False",),
    ),
    Case(
        "ragged-rows",
        "RaggedRows",
        b"island,bill_length_mm,species\nDream,40.1,Adelie\nBiscoe,47.0\nDream,39,Adelie,x\n",
        needles=("2 row(s)", "line 3"),
    ),
    Case(
        "malformed-csv",
        "MalformedCsv",
        b'island,species\n"' + b"a" * 140_000 + b'",Adelie\n',
        needles=("field limit",),
    ),
    Case(
        "no-feature-columns",
        "NoFeatureColumns",
        penguins_with(**{name: None for name in penguin_rows()[0] if name != TARGET}),
        needles=("no feature columns",),
    ),
]

SPEC_CASES = [
    Case("no-spec", "SpecError", to_csv(penguin_rows()), spec=NO_SPEC, needles=("missing",)),
    Case(
        "spec-invalid-json",
        "SpecError",
        to_csv(penguin_rows()),
        spec=b'{"target": "species",}',
        needles=("not valid JSON",),
    ),
    Case(
        "spec-not-an-object",
        "SpecError",
        to_csv(penguin_rows()),
        spec=b'["species"]',
        needles=("JSON object",),
    ),
    Case(
        "spec-missing-target",
        "SpecError",
        to_csv(penguin_rows()),
        spec={"task": "classification"},
        needles=("target: is required",),
    ),
    Case(
        "spec-unknown-field",
        "SpecError",
        to_csv(penguin_rows()),
        spec={"target": TARGET, "tset_size": 0.3},
        needles=("tset_size: unknown field", "did you mean 'test_size'"),
    ),
    Case(
        "spec-wrong-types-every-problem",
        "SpecError",
        to_csv(penguin_rows()),
        spec={
            "target": 5,
            "test_size": "big",
            "max_concurrency": 0,
            "approval": "maybe",
            "columns": {"types": {"island": "prose"}},
            "candidates": [{"family": "random_forest", "cv": "5"}],
        },
        needles=(
            "6 problems",
            "target",
            "test_size",
            "max_concurrency",
            "approval",
            "columns.types.island",
            "candidates[0].cv",
        ),
    ),
    Case(
        "spec-does-not-fit-the-data",
        "SpecError",
        to_csv(penguin_rows()),
        spec={"target": TARGET, "metric": "rmse", "candidates": ["ridge"]},
        needles=("rmse", "ridge", "inferred from the target"),
    ),
    Case(
        "spec-gate-looser-than-the-stack-allows",
        "SpecOutsideStackLimits",
        to_csv(penguin_rows()),
        spec={
            "target": TARGET,
            "min_improvement": -1e9,
            "parity_tolerance": {"label_agreement": 0.5, "max_abs_diff": 0.5},
        },
        needles=("GateMinImprovement", "GateMinLabelAgreement", "GateMaxOutputDiff"),
    ),
    Case(
        "spec-threshold-below-the-stacks-floor",
        "SpecOutsideStackLimits",
        to_csv(penguin_rows()),
        spec={"target": TARGET, "threshold": 0.5},
        environment={"GATE_MIN_THRESHOLD": "0.9"},
        needles=("threshold 0.5 is below the stack's floor 0.9", "GateMinThreshold"),
    ),
    Case(
        "spec-more-candidates-than-the-stack-trains",
        "SpecOutsideStackLimits",
        to_csv(penguin_rows()),
        spec={
            "target": TARGET,
            "candidates": [{"family": "knn", "grid": {"n_neighbors": [3, 5, 7, 9]}}],
        },
        environment={"MAX_CANDIDATES": "3"},
        needles=("4 grid points", "at most 3", "MaxCandidates"),
    ),
    Case(
        "spec-too-many-folds",
        "SpecError",
        rows_csv(["x", "species"], [[i, "rare" if i % 20 == 0 else "common"] for i in range(60)]),
        spec={"target": TARGET, "candidates": [{"family": "knn", "cv": 5}]},
        needles=("cv 5", "rarest class"),
    ),
]


def test_the_cases_cover_every_error_preprocess_raises() -> None:
    raised = {c.error for c in DATA_CASES + SPEC_CASES}
    dataset_errors = {cls.__name__ for cls in _subclasses(errors.DatasetError)}
    assert dataset_errors | {"SpecError"} <= raised


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


@dataclass
class Production:
    version: int
    versions: int


@pytest.fixture(scope="module")
def production(cloud: LocalCloud, stack: StackClient) -> Production:
    upload = stack.upload_dataset(MODEL, to_csv(penguin_rows()), GOOD_SPEC, file_name="good.csv")
    result = cloud.wait_for_execution(stack.find_execution(upload))
    assert result["status"] == "SUCCEEDED", result.get("cause")
    version = stack.registry.get_alias(MODEL)
    assert version is not None
    return Production(version, len(stack.registry.list_versions(MODEL)))


def _put_spec(cloud: LocalCloud, spec: Any) -> None:
    s3 = cloud.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    key = f"datasets/{MODEL}/spec.json"
    if spec is NO_SPEC:
        s3.delete_object(Bucket=bucket, Key=key)
        return
    body = spec if isinstance(spec, bytes) else json.dumps(spec or GOOD_SPEC).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)


@pytest.mark.parametrize("case", DATA_CASES + SPEC_CASES, ids=lambda c: c.id)
def test_bad_upload_fails_in_preprocess_by_name_alerts_and_keeps_production(
    case: Case,
    cloud: LocalCloud,
    stack: StackClient,
    alerts: AlertInbox,
    production: Production,
) -> None:
    alerts.drain()
    _put_spec(cloud, case.spec)
    with function_environment(cloud, "PreprocessFunction", **case.environment):
        upload = stack.upload_dataset(MODEL, case.body, None, file_name=f"{case.id}.csv")
        execution_arn = stack.find_execution(upload)
        result = cloud.wait_for_execution(execution_arn)

    assert result["status"] == "FAILED"
    assert result["error"] == case.error, result.get("cause")
    message = json.loads(result["cause"])["errorMessage"]
    for needle in case.needles:
        assert needle in message, (needle, message)

    events = execution_events(cloud, execution_arn)
    failures = [e for e in events if e["type"] == "LambdaFunctionFailed"]
    assert [f["lambdaFunctionFailedEventDetails"]["error"] for f in failures] == [case.error]
    # The failing Lambda ran in Preprocess, and nothing after it in the pipeline ran.
    entered = entered_states(events)
    before_failure = entered_states([e for e in events if e["id"] < failures[0]["id"]])
    assert before_failure[-1] == "Preprocess"
    assert not {"TrainCandidates", "Evaluate", "RegisterAndPromote"} & set(entered)
    assert "NotifyFailure" in entered
    assert entered[-1] == "TrainingFailed"

    alert = [m for m in alerts.drain() if m["MessageAttributes"]["event"]["Value"] == "Failed"]
    assert len(alert) == 1
    assert alert[0]["MessageAttributes"]["error"]["Value"] == case.error
    assert alert[0]["MessageAttributes"]["model"]["Value"] == MODEL

    assert stack.registry.get_alias(MODEL) == production.version
    assert len(stack.registry.list_versions(MODEL)) == production.versions


# -- warnings reach the registry ------------------------------------------------------------------


def test_warnings_about_the_data_and_its_changes_are_registered(
    cloud: LocalCloud, stack: StackClient
) -> None:
    model = "warned"
    rows = penguin_rows()
    first = stack.upload_dataset(model, to_csv(rows), GOOD_SPEC, file_name="v1.csv")
    assert cloud.wait_for_execution(stack.find_execution(first))["status"] == "SUCCEEDED"

    # Second file: year turns categorical ("n/a"), sex is gone, a constant, an identifier and a
    # column of many categories appear.
    changed = []
    for i, original in enumerate(rows):
        row = {k: v for k, v in original.items() if k != "sex"}
        row["year"] = "n/a" if i == 5 else row["year"]
        row["station"] = "S1"
        row["tag"] = f"tag-{i:04d}"
        row["batch"] = f"b{i * 2 // 3}"
        changed.append(row)
    second = stack.upload_dataset(model, to_csv(changed), None, file_name="v2.csv")
    execution_arn = stack.find_execution(second)
    # Production needs the column sex, which this file lacks, so it cannot be scored against
    # the challenger: the challenger waits for a person (AutoPromoteIncomparable is false).
    wait_for_status(stack, model, 2, "PendingApproval")
    evaluation = stack.registry.get_version(model, 2)
    assert "a person must approve" in evaluation["status_reason"]
    assert stack.registry.get_alias(model) == 1
    assert main(["reject", model, "2", "--reason", "schema change not reviewed"]) == 0
    assert cloud.wait_for_execution(execution_arn)["status"] == "SUCCEEDED"

    latest = max(stack.registry.list_versions(model), key=lambda v: v["version"])
    assert latest["dataset"]["key"] == second["key"]
    found = {(w["code"], w["column"]) for w in latest["warnings"]}
    assert {
        ("TypeChanged", "year"),
        ("ColumnRemoved", "sex"),
        ("ColumnAdded", "station"),
        ("ColumnAdded", "batch"),
        ("ConstantColumn", "station"),
        ("HighCardinality", "batch"),
    } <= found
    assert all(w["message"] for w in latest["warnings"])
    # A unique code on every row is read as an identifier: no feature, so no warning about it.
    assert [i["name"] for i in latest["schema"]["identifiers"]] == ["tag"]
    assert "tag" not in {column for _, column in found}
    batch = next(f for f in latest["schema"]["features"] if f["name"] == "batch")
    assert len(batch["categories"]) <= MAX_SCHEMA_CATEGORIES
