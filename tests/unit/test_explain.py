"""Explanations of a served ONNX model (mlstack_core.explain.served) against shap's exact explainer
on the scikit-learn original, with the same background rows: the same values when every
coalition fits the budget, close ones when sampled, and always adding up to the served answer."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
import shap

from mlstack_core.contract import LoadedModel, load_model
from mlstack_core.contract.records import record_chunks
from mlstack_core.contract.request import Batch
from mlstack_core.contract.tensors import build_inputs
from mlstack_core.explain import BACKGROUND_ROWS, served
from mlstack_core.explain.served import (
    COALITIONS_PER_COLUMN,
    Background,
    Budget,
    Players,
    RowExplanation,
    explain_batch,
)
from mlstack_core.kinds.inputs import model_input
from mlstack_core.settings import serving_settings
from mlstack_core.tabular import read_split
from tests.helpers.explained import Explained, explained_model, generated_csv
from tests.helpers.orders import orders_model
from tests.helpers.stack import Stack
from tests.helpers.tables import penguins_bytes

pytestmark = pytest.mark.unit

SHAP_BACKGROUND_ROWS = 12
FAMILIES: dict[str, tuple[dict[str, Any], str]] = {
    "ridge": ({"alpha": 1.0}, "regression"),
    "hist_gradient_boosting": ({"max_iter": 30}, "regression"),
    "logistic_regression": ({"C": 1.0, "max_iter": 500}, "classification"),
    "random_forest": ({"n_estimators": 10, "max_depth": 5}, "classification"),
}
# (numeric, categorical) columns: mixed, all numeric, one feature, all categorical.
SMALL_SHAPES = [(3, 2), (5, 0), (1, 0), (0, 3)]


@cache
def model(family: str, numeric: int, categorical: int, missing: float = 0.0) -> Explained:
    params, task = FAMILIES[family]
    body = generated_csv(
        1200, numeric, categorical, task, seed=numeric * 7 + categorical, missing=missing
    )
    return explained_model(family, params, body, task=task)


def background(explained: Explained) -> tuple[Background, list[dict[str, Any]]]:
    records = explained.records(explained.train, SHAP_BACKGROUND_ROWS)
    columns = list(explained.loaded.layout.inputs)
    data = [[record[c] for c in columns] for record in records]
    return Background.of(columns, data, explained.loaded.layout), records


def shap_exact(explained: Explained, row: dict[str, Any], records: list[dict[str, Any]]) -> Any:
    """shap's exact explainer on the scikit-learn pipeline: each column of a coalition's row is
    the explained row's value (code 0) or background row k's (code k + 1)."""
    columns = list(explained.loaded.layout.inputs)
    layout = explained.loaded.layout

    def original(codes: np.ndarray) -> np.ndarray:
        rows = [
            {
                c: row[c] if code == 0 else records[code - 1][c]
                for c, code in zip(columns, line, strict=True)
            }
            for line in codes.astype(int).tolist()
        ]
        inputs = model_input(build_inputs(Batch.of_instances(rows), layout))
        if layout.task == "classification":
            return np.asarray(explained.pipeline.predict_proba(inputs))
        return np.asarray(explained.pipeline.predict(inputs))

    codes = np.repeat(np.arange(1, len(records) + 1)[:, None], len(columns), axis=1)
    masker = shap.maskers.Independent(codes, max_samples=len(records))
    explanation = shap.explainers.Exact(original, masker)(np.zeros((1, len(columns))))
    values = np.asarray(explanation.values[0], dtype=np.float64)
    return values.reshape(len(columns), -1), np.asarray(explanation.base_values[0]).reshape(-1)


def explain(
    explained: Explained, rows: list[dict[str, Any]], coalitions: int
) -> tuple[Any, list[RowExplanation]]:
    found, _ = background(explained)
    return explain_batch(
        explained.loaded, Batch.of_instances(rows), found, Budget.fixed(coalitions)
    )


def answers(explained: Explained, outputs: list[np.ndarray]) -> np.ndarray:
    if explained.loaded.layout.task == "classification":
        return np.asarray(outputs[1], dtype=np.float64)
    return np.asarray(outputs[0], dtype=np.float64).reshape(-1, 1)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=lambda s: f"{s[0]}num-{s[1]}cat")
def test_exact_explanations_are_shaps_on_the_scikit_learn_original(
    family: str, shape: tuple[int, int]
) -> None:
    explained = model(family, *shape)
    _, records = background(explained)
    rows = explained.records(explained.holdout, 3)
    outputs, found = explain(explained, rows, coalitions=2 ** len(explained.loaded.layout.inputs))
    served = answers(explained, outputs)
    for position, (row, ours) in enumerate(zip(rows, found, strict=True)):
        assert ours.exact
        values, base = shap_exact(explained, row, records)
        # float32 graph against float64 scikit-learn: the parity tolerance's order.
        np.testing.assert_allclose(ours.contributions, values, atol=2e-4)
        np.testing.assert_allclose(ours.base, base, atol=2e-4)
        np.testing.assert_allclose(
            ours.base + ours.contributions.sum(axis=0), served[position], rtol=1e-9, atol=1e-9
        )


@pytest.mark.parametrize("family", list(FAMILIES))
def test_contributions_add_up_to_the_served_answer_on_every_row(family: str) -> None:
    """Sampled (35 columns, a budget of 64 coalitions) and with missing values: base plus
    contributions is the served answer on each row, to float rounding."""
    explained = model(family, 25, 10, missing=0.05)
    rows = explained.records(explained.holdout, 20)
    outputs, found = explain(explained, rows, coalitions=64)
    served = answers(explained, outputs)
    for position, ours in enumerate(found):
        assert not ours.exact
        assert ours.contributions.shape == (35, served.shape[1])
        np.testing.assert_allclose(
            ours.base + ours.contributions.sum(axis=0), served[position], rtol=1e-9, atol=1e-9
        )


def test_a_column_every_background_row_shares_with_the_row_contributes_nothing() -> None:
    explained = model("hist_gradient_boosting", 3, 2)
    _found, records = background(explained)
    row = dict(explained.records(explained.holdout, 1)[0])
    columns = list(explained.loaded.layout.inputs)
    # Every background row and the explained row get the same value in the first column.
    same = columns[0]
    data = [[records[0][same] if c == same else record[c] for c in columns] for record in records]
    row[same] = records[0][same]
    fixed = Background.of(columns, data, explained.loaded.layout)
    _, (ours,) = explain_batch(explained.loaded, Batch.of_instances([row]), fixed, Budget.fixed(64))
    assert ours.contributions[0].tolist() == [0.0]
    assert np.abs(ours.contributions[1:]).sum() > 0


def test_sampled_values_are_close_to_the_exact_ones() -> None:
    """Twelve columns: 4,096 coalitions exactly against a budget of 256 (a sixteenth)."""
    explained = model("hist_gradient_boosting", 8, 4)
    rows = explained.records(explained.holdout, 5)
    _, exact = explain(explained, rows, coalitions=2**12)
    _, sampled = explain(explained, rows, coalitions=256)
    for truth, estimate in zip(exact, sampled, strict=True):
        assert truth.exact
        assert not estimate.exact
        scale = np.abs(truth.contributions).max()
        assert np.abs(estimate.contributions - truth.contributions).max() <= 0.05 * scale


def test_the_budget_grows_with_the_columns_in_play_within_the_settings() -> None:
    """Six coalitions a column, between the settings' graph rows per row (4,096 to 16,384 by
    default) over the background rows: 128 to 512 coalitions of the stack's 32 rows."""
    budget = Budget.of(serving_settings(), BACKGROUND_ROWS)
    assert (budget.least, budget.most) == (128, 512)
    columns = (1, 21, 22, 50, 85, 1000)
    assert [budget.coalitions(n) for n in columns] == [128, 128, 132, 300, 510, 512]
    # However many background rows, a row gets the empty and the full coalition.
    assert Budget.of(serving_settings(), 10_000) == Budget(2, 2)


