"""Shapley values of a game given by its values on coalitions of players.

The players are a model's raw input columns and a coalition's value is what the model answers when
the columns in the coalition keep the explained row's values and the others take a background
row's (``mlstack_core.explain.served``); this module only sees masks and values, so it is tested on
games whose Shapley values are known.

- **Exact** when every coalition fits the budget: ``2**players`` values, each player's value the
  Shapley formula's weighted sum of its marginal contributions.
- **Kernel SHAP** otherwise (Lundberg and Lee, 2017): the values are the weighted least-squares fit
  of the coalitions' values under the Shapley kernel, constrained to add up to the full
  coalition's value. The coalitions are drawn as Leverage SHAP draws them (Musco and Witter,
  2025): sizes uniformly rather than by the kernel's mass (which crowds the budget into sizes 1
  and n - 1), each coalition with its complement (paired sampling), weighted by the kernel over
  the draw's probability, from a fixed seed so the same row gets the same explanation. Against
  shap's ``KernelExplainer`` procedure (its sizes by kernel mass, the heaviest enumerated first)
  this halved the worst error at the same budget on 32 and 50 columns (docs/explanations.md).
  Written in numpy because shap (with numba and pandas) does not fit in the serving function next
  to onnxruntime.

Either way the values add up exactly (to float rounding) to the full coalition's value minus the
empty coalition's: ``base + values.sum(axis=0) == value(all players)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

# A game: boolean masks [S, players] -> values [S, outputs].
Game = Callable[[NDArray[np.bool_]], NDArray[np.float64]]

# Draws allowed per coalition asked for, before a budget near 2**players settles for fewer.
MAX_DRAWS_PER_COALITION: Final = 20


@dataclass(frozen=True)
class Attribution:
    """Shapley values [players, outputs], the empty coalition's value (the base) [outputs], and
    how they were found."""

    base: NDArray[np.float64]
    values: NDArray[np.float64]
    exact: bool
    coalitions: int


def shapley_values(game: Game, players: int, budget: int, seed: int = 0) -> Attribution:
    """The Shapley values of ``game``, spending at most ``budget`` coalition values (at least the
    empty and the full one): exact when ``2**players <= budget``, Kernel SHAP otherwise."""
    if players < 0 or budget < 2:
        raise ValueError("a game needs players >= 0 and a budget of at least two coalitions")
    if players == 0:
        base = np.asarray(game(np.zeros((1, 0), dtype=bool)), dtype=np.float64)[0]
        return Attribution(base, np.zeros((0, base.size)), exact=True, coalitions=1)
    if players <= 30 and 2**players <= budget:
        return _exact(game, players)
    return _kernel(game, players, budget, seed)


def _exact(game: Game, players: int) -> Attribution:
    codes = np.arange(2**players)
    bits = 1 << np.arange(players)
    masks = (codes[:, None] & bits[None, :]) != 0
    values = np.asarray(game(masks), dtype=np.float64)
    sizes = masks.sum(axis=1)
    # A coalition of size s without player i weighs s! (n - s - 1)! / n!.
    weight = np.array(
        [1.0 / (players * math.comb(players - 1, s)) for s in range(players)], dtype=np.float64
    )
    out = np.empty((players, values.shape[1]), dtype=np.float64)
    for player in range(players):
        without = codes[~masks[:, player]]
        gain = values[without | (1 << player)] - values[without]
        out[player] = weight[sizes[without]] @ gain
    return Attribution(values[0], out, exact=True, coalitions=int(codes.size))


def _kernel(game: Game, players: int, budget: int, seed: int) -> Attribution:
    masks, weights = kernel_coalitions(players, budget - 2, np.random.default_rng(seed))
    ends = np.zeros((2, players), dtype=bool)
    ends[1] = True
    values = np.asarray(game(np.vstack([ends, masks])), dtype=np.float64)
    base, full, sampled = values[0], values[1], values[2:]
    total = full - base
    # Efficiency eliminates the last player: its value is what the others leave of the total.
    last = masks[:, -1:].astype(np.float64)
    design = masks[:, :-1].astype(np.float64) - last
    target = sampled - base[None, :] - last * total[None, :]
    # The weighted fit as an ordinary one on rows scaled by the weights' roots: the same
    # (minimum-norm) solution as the normal equations, from a smaller factorisation when a wide
    # row has fewer coalitions than columns.
    root = np.sqrt(weights)[:, None]
    head, *_ = np.linalg.lstsq(design * root, target * root, rcond=None)
    out = np.vstack([head, total[None, :] - head.sum(axis=0, keepdims=True)])
    return Attribution(base, out, exact=False, coalitions=int(masks.shape[0]) + 2)


def _kernel_weight(players: int, size: int) -> float:
    """The Shapley kernel's weight of one coalition of ``size`` players."""
    return (players - 1) / (math.comb(players, size) * size * (players - size))


def kernel_coalitions(
    players: int, budget: int, rng: np.random.Generator
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """``budget`` distinct coalitions other than the empty and full one, and their regression
    weights. The smallest sizes and their complements, where the kernel weighs each coalition
    most, are enumerated while they take at most half the budget, each at its kernel weight. The
    rest are drawn: a size uniformly among the others (the Shapley regression's leverage scores
    are equal across sizes), then a coalition of that size uniformly, with its complement; each
    draw weighs the kernel's weight over its probability, so the draws stand for the sizes left,
    and a coalition drawn again adds its weight to the first draw's."""
    masks: list[NDArray[np.bool_]] = []
    weights: list[float] = []
    smallest = 1
    while smallest < players - smallest:
        count = 2 * math.comb(players, smallest)
        if len(masks) + count > budget // 2:
            break
        for chosen in itertools.combinations(range(players), smallest):
            mask = np.zeros(players, dtype=bool)
            mask[list(chosen)] = True
            for member in (mask, ~mask):
                masks.append(member)
                weights.append(_kernel_weight(players, smallest))
        smallest += 1
    enumerated = len(masks)
    sizes = np.arange(smallest, players - smallest + 1)
    drawn: dict[bytes, int] = {}
    draws = 0
    # Distinct coalitions get rare as the budget nears all of them; the draws are bounded.
    for _ in range(MAX_DRAWS_PER_COALITION * budget):
        if len(masks) >= budget or sizes.size == 0:
            break
        size = int(rng.choice(sizes))
        mask = np.zeros(players, dtype=bool)
        mask[rng.permutation(players)[:size]] = True
        for member, members in ((mask, size), (~mask, players - size)):
            # kernel weight over probability, 1 / (len(sizes) C(n, s)); divided by the draws below
            weight = _kernel_weight(players, members) * sizes.size * math.comb(players, members)
            draws += 1
            key = member.tobytes()
            if key in drawn:
                weights[drawn[key]] += weight
            elif len(masks) < budget:
                drawn[key] = len(masks)
                masks.append(member)
                weights.append(weight)
    if draws:
        weights[enumerated:] = (np.asarray(weights[enumerated:]) / draws).tolist()
    return np.asarray(masks, dtype=bool).reshape(-1, players), np.asarray(weights)
