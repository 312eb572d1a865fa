"""Evaluate: ONNX scoring, parity gate, champion/baseline comparison and the decision."""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pytest
from evaluate import decide
from sklearn.dummy import DummyClassifier

from mlstack_core import errors
from tests.conftest import Stack, penguins_bytes
from tests.unit.test_preprocess import synthetic_regression

pytestmark = pytest.mark.unit

CLASSIFICATION_METRICS = {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"}
REGRESSION_METRICS = {"r2", "rmse", "mae"}


def run(aws: Stack, model: str, body: bytes, **spec: Any) -> dict[str, Any]:
    aws.put_spec(model, spec)
    return aws.run_pipeline(model, body)


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
        c["metrics"]["accuracy"] for c in evaluation["candidates"]
    )
    for candidate in evaluation["candidates"]:
        assert candidate["excluded"] is None
        assert candidate["parity"]["passed"] is True
        assert candidate["parity"]["label_agreement"] >= 0.999
        assert candidate["parity"]["max_abs_diff"] < 1e-3
    assert "baseline" in evaluation["reasons"][-1]

    report = aws.read_json(evaluation["report_key"])
    assert report["decision"] == evaluation["decision"]
    assert report["best"]["candidate_id"] == best["candidate_id"]
    assert evaluation["report_key"] == f"runs/penguins/{state['run']['run_id']}/evaluation.json"


def test_binary_integer_labels(aws: Stack) -> None:
    state = run(aws, "binary", binary_int_labels(), target="label", metric="roc_auc")
    schema = state["run"]["schema"]
    assert schema["label_type"] == "int"
    assert schema["classes"] == [0, 1]
    best = state["evaluation"]["best"]
    assert best["metrics"]["roc_auc"] > 0.8
    assert state["evaluation"]["baseline"]["metrics"]["roc_auc"] == pytest.approx(0.5)
    assert state["evaluation"]["decision"] == "promote"


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
    assert best["metrics"]["rmse"] == min(c["metrics"]["rmse"] for c in evaluation["candidates"])
    assert best["metrics"]["rmse"] < evaluation["baseline"]["metrics"]["rmse"]
    assert all(
        c["parity"]["passed"] and c["parity"]["label_agreement"] is None
        for c in evaluation["candidates"]
    )
    assert evaluation["decision"] == "promote"


# -- against production ---------------------------------------------------------------------------


def test_champion_is_scored_on_the_same_holdout(aws: Stack) -> None:
    first = run(aws, "penguins", penguins_bytes(), target="species")
    version = aws.promote(first)

    second = aws.run_pipeline("penguins", penguins_bytes())
    champion = second["evaluation"]["champion"]
    assert champion["version"] == version
    assert champion["comparable"] is True
    # Same data and seed: same holdout, so production scores what it scored before.
    assert champion["metrics"] == pytest.approx(first["evaluation"]["best"]["metrics"])
    assert second["evaluation"]["comparison"]["against"] == "champion"
    assert second["evaluation"]["decision"] == "promote"  # ties pass min_improvement 0.0
    assert f"production v{version}" in second["evaluation"]["reasons"][-1]

    aws.put_spec("penguins", {"target": "species", "min_improvement": 0.05})
    third = aws.run_pipeline("penguins", penguins_bytes())
    assert third["evaluation"]["decision"] == "reject"
    assert "does not beat production" in third["evaluation"]["reasons"][-1]


def test_incompatible_champion_falls_back_to_the_baseline(aws: Stack) -> None:
    aws.promote(run(aws, "penguins", penguins_bytes(), target="species"))
    state = run(aws, "penguins", penguins_bytes(), target="species", columns={"drop": ["island"]})
    evaluation = state["evaluation"]
    assert evaluation["champion"]["comparable"] is False
    assert "'island'" in evaluation["champion"]["reason"]
    assert evaluation["comparison"]["against"] == "baseline"
    assert any("not comparable" in r for r in evaluation["reasons"])
    assert evaluation["decision"] == "promote"


def test_threshold_gates_the_decision(aws: Stack) -> None:
    state = run(
        aws, "penguins", penguins_bytes(), target="species", metric="log_loss", threshold=1e-9
    )
    evaluation = state["evaluation"]
    assert evaluation["greater_is_better"] is False
    assert evaluation["decision"] == "reject"
    assert "is above threshold" in evaluation["reasons"][0]


