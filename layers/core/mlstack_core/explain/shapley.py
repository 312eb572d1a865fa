"""Shapley values of a game given by its values on coalitions of players.

The players are a model's raw input columns and a coalition's value is what the model answers when
the columns in the coalition keep the explained row's values and the others take a background
row's (``mlstack_core.explain.served``); this module only sees masks and values, so it is tested on
games whose Shapley values are known.

- **Exact** when every coalition fits the budget: ``2**players`` values, each player's value the
  Shapley formula's weighted sum of its marginal contributions.
- **Kernel SHAP** otherwise (Lundberg and Lee, 2017): the values are the weighted least-squares fit
  of the coalitions' values under the Shapley kernel, constrained to add up to the full
  coalition's value. Coalition sizes whose every subset (and complement) fits what is left of the
  budget are enumerated, smallest and largest first, where the kernel puts most of its weight;
  the rest of the budget is drawn at random, each subset with its complement (paired sampling),
  from a fixed seed, so the same row gets the same explanation. This is the procedure of shap's
  ``KernelExplainer``, written here because shap (with numba and pandas) does not fit in the
  serving function next to onnxruntime.

Either way the values add up exactly (to float rounding) to the full coalition's value minus the
empty coalition's: ``base + values.sum(axis=0) == value(all players)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# A game: boolean masks [S, players] -> values [S, outputs].
Game = Callable[[NDArray[np.bool_]], NDArray[np.float64]]


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
    masks, weights = _kernel_coalitions(players, budget - 2, np.random.default_rng(seed))
    ends = np.zeros((2, players), dtype=bool)
    ends[1] = True
    values = np.asarray(game(np.vstack([ends, masks])), dtype=np.float64)
    base, full, sampled = values[0], values[1], values[2:]
    total = full - base
    # Efficiency eliminates the last player: its value is what the others leave of the total.
    last = masks[:, -1:].astype(np.float64)
    design = masks[:, :-1].astype(np.float64) - last
    target = sampled - base[None, :] - last * total[None, :]
    weighted = design * weights[:, None]
    head, *_ = np.linalg.lstsq(weighted.T @ design, weighted.T @ target, rcond=None)
    out = np.vstack([head, total[None, :] - head.sum(axis=0, keepdims=True)])
    return Attribution(base, out, exact=False, coalitions=int(masks.shape[0]) + 2)


def _kernel_coalitions(
    players: int, budget: int, rng: np.random.Generator
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Coalitions other than the empty and full one, and their Shapley kernel weights."""
    sizes = players // 2  # sizes 1..sizes; the others are their complements
    paired = (players - 1) // 2  # sizes whose complement is another size
    share = np.array([(players - 1) / (s * (players - s)) for s in range(1, sizes + 1)])
    share[:paired] *= 2
    share /= share.sum()
    masks: list[NDArray[np.bool_]] = []
    weights: list[float] = []
    left, remaining = budget, share.copy()
    full_sizes = 0
    for size in range(1, sizes + 1):
        count = math.comb(players, size) * (2 if size <= paired else 1)
        if left * remaining[size - 1] / count < 1.0 - 1e-8:
            break
        full_sizes += 1
        left -= count
        if remaining[size - 1] < 1.0:
            remaining = remaining / (1.0 - remaining[size - 1])
        each = share[size - 1] / math.comb(players, size) / (2 if size <= paired else 1)
        for members in itertools.combinations(range(players), size):
            mask = np.zeros(players, dtype=bool)
            mask[list(members)] = True
            masks.append(mask)
            weights.append(each)
            if size <= paired:
                masks.append(~mask)
                weights.append(each)
    fixed = len(masks)
    if full_sizes < sizes and left > 0:
        rest = share[full_sizes:].copy()
        rest[: max(0, paired - full_sizes)] /= 2
        rest /= rest.sum()
        drawn: dict[bytes, int] = {}
        for offset in rng.choice(rest.size, size=4 * left, p=rest):
            if left <= 0:
                break
            size = int(offset) + full_sizes + 1
            mask = np.zeros(players, dtype=bool)
            mask[rng.permutation(players)[:size]] = True
            for member in (mask, ~mask) if size <= paired else (mask,):
                if left <= 0:
                    break
                key = member.tobytes()
                if key in drawn:
                    weights[drawn[key]] += 1.0
                    continue
                drawn[key] = len(masks)
                masks.append(member)
                weights.append(1.0)
                left -= 1
        # The drawn coalitions share the weight the enumerated sizes left.
        drawn_weights = np.asarray(weights[fixed:])
        if drawn_weights.size:
            drawn_weights *= share[full_sizes:].sum() / drawn_weights.sum()
            weights[fixed:] = drawn_weights.tolist()
    return np.asarray(masks, dtype=bool).reshape(-1, players), np.asarray(weights)