def test_a_wide_row_is_explained_in_several_graph_runs_and_still_adds_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sixty columns: 360 coalitions of the background rows go to the graph in runs of at most
    GRAPH_ROWS_PER_RUN rows (lowered here to 1,000), and the values add up as from one run."""
    explained = model("ridge", 60, 0)
    rows = explained.records(explained.holdout, 2)
    found, _ = background(explained)
    runs: list[int] = []
    run = LoadedModel.run

    def counted(self: LoadedModel, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        runs.append(len(next(iter(feeds.values()))))
        return run(self, feeds)

    monkeypatch.setattr(LoadedModel, "run", counted)
    monkeypatch.setattr(served, "GRAPH_ROWS_PER_RUN", 1000)
    outputs, found_rows = explain_batch(
        explained.loaded, Batch.of_instances(rows), found, Budget(128, 512)
    )
    assert max(runs) <= 1000
    assert sum(runs) == len(rows) + len(rows) * 360 * found.rows  # the prediction, the games
    for position, ours in enumerate(found_rows):
        assert ours.budget == ours.coalitions == COALITIONS_PER_COLUMN * 60
        np.testing.assert_allclose(
            ours.base + ours.contributions.sum(axis=0), answers(explained, outputs)[position]
        )


def test_datetime_and_text_columns_are_one_player_each() -> None:
    fixture, _ = orders_model()
    loaded = load_model(fixture.onnx, {"schema": fixture.schema}, serving_settings())
    players = Players.of(loaded.layout)
    assert set(players.names) == {"placed_at", "note", "amount", "channel"}
    owners = {name: owner.tolist() for name, owner in players.owners.items()}
    dated = players.names.index("placed_at")
    # The numeric input: the amount, then every part of the timestamp.
    assert owners["numeric"][0] == players.names.index("amount")
    assert set(owners["numeric"][1:]) == {dated}
    assert owners["text"] == [players.names.index("note")]


@pytest.mark.slow
def test_a_registered_version_carries_training_rows_to_explain_with(aws: Stack) -> None:
    """Preprocess samples training rows, Evaluate writes them as a columnar request carries
    them, Register puts them beside the version; explaining a holdout row with them adds up."""
    aws.put_spec("penguins", {"target": "species", "judge": "holdout"})
    state = aws.run_pipeline("penguins", penguins_bytes())
    aws.run_register_step(state, "promote")
    document = aws.registry.get_version("penguins", 1)
    stored = aws.read_json(document["files"]["background"])
    loaded = load_model(
        aws.s3.get_object(Bucket=aws.model_bucket, Key=document["artifact"]["key"])["Body"].read(),
        document,
        serving_settings(),
    )
    assert stored["columns"] == list(loaded.layout.inputs)
    assert len(stored["data"]) == BACKGROUND_ROWS
    # Each is a training row: its cells as the train split holds them.
    train = read_split(
        aws.s3.get_object(Bucket=aws.model_bucket, Key=state["run"]["splits"]["train_key"])[
            "Body"
        ].read()
    )
    training_rows = {
        tuple(row)
        for chunk in record_chunks(train, loaded.layout)
        for row in ([record[c] for c in stored["columns"]] for record in chunk)
    }
    assert all(tuple(row) in training_rows for row in stored["data"])
    background = Background.of(stored["columns"], stored["data"], loaded.layout)
    holdout = read_split(
        aws.s3.get_object(Bucket=aws.model_bucket, Key=state["run"]["splits"]["holdout_key"])[
            "Body"
        ].read()
    )
    rows = next(record_chunks(holdout, loaded.layout, 3))
    outputs, found = explain_batch(loaded, Batch.of_instances(rows), background, Budget.fixed(256))
    for position, ours in enumerate(found):
        assert ours.exact  # four numeric and two categorical columns: 64 coalitions
        np.testing.assert_allclose(
            ours.base + ours.contributions.sum(axis=0), outputs[1][position], rtol=1e-6
        )


@pytest.mark.parametrize("family", ["ridge", "hist_gradient_boosting"])
def test_thirty_two_columns_against_shaps_exact_linear_and_tree_explainers(family: str) -> None:
    """Past what enumeration reaches, shap is exact for the families whose structure it reads:
    a linear model (``LinearExplainer``) and a tree ensemble (``TreeExplainer``, interventional),
    on the pipeline's own inputs, which for numeric columns are one per raw column. Kernel SHAP is
    exact on the linear model (an additive game) from the stack's default budget (six coalitions
    a column: 192); on the trees its error falls with the budget: within 15 % of the row's largest
    contribution at the default budget, within 8 % at 1,024 coalitions. Measured on these rows:
    10.3 % and 5.2 % at worst (the other rows 3 % and 1 %); the bounds leave half as much again
    for the seed's luck, and the error kept falling to 0.8 % at 16,384 coalitions."""
    explained = model(family, 32, 0)
    found, records = background(explained)
    rows = explained.records(explained.holdout, 4)
    layout = explained.loaded.layout
    transform = explained.pipeline.named_steps["preprocess"]
    estimator = explained.pipeline.named_steps["model"]

    def transformed(rows_: list[dict[str, Any]]) -> np.ndarray:
        return np.asarray(
            transform.transform(model_input(build_inputs(Batch.of_instances(rows_), layout))),
            dtype=np.float64,
        )

    reference = transformed(records)
    if family == "ridge":
        explainer = shap.explainers.Linear(estimator, shap.maskers.Independent(reference))
    else:
        explainer = shap.explainers.Tree(
            estimator, data=reference, feature_perturbation="interventional"
        )
    exact = np.asarray(explainer(transformed(rows)).values, dtype=np.float64)
    default = Budget.of(serving_settings(), BACKGROUND_ROWS)  # the stack's coalitions
    assert default.coalitions(32) == COALITIONS_PER_COLUMN * 32
    budgets = (
        ((default, 1e-4), (Budget.fixed(1024), 1e-4))
        if family == "ridge"
        else ((default, 0.15), (Budget.fixed(1024), 0.08))
    )
    for budget, bound in budgets:
        _, ours = explain_batch(explained.loaded, Batch.of_instances(rows), found, budget)
        errors = [
            np.abs(row.contributions[:, 0] - values).max() / np.abs(values).max()
            for row, values in zip(ours, exact, strict=True)
        ]
        assert max(errors) <= bound, (budget, errors)
