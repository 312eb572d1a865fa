"""Shapley values of games whose values are known (mlstack_core.explain.shapley): the exact
enumeration against the definition, Kernel SHAP against the exact values, efficiency always."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from mlstack_core.explain.shapley import kernel_coalitions, shapley_values

pytestmark = pytest.mark.unit


def table_game(values: NDArray[np.float64]) -> tuple[int, object]:
    """A game given by its value on every coalition (row ``code`` = the coalition's bits)."""
    players = int(math.log2(values.shape[0]))
    bits = 1 << np.arange(players)

    def game(masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        return values[(masks * bits).sum(axis=1)]

    return players, game


def by_definition(values: NDArray[np.float64], players: int) -> NDArray[np.float64]:
    """phi_i = sum over coalitions S without i of |S|! (n - |S| - 1)! / n! (v(S + i) - v(S))."""
    out = np.zeros((players, values.shape[1]))
    for player in range(players):
        others = [p for p in range(players) if p != player]
        for size in range(players):
            weight = (
                math.factorial(size) * math.factorial(players - size - 1) / math.factorial(players)
            )
            for members in itertools.combinations(others, size):
                code = sum(1 << p for p in members)
                out[player] += weight * (values[code | (1 << player)] - values[code])
    return out


@settings(max_examples=60, deadline=None)
@given(players=st.integers(1, 7), outputs=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_exact_values_are_the_shapley_formulas(players: int, outputs: int, seed: int) -> None:
    values = np.random.default_rng(seed).normal(size=(2**players, outputs))
    _, game = table_game(values)
    attribution = shapley_values(game, players, budget=2**players)  # type: ignore[arg-type]
    assert attribution.exact
    assert attribution.base == pytest.approx(values[0])
    np.testing.assert_allclose(attribution.values, by_definition(values, players), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    players=st.integers(2, 14),
    budget=st.integers(2, 600),
    seed=st.integers(0, 2**32 - 1),
)
def test_values_always_add_up_to_the_full_coalitions_value(
    players: int, budget: int, seed: int
) -> None:
    values = np.random.default_rng(seed).normal(size=(2**players, 2))
    _, game = table_game(values)
    attribution = shapley_values(game, players, budget=budget, seed=seed)  # type: ignore[arg-type]
    assert attribution.coalitions <= max(budget, 2)
    np.testing.assert_allclose(
        attribution.base + attribution.values.sum(axis=0), values[-1], rtol=1e-9, atol=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(players=st.integers(2, 16), seed=st.integers(0, 2**32 - 1))
def test_an_additive_game_is_solved_exactly_from_a_small_sample(players: int, seed: int) -> None:
    """Kernel SHAP's regression fits an additive game perfectly once the budget holds every
    single player's coalition and its complement (the sizes the kernel weighs most)."""
    rng = np.random.default_rng(seed)
    shares = rng.normal(size=(players, 2))
    base = rng.normal(size=2)

    def game(masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        return base + masks.astype(np.float64) @ shares

    attribution = shapley_values(game, players, budget=8 * players, seed=seed)
    np.testing.assert_allclose(attribution.values, shares, atol=1e-8)
    np.testing.assert_allclose(attribution.base, base, atol=1e-12)


def interaction_game(players: int, seed: int) -> NDArray[np.float64]:
    """Main effects plus pairwise interactions, as a fitted model's answers tend to be."""
    rng = np.random.default_rng(seed)
    main = rng.normal(size=players)
    pairs = rng.normal(scale=0.3, size=(players, players))
    codes = np.arange(2**players)
    masks = ((codes[:, None] >> np.arange(players)) & 1).astype(np.float64)
    return (masks @ main + np.einsum("si,ij,sj->s", masks, np.triu(pairs, 1), masks))[:, None]


@pytest.mark.parametrize("players", [10, 12])
def test_kernel_shap_is_close_to_the_exact_values_within_its_budget(players: int) -> None:
    values = interaction_game(players, seed=players)
    _, game = table_game(values)
    exact = shapley_values(game, players, budget=2**players).values  # type: ignore[arg-type]
    sampled = shapley_values(game, players, budget=256, seed=1)  # type: ignore[arg-type]
    assert not sampled.exact
    scale = np.abs(exact).max()
    assert np.abs(sampled.values - exact).max() <= 0.05 * scale


def test_the_same_seed_gives_the_same_values() -> None:
    values = interaction_game(12, seed=3)
    _, game = table_game(values)
    first = shapley_values(game, 12, budget=200, seed=5)  # type: ignore[arg-type]
    again = shapley_values(game, 12, budget=200, seed=5)  # type: ignore[arg-type]
    assert np.array_equal(first.values, again.values)


def test_no_players_leaves_only_the_base() -> None:
    attribution = shapley_values(lambda masks: np.ones((len(masks), 2)) * 4.0, 0, budget=2)
    assert attribution.values.shape == (0, 2)
    assert attribution.base.tolist() == [4.0, 4.0]


@settings(max_examples=25, deadline=None)
@given(players=st.integers(10, 40), budget=st.integers(2, 600), seed=st.integers(0, 2**32 - 1))
def test_kernel_coalitions_are_distinct_and_fill_the_budget(
    players: int, budget: int, seed: int
) -> None:
    masks, weights = kernel_coalitions(players, budget, np.random.default_rng(seed))
    sizes = masks.sum(axis=1)
    assert len(masks) == budget
    assert len({mask.tobytes() for mask in masks}) == len(masks)
    assert sizes.min() >= 1
    assert sizes.max() <= players - 1
    assert (weights > 0).all()


@pytest.mark.parametrize("players", [9, 14, 30])
def test_each_size_weighs_what_the_shapley_kernel_gives_it(players: int) -> None:
    """Enumerated or drawn, the coalitions of each size carry that size's share of the kernel,
    (n - 1) / (s (n - s)): an enumerated size exactly, a drawn one within four standard errors
    of its draws' count."""
    masks, weights = kernel_coalitions(players, 3000, np.random.default_rng(7))
    sizes = masks.sum(axis=1)
    for size in range(1, players):
        kernel = (players - 1) / (size * (players - size))
        count = int((sizes == size).sum())
        enumerated = count == math.comb(players, size)
        tolerance = 1e-9 if enumerated else 4 / math.sqrt(count)
        assert weights[sizes == size].sum() == pytest.approx(kernel, rel=tolerance), size
