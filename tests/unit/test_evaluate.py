"""Evaluate: ONNX scoring, parity gate, champion/baseline comparison and the decision."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pytest

from mlstack_core import errors
from mlstack_core.documents import Champion
from mlstack_core.evidence import Answers
from mlstack_core.payloads import ScoredCandidate
from mlstack_core.tabular import Table
from mlstack_evaluate.decision import baseline, decide
from mlstack_evaluate.holdout import (
    Holdout,
    reported_classification_metrics,
    reported_regression_metrics,
)
from mlstack_evaluate.judges import HoldoutJudge
from tests.helpers.stack import Stack
from tests.helpers.tables import penguins_bytes, synthetic_regression

pytestmark = pytest.mark.unit

CLASSIFICATION_METRICS = {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"}
REGRESSION_METRICS = {"r2", "rmse", "mae"}


def run(aws: Stack, model: str, body: bytes, **spec: Any) -> dict[str, Any]:
    aws.put_spec(model, spec)
    return aws.run_pipeline(model, body)


def scored_candidates(aws: Stack, evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every candidate as Evaluate scored it: in its report (the state carries a summary)."""
    candidates: list[dict[str, Any]] = aws.read_json(evaluation["report_key"])["candidates"]
    return candidates


def binary_int_labels(n: int = 600, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    kind = rng.choice(["x", "y", "z"], size=n)
    label = ((a + 0.8 * b + (kind == "x") + rng.normal(scale=0.7, size=n)) > 0.3).astype(int)
    lines = ["a,b,kind,label"] + [
        f"{'' if i % 23 == 0 else f'{a[i]:.5f}'},{b[i]:.5f},{'' if i % 31 == 0 else kind[i]},"
        f"{label[i]}"
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


# -- first version: against the baseline -----------------------------------------------------------


@pytest.mark.slow
def test_penguins_first_run_promotes_over_the_baseline(aws: Stack) -> None:
    state = run(aws, "penguins", penguins_bytes(), target="species")
    evaluation = state["evaluation"]
    assert evaluation["decision"] == "promote"
    assert evaluation["metric"] == "accuracy"
    assert evaluation["greater_is_better"] is True
    assert evaluation["champion"] is None
    assert evaluation["baseline"]["strategy"] == "most_frequent"

    best = evaluation["best"]
    assert set(best["metrics"]) == CLASSIFICATION_METRICS
    assert best["metrics"]["accuracy"] > 0.93  # penguins are easy; measured on ONNX outputs
    assert best["metrics"]["accuracy"] > evaluation["baseline"]["metrics"]["accuracy"] + 0.4
    assert best["metrics"]["roc_auc"] > 0.95
    assert best["metrics"]["accuracy"] == max(
        c["metrics"]["accuracy"] for c in scored_candidates(aws, evaluation)
    )
    for candidate in scored_candidates(aws, evaluation):
        assert candidate["excluded"] is None
        assert candidate["parity"]["passed"] is True
        assert candidate["parity"]["label_agreement"] >= 0.999
        assert candidate["parity"]["max_abs_diff"] < 1e-3
    assert "baseline" in evaluation["reasons"][-1]

    report = aws.read_json(evaluation["report_key"])
    assert report["decision"] == evaluation["decision"]
    assert report["best"]["candidate_id"] == best["candidate_id"]
    assert evaluation["report_key"] == f"runs/penguins/{state['run']['run_id']}/evaluation.json"


@pytest.mark.slow
def test_binary_integer_labels(aws: Stack) -> None:
    state = run(
        aws, "binary", binary_int_labels(), target="label", metric="roc_auc", judge="holdout"
    )
    schema = state["run"]["schema"]
    assert schema["label_type"] == "int"
    assert schema["classes"] == [0, 1]
    best = state["evaluation"]["best"]
    assert best["metrics"]["roc_auc"] > 0.8
    assert state["evaluation"]["baseline"]["metrics"]["roc_auc"] == pytest.approx(0.5)
    assert state["evaluation"]["decision"] == "promote"


@pytest.mark.slow
def test_regression_with_a_lower_is_better_metric(aws: Stack) -> None:
    state = run(
        aws,
        "houses",
        synthetic_regression(400),
        target="price",
        metric="rmse",
        columns={"drop": ["id"]},
    )
    evaluation = state["evaluation"]
    assert evaluation["greater_is_better"] is False
    assert evaluation["baseline"]["strategy"] == "mean"
    best = evaluation["best"]
    assert set(best["metrics"]) == REGRESSION_METRICS
    assert best["metrics"]["r2"] > 0.8
    assert best["metrics"]["rmse"] == min(
        c["metrics"]["rmse"] for c in scored_candidates(aws, evaluation)
    )
    assert best["metrics"]["rmse"] < evaluation["baseline"]["metrics"]["rmse"]
    assert all(
        c["parity"]["passed"] and c["parity"]["label_agreement"] is None
        for c in scored_candidates(aws, evaluation)
    )
    assert evaluation["decision"] == "promote"


# -- against production ---------------------------------------------------------------------------


@pytest.mark.slow
def test_champion_is_scored_on_the_same_holdout(aws: Stack) -> None:
    first = run(aws, "penguins", penguins_bytes(), target="species", judge="holdout")
    version = aws.promote(first)

    second = aws.run_pipeline("penguins", penguins_bytes())
    champion = second["evaluation"]["champion"]
    assert champion["version"] == version
    assert champion["comparable"] is True
    # Same data and seed: same holdout, so production scores what it scored before.
    assert champion["metrics"] == pytest.approx(first["evaluation"]["best"]["metrics"])
    assert second["evaluation"]["comparison"]["against"] == "champion"
    # The same model again is no evidence of anything: production stays.
    assert second["evaluation"]["decision"] == "reject"
    assert second["evaluation"]["error"] == "NotBetterThanProduction"
    assert f"no better than production v{version}" in second["evaluation"]["reasons"][-1]
    assert second["evaluation"]["evidence"]["improvement"]["estimate"] == 0.0


@pytest.mark.slow
def test_incompatible_champion_falls_back_to_the_baseline(aws: Stack) -> None:
    """Production reads island; a file without that column cannot score it."""
    import csv
    import io

    aws.promote(run(aws, "penguins", penguins_bytes(), target="species"))
    rows = list(csv.DictReader(io.StringIO(penguins_bytes().decode())))
    out = io.StringIO()
    writer = csv.DictWriter(out, [k for k in rows[0] if k != "island"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: v for k, v in row.items() if k != "island"} for row in rows)
    state = run(aws, "penguins", out.getvalue().encode(), target="species")
    evaluation = state["evaluation"]
    assert evaluation["champion"]["comparable"] is False
    assert "'island'" in evaluation["champion"]["reason"]
    assert evaluation["comparison"]["against"] == "baseline"
    assert any("not comparable" in r for r in evaluation["reasons"])
    assert evaluation["decision"] == "promote"


@pytest.mark.slow
def test_threshold_gates_the_decision(aws: Stack) -> None:
    state = run(
        aws, "penguins", penguins_bytes(), target="species", metric="log_loss", threshold=1e-9
    )
    evaluation = state["evaluation"]
    assert evaluation["greater_is_better"] is False
    assert evaluation["decision"] == "reject"
    assert "is above threshold" in evaluation["reasons"][0]


# -- exclusions ------------------------------------------------------------------------------------


def trained_run(aws: Stack, model: str, body: bytes, **spec: Any) -> dict[str, Any]:
    """Preprocess and Train, stopping before Evaluate."""
    aws.put_spec(model, spec)
    state = aws.upload(model, body)
    state["run"] = aws.preprocess(state)
    state["trained"] = aws.train(state["run"])
    return state


@pytest.mark.slow
def test_evaluate_never_reads_the_joblib_models(aws: Stack) -> None:
    """Evaluate runs without scikit-learn: parity uses the stored holdout outputs."""
    state = trained_run(aws, "penguins", penguins_bytes(), target="species")
    for entry in state["trained"]:
        aws.s3.delete_object(Bucket=aws.model_bucket, Key=entry["sklearn_key"])
    evaluation = aws.evaluate(state["run"], state["trained"])
    assert all(c["excluded"] is None for c in scored_candidates(aws, evaluation))
    assert all(c["parity"]["label_flips"] == 0 for c in scored_candidates(aws, evaluation))


@pytest.mark.slow
def test_parity_failure_excludes_a_broken_export(aws: Stack) -> None:
    state = trained_run(aws, "penguins", penguins_bytes(), target="species")
    trained = state["trained"]
    # Break one export: as if Train had exported another candidate's graph for it, so its outputs
    # disagree with the scikit-learn outputs Train stored for it.
    victim, other = trained[0], trained[1]
    assert victim["family"] != other["family"]
    other_onnx = aws.s3.get_object(Bucket=aws.model_bucket, Key=other["onnx_key"])["Body"].read()
    put = aws.s3.put_object(Bucket=aws.model_bucket, Key=victim["onnx_key"], Body=other_onnx)
    victim["onnx_version_id"] = put["VersionId"]
    victim["onnx_sha256"] = hashlib.sha256(other_onnx).hexdigest()

    evaluation = aws.evaluate(state["run"], trained)
    scored = {c["candidate_id"]: c for c in scored_candidates(aws, evaluation)}
    broken = scored[victim["candidate_id"]]
    assert broken["excluded"].startswith("ONNX/sklearn parity out of tolerance")
    assert "max probability diff" in broken["excluded"]
    assert broken["parity"]["passed"] is False
    assert broken["parity"]["max_abs_diff"] > 1e-3
    assert evaluation["best"]["candidate_id"] != victim["candidate_id"]
    assert sum(1 for c in scored.values() if c["excluded"]) == 1
    report = aws.read_json(evaluation["report_key"])
    reasons = {c["candidate_id"]: c["excluded"] for c in report["candidates"]}
    assert reasons[victim["candidate_id"]] == broken["excluded"]


@pytest.mark.slow
def test_regression_parity_failure_excludes_the_candidate(aws: Stack) -> None:
    state = trained_run(
        aws, "houses", synthetic_regression(300), target="price", columns={"drop": ["id"]}
    )
    victim = state["trained"][0]
    stored = np.load(
        io.BytesIO(
            aws.s3.get_object(Bucket=aws.model_bucket, Key=victim["sklearn_holdout_key"])[
                "Body"
            ].read()
        ),
        allow_pickle=False,
    )
    # Shift the stored scikit-learn outputs by 1% of the target's spread: far past 1e-3.
    shifted = stored["variable"] + 0.01 * float(np.std(stored["variable"]))
    buffer = io.BytesIO()
    np.savez(buffer, variable=shifted)
    aws.s3.put_object(
        Bucket=aws.model_bucket, Key=victim["sklearn_holdout_key"], Body=buffer.getvalue()
    )

    evaluation = aws.evaluate(state["run"], state["trained"])
    broken = next(
        c for c in scored_candidates(aws, evaluation) if c["candidate_id"] == victim["candidate_id"]
    )
    assert broken["excluded"].startswith("ONNX/sklearn parity out of tolerance: max scaled diff")
    assert broken["parity"]["max_scaled_diff"] > 1e-3
    assert evaluation["best"]["candidate_id"] != victim["candidate_id"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("missing_key", "has no sklearn_holdout_key"),
        ("missing_object", "NoSuchKey"),
        ("wrong_rows", "rows, the holdout has"),
    ],
)
def test_unmeasurable_parity_excludes_the_candidate(aws: Stack, damage: str, reason: str) -> None:
    state = trained_run(aws, "penguins", penguins_bytes(), target="species")
    trained = [dict(entry) for entry in state["trained"]]
    victim = trained[0]
    if damage == "missing_key":
        del victim["sklearn_holdout_key"]  # e.g. an entry from a Train that predates the file
    elif damage == "missing_object":
        aws.s3.delete_object(Bucket=aws.model_bucket, Key=victim["sklearn_holdout_key"])
    else:
        key = victim["sklearn_holdout_key"]
        body = aws.s3.get_object(Bucket=aws.model_bucket, Key=key)["Body"].read()
        stored = dict(np.load(io.BytesIO(body), allow_pickle=False))
        buffer = io.BytesIO()
        # Outputs for one row fewer than the holdout: stale, or from another split.
        np.savez(buffer, **{**stored, "label": stored["label"][:-1]})
        aws.s3.put_object(Bucket=aws.model_bucket, Key=key, Body=buffer.getvalue())

    evaluation = aws.evaluate(state["run"], trained)
    excluded = {c["candidate_id"]: c["excluded"] for c in scored_candidates(aws, evaluation)}
    assert excluded[victim["candidate_id"]].startswith("parity not measurable")
    assert reason in excluded[victim["candidate_id"]]
    assert sum(1 for value in excluded.values() if value) == 1


@pytest.mark.slow
def test_no_viable_candidate(aws: Stack) -> None:
    aws.put_spec(
        "penguins",
        {
            "target": "species",
            "candidates": [
                {"family": "random_forest", "params": {"max_features": "nonsense"}},
                {"family": "logistic_regression", "params": {"C": -1.0}},
            ],
        },
    )
    state = aws.upload("penguins", penguins_bytes())
    state["run"] = aws.preprocess(state)
    trained = aws.train(state["run"])
    assert all(t["status"] == "failed" for t in trained)
    with pytest.raises(errors.NoViableCandidate, match="training failed"):
        aws.evaluate(state["run"], trained)


# -- the decision rule ----------------------------------------------------------------------------


def _spec(**fields: Any) -> dict[str, Any]:
    return {"metric": "accuracy", "threshold": None, "min_improvement": 0.0, **fields}


def _holdout(y: Any, task: str = "classification") -> Holdout:
    cells = [str(v) for v in y]
    schema: dict[str, Any] = {"task": task, "target": "y", "numeric": ["x"], "categorical": []}
    if task == "classification":
        schema.update(label_type="str", classes=sorted(set(cells)))
    return Holdout(Table(["x", "y"], {"x": ["0"] * len(y), "y": cells}, len(y)), schema)


def _sharp(holdout: Holdout, right: float, seed: int) -> Answers:
    """A classifier right on about ``right`` of the rows, confident (0.9) either way."""
    rng = np.random.default_rng(seed)
    y = np.asarray(holdout.y)
    hit = rng.random(y.size) < right
    labels = np.where(hit, y, np.where(y == "a", "b", "a"))
    probabilities = np.where(labels[:, None] == np.array(["a", "b"]), 0.9, 0.1)
    return Answers(labels=labels, probabilities=probabilities)


def _gate(spec: dict[str, Any], holdout: Holdout, best: Answers, champion: Answers | None) -> Any:
    judge = HoldoutJudge(holdout)
    base, answers = baseline(judge)
    shown = {"c00-x": [best], "baseline": answers}
    production = None
    if champion is not None:
        shown["champion"] = [champion]
        production = {"version": 4, "comparable": True, "metrics": holdout.metric_values(champion)}
    entry = {"candidate_id": "c00-x", "metrics": holdout.metric_values(best)}
    return decide(
        spec,
        cast(ScoredCandidate, entry),
        cast(Champion | None, production),
        base,
        judge=judge,
        task=holdout.schema["task"],
        answers=shown,
        confidence=0.95,
        comparisons=3,
    )


BALANCED = ["a", "b"] * 200


@pytest.mark.parametrize(
    ("spec", "best", "champion", "decision", "error"),
    [
        (_spec(), 0.9, None, "promote", None),
        (_spec(), 0.53, None, "reject", "NotBetterThanBaseline"),  # a coin's luck
        (_spec(), 0.9, 0.9, "reject", "NotBetterThanProduction"),  # the same answers
        (_spec(), 0.95, 0.7, "promote", None),
        (_spec(min_improvement=0.5), 0.95, 0.7, "reject", "NotBetterThanProduction"),
        (_spec(threshold=0.97), 0.9, None, "reject", None),
        (_spec(metric="log_loss"), 0.9, None, "promote", None),  # lower is better
    ],
)
def test_decision_rule(
    spec: dict[str, Any],
    best: float,
    champion: float | None,
    decision: str,
    error: str | None,
) -> None:
    holdout = _holdout(BALANCED)
    chosen = _sharp(holdout, best, seed=1)
    # Production is the same model when it scores the same: a tie is the same answers.
    production = (
        None
        if champion is None
        else (chosen if champion == best else _sharp(holdout, champion, seed=2))
    )
    gate = _gate(spec, holdout, chosen, production)
    assert gate.decision == decision, gate.reasons
    assert gate.error == error
    assert gate.comparison["against"] == ("baseline" if champion is None else "champion")
    assert gate.evidence is not None
    assert gate.evidence["verdict"] in gate.reasons


def test_regression_evidence_is_the_squared_error() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    holdout = _holdout(y, "regression")
    close = Answers(values=y + rng.normal(scale=0.3, size=y.size))
    far = Answers(values=y + rng.normal(scale=1.0, size=y.size))
    gate = _gate(_spec(metric="rmse"), holdout, close, far)
    assert gate.decision == "promote", gate.reasons
    assert gate.evidence is not None
    assert gate.evidence["measure"] == "squared_error"
    assert _gate(_spec(metric="rmse"), holdout, far, close).error == "NotBetterThanProduction"


def test_every_score_the_gate_reads_has_an_interval() -> None:
    holdout = _holdout(BALANCED)
    chosen, production = _sharp(holdout, 0.9, 1), _sharp(holdout, 0.7, 2)
    judge = HoldoutJudge(holdout)
    base, answers = baseline(judge)
    entry: dict[str, Any] = {"candidate_id": "c00-x", "metrics": holdout.metric_values(chosen)}
    champion: dict[str, Any] = {
        "version": 4,
        "comparable": True,
        "metrics": holdout.metric_values(production),
    }
    decide(
        _spec(),
        cast(ScoredCandidate, entry),
        cast(Champion, champion),
        base,
        judge=judge,
        task="classification",
        answers={"c00-x": [chosen], "champion": [production], "baseline": answers},
        confidence=0.95,
        comparisons=1,
    )
    documents: tuple[Mapping[str, Any], ...] = (entry, champion, base)
    for document in documents:
        intervals = document["intervals"]
        assert set(intervals) == {*CLASSIFICATION_METRICS, "brier_score", "bounded_log_loss"}
        accuracy = intervals["accuracy"]
        assert accuracy["low"] <= document["metrics"]["accuracy"] <= accuracy["high"]
        assert accuracy["confidence"] == 0.95
        assert accuracy["rows"] == len(BALANCED)


def test_a_metric_that_cannot_be_computed_is_none() -> None:
    y = np.array(["a", "a", "b"], dtype=object)
    probabilities = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    scores = reported_classification_metrics(y, y.copy(), probabilities, ["a", "b", "c"])
    assert list(scores) == ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"]
    assert scores["roc_auc"] is None  # class "c" is absent from the holdout
    assert scores["accuracy"] == 1.0
    assert list(reported_regression_metrics(np.array([1.0, 2.0]), np.array([1.0, 3.0]))) == [
        "r2",
        "rmse",
        "mae",
    ]


@pytest.mark.slow
def test_production_is_scored_when_the_new_spec_drops_a_column_it_needs(aws: Stack) -> None:
    """The column is still in the uploaded file: it travels in the split files (not as a
    feature), and the gate compares with production instead of the baseline."""
    from tests.helpers.shapes import run_through_handlers

    body = binary_int_labels()
    first = run_through_handlers(aws, "dropping", body, {"target": "label"})
    assert not isinstance(first, Exception)
    second = run_through_handlers(
        aws, "dropping", body, {"target": "label", "columns": {"drop": ["kind"]}}
    )
    assert not isinstance(second, Exception)
    state, _ = second
    assert state["run"]["schema"]["kept"] == ["kind"]
    assert "kind" not in state["run"]["schema"]["categorical"]
    champion = state["evaluation"]["champion"]
    assert champion["comparable"] is True, champion["reason"]
    assert state["evaluation"]["comparison"]["against"] == "champion"


@pytest.mark.slow
def test_a_column_production_needs_missing_from_the_file_is_named(aws: Stack) -> None:
    from tests.helpers.shapes import run_through_handlers

    body = binary_int_labels()
    assert not isinstance(run_through_handlers(aws, "narrow", body, {"target": "label"}), Exception)
    lines = body.decode().splitlines()
    without_kind = "\n".join(
        ",".join(cells[:2] + cells[3:]) for cells in (line.split(",") for line in lines)
    )
    second = run_through_handlers(
        aws, "narrow", (without_kind + "\n").encode(), {"target": "label"}
    )
    assert not isinstance(second, Exception)
    champion = second[0]["evaluation"]["champion"]
    assert champion["comparable"] is False
    assert (
        "production needs column(s) 'kind', which the uploaded file does not have"
        in (champion["reason"])
    )


@pytest.mark.slow
def test_an_export_that_does_not_match_its_recorded_hash_stops_the_run(aws: Stack) -> None:
    """Evaluate reads the version Train wrote and checks its sha256: a mismatch is not a weak
    candidate but a named failure."""
    state = trained_run(aws, "penguins", penguins_bytes(), target="species")
    state["trained"][0]["onnx_sha256"] = "0" * 64
    with pytest.raises(errors.ArtifactTampered, match="does not match its recorded sha256"):
        aws.evaluate(state["run"], state["trained"])
