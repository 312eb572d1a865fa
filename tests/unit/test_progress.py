"""The CLI's account of each pipeline step, and how it shows the columns as read."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from mlstack.cli.progress import column_lines, summarize
from mlstack_core.documents import FeatureSchema, VersionDocument
from mlstack_core.evidence import ADVICE, Interval
from mlstack_core.payloads import EvaluationReport
from tests.helpers.evidence import ROWS, weighed
from tests.helpers.tables import mixed_prepared

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _evaluation(parity: dict[str, object], metric: str) -> dict[str, Any]:
    return {
        "evaluation": {
            "metric": metric,
            "decision": "promote",
            "reasons": ["beats the baseline"],
            "best": {"candidate_id": "ridge", "metrics": {metric: 0.5}, "parity": parity},
            "rehearsal": {
                "passed": True,
                "requests": [{"form": "records", "rows": 1}, {"form": "records", "rows": 40}],
            },
        }
    }


def test_a_regressor_s_parity_is_described_not_printed_as_none() -> None:
    line = summarize(
        "Evaluate",
        _evaluation(
            {"label_agreement": None, "max_abs_diff": 0.002, "max_scaled_diff": 1e-5}, "r2"
        ),
    )
    assert "None" not in line
    assert "parity: max diff 0.002 (1e-05 of the target's spread)" in line
    assert "served as scored (1 + 40 rows" in line


def test_a_classifier_s_parity_names_label_agreement() -> None:
    line = summarize(
        "Evaluate", _evaluation({"label_agreement": 0.995, "max_abs_diff": 3e-7}, "accuracy")
    )
    assert "parity: 99.5% same labels, max probability diff 3e-07" in line


def test_a_failed_rehearsal_is_named() -> None:
    state = _evaluation({"label_agreement": 1.0, "max_abs_diff": 0.0}, "accuracy")
    state["evaluation"]["rehearsal"] = {
        "passed": False,
        "error": "ServingRehearsalFailed",
        "reason": "a 1-row records request was refused with 400",
    }
    assert "ServingRehearsalFailed: a 1-row records request" in summarize("Evaluate", state)


def _judged(*, passed: bool) -> dict[str, Any]:
    """An Evaluate state whose gate weighed evidence, as Evaluate writes it."""
    evidence = weighed(passed=passed)
    state = _evaluation({"label_agreement": 1.0, "max_abs_diff": 0.0}, "accuracy")
    evaluation = state["evaluation"]
    evaluation["decision"] = "promote" if passed else "reject"
    evaluation["reasons"] = ["accuracy 0.5000 meets threshold 0.4", evidence["verdict"]]
    evaluation["best"]["intervals"] = {"accuracy": Interval(0.5, 0.41, 0.59, 0.95, ROWS).document()}
    evaluation["evidence"] = evidence
    return state


def test_the_winner_s_score_shows_its_interval_and_the_verdict() -> None:
    state = _judged(passed=True)
    verdict = state["evaluation"]["evidence"]["verdict"]
    first, *rest = summarize("Evaluate", state).split("\n")
    assert "best ridge accuracy=0.5000 (95% interval 0.4100 to 0.5900) as ONNX" in first
    # The verdict is one of the reasons; it is printed once, on a line of its own.
    assert first.endswith("decision: promote (accuracy 0.5000 meets threshold 0.4)")
    assert rest == [f"      verdict: {verdict}"]


def test_a_rejection_for_lack_of_evidence_prints_the_advice() -> None:
    state = _judged(passed=False)
    lines = summarize("Evaluate", state).split("\n")
    assert lines[1].startswith("      verdict: NotBetterThanProduction: no better than")
    assert lines[2] == f"      advice: {ADVICE}"


def test_an_evaluation_without_evidence_prints_as_before() -> None:
    line = summarize("Evaluate", _evaluation({"label_agreement": 1.0}, "accuracy"))
    assert "\n" not in line
    assert "accuracy=0.5000 as ONNX" in line
    assert line.endswith("decision: promote (beats the baseline)")


def test_the_report_names_a_person_s_decision_over_the_gate_s() -> None:
    from mlstack.cli.report import decision_text

    evaluation = cast(EvaluationReport, {"decision": "promote"})
    assert decision_text({"status": "Registered"}, evaluation) == "gate: promote"
    rejected: VersionDocument = {
        "status": "Rejected",
        "status_changed_by": "arn:aws:iam::1:user/ana",
    }
    assert decision_text(rejected, evaluation) == (
        "gate: promote; rejected by arn:aws:iam::1:user/ana"
    )


# ----------------------------------------------------------------------------- columns as read
def mixed_schema(rows: int = 300) -> FeatureSchema:
    """The schema Preprocess records for ``mixed_csv``."""
    return mixed_prepared(rows).schema


def _preprocess(schema: Mapping[str, Any], warnings: list[dict[str, Any]] | None = None) -> str:
    run = {
        "dataset": {"rows": 300},
        "schema": schema,
        "warnings": warnings or [],
        "task": "classification",
        "candidates": ["a", "b", "c"],
        "splits": {"holdout_rows": 60},
    }
    return summarize("Preprocess", {"run": run})


def test_preprocess_prints_each_column_its_kind_and_why() -> None:
    schema = mixed_schema()
    first, header, *columns = _preprocess(schema).split("\n")
    assert first.startswith(
        "300 rows, 4 features (1 numeric, 1 categorical, 1 datetime, 1 text), 1 identifier, "
    )
    assert header == "      columns, as read:"
    placed_at = next(f for f in schema["features"] if f["name"] == "placed_at")
    assert placed_at["reason"].startswith("100% of its values read as iso dates (e.g. '20")
    # Under a datetime: its parts and the training range; under a text: its TF-IDF bounds.
    under = " " * len("        customer_ref  identifier   ")
    assert columns == [
        f"        placed_at     datetime     {placed_at['reason']}",
        f"{under}parts year, month, day, day_of_week, day_of_year, hour, days_since_epoch",
        f"{under}trained on {placed_at['first']} to {placed_at['last']}",
        "        amount        numeric      every value is a number",
        "        channel       categorical  3 distinct values in 300 rows",
        "        review        text         300 distinct values in 300 rows, "
        + next(f["reason"] for f in schema["features"] if f["name"] == "review").split(", ")[1],
        f"{under}TF-IDF of its words: at most 1,000 terms, phrases of 1 to 2 words",
        "        customer_ref  identifier   not a feature: each of its 300 values is different "
        "and none holds a space",
    ]


def test_warnings_follow_the_columns() -> None:
    warning = {"code": "UnreadableDates", "column": "placed_at", "message": "3 of 300 values ..."}
    lines = _preprocess(mixed_schema(), [warning]).split("\n")
    assert ", 1 warning(s)" in lines[0]
    assert lines[-1] == "      ! UnreadableDates placed_at: 3 of 300 values ..."


def test_declared_kinds_and_formats_say_so() -> None:
    schema = {
        "features": [
            {
                "name": "day",
                "kind": "datetime",
                "reason": "declared in spec.columns.types",
                "format": "dmy",
                "parts": ["year", "month", "day", "day_of_week", "day_of_year", "days_since_epoch"],
                "first": "2024-01-03T00:00:00Z",
                "last": "2024-12-31T00:00:00Z",
            },
            {
                "name": "note",
                "kind": "text",
                "reason": "declared in spec.columns.types",
                "max_terms": 200,
                "ngrams": 1,
            },
        ],
        "identifiers": [
            {"name": "ref", "kind": "identifier", "reason": "declared in spec.columns.types"}
        ],
    }
    assert column_lines(schema) == [
        "day   datetime    declared in spec.columns.types",
        "                  read as dmy dates",
        "                  parts year, month, day, day_of_week, day_of_year, days_since_epoch",
        # Dates without a time of day show days.
        "                  trained on 2024-01-03 to 2024-12-31",
        "note  text        declared in spec.columns.types",
        "                  TF-IDF of its words: at most 200 terms, single words",
        "ref   identifier  not a feature: declared in spec.columns.types",
    ]


def test_a_wide_table_lists_its_notable_columns_and_counts_the_rest() -> None:
    text = {"name": "note", "kind": "text", "reason": "words", "max_terms": 1000, "ngrams": 2}
    schema = {
        "features": [
            *({"name": f"x{i}", "kind": "numeric", "reason": "a number"} for i in range(40)),
            text,
            *({"name": f"c{i}", "kind": "categorical", "reason": "2 distinct"} for i in range(5)),
        ],
        "identifiers": [{"name": "ref", "kind": "identifier", "reason": "all different"}],
    }
    lines = column_lines(schema, limit=10)
    named = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert named == [*(f"x{i}" for i in range(8)), "note", "ref", "..."]
    assert lines[-1] == "... and 37 more (32 numeric, 5 categorical; the model card lists all)"


def test_a_schema_from_before_reasons_still_prints() -> None:
    schema = {
        "features": [{"name": "island", "kind": "categorical"}, {"name": "x", "kind": "numeric"}],
        "numeric": ["x"],
        "categorical": ["island"],
    }
    first, _, *columns = _preprocess(schema).split("\n")
    assert "2 features (1 numeric, 1 categorical), task classification" in first
    assert columns == ["        island  categorical", "        x       numeric"]


def test_the_registry_view_shows_how_production_and_a_rejected_newest_read_columns() -> None:
    from mlstack.cli.views import format_models

    schema = mixed_schema()
    production = {
        "version": 1,
        "status": "Approved",
        "schema": schema,
        "dataset": {"rows": 300},
        "artifact": {"bucket": "b", "key": "k", "sha256": "ab" * 32},
    }
    # The newest version read the review as categories: the view says how.
    recategorised = {
        **schema,
        "features": [
            {"name": "review", "kind": "categorical", "reason": "declared in spec.columns.types"}
            if f["name"] == "review"
            else f
            for f in schema["features"]
        ],
    }
    newest = {
        **production,
        "version": 2,
        "status": "Rejected",
        "schema": recategorised,
        "evidence": {"verdict": "no better"},
    }

    class Registry:
        def list_versions(self, model: str) -> list[dict[str, Any]]:
            return [production, newest]

        def get_version(self, model: str, version: int) -> dict[str, Any]:
            return production if version == 1 else newest

        def get_alias(self, model: str) -> int:
            return 1

        def aliases(self, model: str) -> dict[str, Any]:
            return {}

    class Client:
        registry = Registry()

    printed = format_models(Client(), "orders")  # type: ignore[arg-type]
    shown, rejected = printed.split("production version 1:")[1].split("newest version 2")
    indent = "\n" + " " * 13
    assert "  columns    " + indent.join(column_lines(schema)) + "\n" in shown
    assert "placed_at     datetime     100% of its values read as iso dates" in shown
    assert "customer_ref  identifier   not a feature: each of its 300 values" in shown
    assert "review        categorical  declared in spec.columns.types" in rejected
    # A rejected version that read every column as production did shows no columns.
    newest["schema"] = schema
    assert "columns" not in format_models(Client(), "orders").split("newest version 2")[1]  # type: ignore[arg-type]


def test_the_cli_s_base_install_prints_columns_without_numpy() -> None:
    """`pip install mlstack` brings boto3 only: the commands that print column readings import
    no numpy (the readings live in ``mlstack_core.columns_text``, not in the card)."""
    script = (
        "import sys; sys.modules['numpy'] = None\n"
        "import mlstack.cli.main\n"
        "from mlstack.cli.progress import column_lines\n"
        "print(column_lines({'features': [{'name': 'x', 'kind': 'numeric', 'reason': 'r'}]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['x  numeric  r']"


def test_the_training_path_is_named_with_its_reason_and_the_tasks_size() -> None:
    compute = {
        "path": "fargate",
        "reason": "the CSV has 600,000,000 bytes, above LargeDatasetThresholdMiB (256 MiB)",
        "cpu": "4096",
        "memory": "16384",
    }
    line = summarize("MeasureDataset", {"compute": compute})
    assert line == (
        "trains on ECS tasks on Fargate (4 vCPU, 16384 MiB): the CSV has 600,000,000 bytes, "
        "above LargeDatasetThresholdMiB (256 MiB)"
    )
    small = {"path": "lambda", "reason": "the CSV has 9 bytes and fits the functions"}
    assert summarize("MeasureDataset", {"compute": small}).startswith("trains on the functions")