# -- exclusions ------------------------------------------------------------------------------------


def test_parity_failure_excludes_the_candidate(aws: Stack) -> None:
    aws.put_spec("penguins", {"target": "species"})
    state = aws.upload("penguins", penguins_bytes())
    state["run"] = aws.preprocess(state)
    trained = aws.train(state["run"])
    # Swap one candidate's scikit-learn twin for a different model: its ONNX no longer agrees.
    victim = trained[0]
    impostor = DummyClassifier(strategy="stratified", random_state=0)
    impostor.fit(np.zeros((3, 1)), np.array(state["run"]["schema"]["classes"], dtype=object))
    buffer = io.BytesIO()
    joblib.dump(_AnyInput(impostor), buffer)
    aws.s3.put_object(Bucket=aws.model_bucket, Key=victim["sklearn_key"], Body=buffer.getvalue())

    evaluation = aws.evaluate(state["run"], trained)
    excluded = {c["candidate_id"]: c["excluded"] for c in evaluation["candidates"]}
    assert excluded[victim["candidate_id"]].startswith("ONNX/sklearn parity out of tolerance")
    assert evaluation["best"]["candidate_id"] != victim["candidate_id"]
    assert sum(1 for reason in excluded.values() if reason) == 1


def test_no_viable_candidate(aws: Stack) -> None:
    aws.put_spec(
        "penguins",
        {
            "target": "species",
            "candidates": [
                {"family": "random_forest", "params": {"max_depth": -1}},
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


class _AnyInput:
    """A picklable stand-in with the Pipeline methods Evaluate calls."""

    def __init__(self, model: DummyClassifier) -> None:
        self.model = model
        self.classes_ = model.classes_

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.model.predict(np.zeros((len(rows), 1)))

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(np.zeros((len(rows), 1)))


# -- the decision rule ----------------------------------------------------------------------------


def _spec(**fields: Any) -> dict[str, Any]:
    return {"metric": "accuracy", "threshold": None, "min_improvement": 0.0, **fields}


def _best(value: float, metric: str = "accuracy") -> dict[str, Any]:
    return {"candidate_id": "c00-x", "metrics": {metric: value}}


def _reference(value: float, metric: str = "accuracy") -> dict[str, Any]:
    return {"strategy": "most_frequent", "metrics": {metric: value}}


def _champion(value: float, metric: str = "accuracy") -> dict[str, Any]:
    return {"version": 4, "comparable": True, "metrics": {metric: value}}


@pytest.mark.parametrize(
    ("spec", "best", "champion", "baseline", "decision"),
    [
        (_spec(), 0.9, None, 0.5, "promote"),
        (_spec(), 0.5, None, 0.5, "reject"),  # matching a trivial model is not enough
        (_spec(), 0.9, 0.9, 0.5, "promote"),  # a tie with production passes min_improvement 0
        (_spec(min_improvement=0.02), 0.91, 0.9, 0.5, "reject"),
        (_spec(min_improvement=0.01), 0.91, 0.9, 0.5, "promote"),  # exactly enough
        (_spec(min_improvement=-0.05), 0.88, 0.9, 0.5, "promote"),  # tolerated regression
        (_spec(threshold=0.95), 0.93, 0.5, 0.4, "reject"),
        (_spec(metric="rmse"), 1.0, 1.5, 3.0, "promote"),  # lower is better
        (_spec(metric="rmse"), 2.0, 1.5, 3.0, "reject"),
        (_spec(metric="rmse", threshold=0.5), 0.4, 0.6, 3.0, "promote"),
        (_spec(metric="rmse", threshold=0.5), 0.55, 0.6, 3.0, "reject"),
    ],
)
def test_decision_rule(
    spec: dict[str, Any], best: float, champion: float | None, baseline: float, decision: str
) -> None:
    metric = spec["metric"]
    outcome, reasons, comparison = decide(
        spec,
        _best(best, metric),
        None if champion is None else _champion(champion, metric),
        _reference(baseline, metric),
    )
    assert outcome == decision, reasons
    assert comparison["against"] == ("baseline" if champion is None else "champion")
    assert reasons
