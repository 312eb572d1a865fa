"""The Preprocess handler with Step Functions-shaped input, against moto S3."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest

from mlstack_core import errors
from tests.helpers.stack import Stack
from tests.helpers.tables import penguins_bytes, synthetic_regression

pytestmark = pytest.mark.unit

RUN_KEYS = {
    "model",
    "run_id",
    "candidate_count",
    "execution_arn",
    "task",
    "spec",
    "dataset",
    "schema",
    "splits",
    "warnings",
    "candidates",
    "feature_baseline_key",
    "background_split_key",
}


def read_csv_rows(aws: Stack, key: str) -> list[list[str]]:
    body = aws.s3.get_object(Bucket=aws.model_bucket, Key=key)["Body"].read().decode()
    return list(csv.reader(io.StringIO(body)))


def test_penguins_run_object_follows_the_contract(aws: Stack) -> None:
    # Judged on a holdout: the two split files part the rows (tests/unit/test_cross_validation.py
    # covers the small-table default).
    aws.put_spec("penguins", {"target": "species", "judge": "holdout"})
    body = penguins_bytes()
    event = aws.upload("penguins", body)
    run = aws.preprocess(event)

    assert set(run) == RUN_KEYS
    assert run["run_id"] == event["execution_name"]
    assert run["execution_arn"] == event["execution_arn"]
    assert run["task"] == run["spec"]["task"] == run["schema"]["task"] == "classification"
    assert run["spec"]["metric"] == "accuracy"
    json.dumps(run)  # the state must be plain JSON

    dataset = run["dataset"]
    assert dataset["sha256"] == hashlib.sha256(body).hexdigest()
    assert dataset["bytes"] == len(body)
    assert (dataset["rows"], dataset["columns"]) == (344, 8)
    assert dataset["version_id"] == event["dataset"]["version_id"]

    splits = run["splits"]
    assert splits["bucket"] == aws.model_bucket
    assert splits["train_key"] == f"runs/penguins/{run['run_id']}/train.csv"
    assert splits["holdout_key"] == f"runs/penguins/{run['run_id']}/holdout.csv"
    train = read_csv_rows(aws, splits["train_key"])
    holdout = read_csv_rows(aws, splits["holdout_key"])
    assert train[0] == holdout[0] == splits["columns"]
    assert train[0][-1] == "species"
    assert len(train) - 1 == splits["train_rows"]
    assert len(holdout) - 1 == splits["holdout_rows"]
    assert splits["train_rows"] + splits["holdout_rows"] == 344
    # Missing values are normalised to empty cells; "NA" never reaches the split files.
    assert not any("NA" in row for row in train[1:] + holdout[1:])

    families = [c["family"] for c in run["candidates"]]
    assert families == ["logistic_regression", "random_forest", "hist_gradient_boosting"]
    assert run["spec"]["max_concurrency"] == 4  # the Map's MaxConcurrencyPath


def test_the_exact_uploaded_version_is_read(aws: Stack) -> None:
    aws.put_spec("penguins", {"target": "species"})
    first = penguins_bytes()
    event = aws.upload("penguins", first)
    aws.upload("penguins", first.replace(b"Adelie", b"Adelie2"))  # a newer version of the key
    run = aws.preprocess(event)
    assert run["dataset"]["sha256"] == hashlib.sha256(first).hexdigest()
    assert "Adelie2" not in run["schema"]["classes"]


def test_regression_is_inferred_and_columns_are_dropped(aws: Stack) -> None:
    aws.put_spec(
        "houses",
        {"target": "price", "columns": {"drop": ["id"]}, "test_size": 0.25, "judge": "holdout"},
    )
    run = aws.preprocess(aws.upload("houses", synthetic_regression()))
    assert run["task"] == "regression"
    assert run["spec"]["metric"] == "r2"
    assert run["schema"]["numeric"] == ["x1", "x2"]
    assert run["schema"]["categorical"] == ["group"]
    assert "classes" not in run["schema"]
    assert run["schema"]["label_type"] == "float"
    assert "id" not in read_csv_rows(aws, run["splits"]["train_key"])[0]
    assert run["splits"]["holdout_rows"] == 50
    assert next(c["family"] for c in run["candidates"]) == "ridge"


def test_spec_delimiter_and_na_values_are_used(aws: Stack) -> None:
    rows = ["a;b;label"] + [f"{i};{'?' if i % 4 == 0 else i * 2};{'xy'[i % 2]}" for i in range(20)]
    aws.put_spec("semi", {"target": "label", "delimiter": ";", "na_values": ["?"]})
    run = aws.preprocess(aws.upload("semi", ("\n".join(rows) + "\n").encode()))
    assert run["schema"]["numeric"] == ["a", "b"]


def test_missing_spec_is_a_spec_error(aws: Stack) -> None:
    with pytest.raises(errors.SpecError, match="missing"):
        aws.preprocess(aws.upload("nospec", penguins_bytes()))


def test_invalid_spec_lists_all_problems(aws: Stack) -> None:
    aws.put_spec("bad", {"target": "species", "test_size": 3, "approval": "maybe"})
    with pytest.raises(errors.SpecError) as caught:
        aws.preprocess(aws.upload("bad", penguins_bytes()))
    assert "test_size" in str(caught.value)
    assert "approval" in str(caught.value)


def test_data_errors_surface_by_class(aws: Stack) -> None:
    aws.put_spec("m", {"target": "y"})
    with pytest.raises(errors.RaggedRows):
        aws.preprocess(aws.upload("m", b"x,y\n1,a\n2\n"))
    with pytest.raises(errors.NotUtf8):
        aws.preprocess(aws.upload("m", "x,y\n\u00e9,a\n".encode("utf-16")))


def test_metrics_are_emitted(aws: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    aws.put_spec("penguins", {"target": "species"})
    aws.preprocess(aws.upload("penguins", penguins_bytes()))
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]
    assert emf, "no EMF blob printed"
    blob = emf[-1]
    names = {m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"DatasetRows", "DatasetColumns", "DataWarnings"} <= names
    assert blob["DatasetRows"] in ([344.0], 344.0)


# -- warnings against the registry, cross-validation folds ----------------------------------------


def _register_schema(aws: Stack, model: str, body: bytes, spec: dict[str, Any]) -> dict[str, Any]:
    """A registered version whose schema is what Preprocess makes of ``body``."""
    aws.put_spec(model, spec)
    run = aws.preprocess(aws.upload(model, body))
    version = aws.registry.allocate_version(model)
    aws.registry.put_version(model, version, "Rejected", {"schema": run["schema"]})
    return run


def test_schema_changes_since_the_last_registered_version_are_warned(aws: Stack) -> None:
    first = _register_schema(aws, "drift", synthetic_regression(), {"target": "price"})
    assert not any(w["code"] == "TypeChanged" for w in first["warnings"])

    # x2 turns categorical (a stray "n/a"), group disappears, flag appears and is constant.
    rows = synthetic_regression().decode().splitlines()
    header = rows[0].replace(",group", "").replace(",price", ",flag,price")
    changed = [header]
    for i, line in enumerate(rows[1:]):
        cells = line.split(",")
        x2 = "n/a" if i == 3 else cells[2]
        changed.append(",".join([cells[0], cells[1], x2, "1", cells[4]]))
    run = aws.preprocess(aws.upload("drift", ("\n".join(changed) + "\n").encode()))

    found = {(w["code"], w["column"]) for w in run["warnings"]}
    assert {
        ("TypeChanged", "x2"),
        ("ColumnRemoved", "group"),
        ("ColumnAdded", "flag"),
        ("ConstantColumn", "flag"),
        ("HighCardinality", "x2"),
    } <= found
    # The id column is numeric both times: no change to report.
    assert not any(w["column"] == "id" and w["code"] == "TypeChanged" for w in run["warnings"])


def test_the_latest_version_is_the_reference_whatever_its_status(aws: Stack) -> None:
    _register_schema(aws, "drift2", synthetic_regression(), {"target": "price"})
    numeric_group = synthetic_regression().replace(b"north", b"1").replace(b"south", b"2")
    second = _register_schema(
        aws, "drift2", numeric_group.replace(b"east", b"3"), {"target": "price"}
    )
    assert ("TypeChanged", "group") in {(w["code"], w["column"]) for w in second["warnings"]}
    # Against version 2 (group numeric) the original file changes group back.
    third = aws.preprocess(aws.upload("drift2", synthetic_regression()))
    changed = [w for w in third["warnings"] if w["code"] == "TypeChanged"]
    assert [w["column"] for w in changed] == ["group"]
    assert "since version 2" in changed[0]["message"]


def test_an_unreadable_registry_costs_a_warning_not_the_run(
    aws: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack_core.settings import stack_settings

    aws.put_spec("penguins", {"target": "species"})
    event = aws.upload("penguins", penguins_bytes())
    monkeypatch.setenv("REGISTRY_TABLE", "no-such-table")
    stack_settings.cache_clear()
    run = aws.preprocess(event)
    (warning,) = [w for w in run["warnings"] if w["code"] == "SchemaHistoryUnavailable"]
    assert "ResourceNotFoundException" in warning["message"]
    stack_settings.cache_clear()


def test_too_many_folds_for_the_rarest_class_is_a_spec_error(aws: Stack) -> None:
    rows = ["x,y"] + [f"{i},{'rare' if i % 25 == 0 else 'common'}" for i in range(100)]
    aws.put_spec("folds", {"target": "y", "candidates": [{"family": "knn", "cv": 5}]})
    with pytest.raises(errors.SpecError, match=r"cv 5 .* rarest class has 3"):
        aws.preprocess(aws.upload("folds", ("\n".join(rows) + "\n").encode()))
    aws.put_spec("folds", {"target": "y", "candidates": [{"family": "knn", "cv": 3}]})
    run = aws.preprocess(aws.upload("folds", ("\n".join(rows) + "\n").encode()))
    assert run["candidates"][0]["cv"] == 3
