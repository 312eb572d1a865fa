"""Explaining a served version's answers on the raw columns a request sends, from its ONNX graph.

A row's explanation is a game whose players are the version's input columns as the request names
them (a datetime column is one player, though the graph sees its parts; a text column is one,
though the graph sees its words): a coalition's value is the graph's answer when the coalition's
columns keep the row's values and the others take a background row's, averaged over the
version's background rows (training rows stored with it). Its Shapley values
(``mlstack_core.explain.shapley``) are the interventional SHAP values against that background;
the empty coalition's value, the mean answer on the background, is the base.

Everything is done on the graph's inputs, built once through the serving contract
(``build_inputs``) for the request and for the background: a coalition's inputs are a selection
between the two, so the graph answers exactly what it would answer a request carrying those
values, and a few session runs answer every coalition of a row.

The budget grows with the columns in play (``Budget``): Kernel SHAP fits one value per column
from the coalitions, so a fixed budget that is ample for ten columns leaves fifty underdetermined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from mlstack_core.contract.layout import CATEGORICAL_INPUT, NUMERIC_INPUT, TEXT_INPUT, FeatureLayout
from mlstack_core.contract.request import Batch
from mlstack_core.contract.session import LoadedModel
from mlstack_core.contract.tensors import build_inputs
from mlstack_core.explain.shapley import Attribution, shapley_values
from mlstack_core.settings import ServingSettings
from mlstack_core.tasks import CLASSIFICATION

# Coalitions per column in play: the sampled values' error against exact ones stayed near 4 % of a
# row's largest contribution (median) from 20 to 50 columns at this rate (docs/explanations.md).
COALITIONS_PER_COLUMN: Final = 6
# Graph rows per session run while explaining: bounds the memory of a wide row's coalitions.
GRAPH_ROWS_PER_RUN: Final = 8192


@dataclass(frozen=True)
class Budget:
    """Coalitions a row may spend: ``COALITIONS_PER_COLUMN`` per column in play, within
    ``least`` and ``most``."""

    least: int
    most: int

    @classmethod
    def of(cls, settings: ServingSettings, background_rows: int) -> Budget:
        """The settings' graph rows per row (``explain_graph_rows`` at least,
        ``explain_max_graph_rows`` at most) as coalitions of ``background_rows`` rows each."""
        rows = max(1, background_rows)
        least = max(2, settings.explain_graph_rows // rows)
        return cls(least, max(least, settings.explain_max_graph_rows // rows))

    @classmethod
    def fixed(cls, coalitions: int) -> Budget:
        return cls(coalitions, coalitions)

    def coalitions(self, columns: int) -> int:
        return min(self.most, max(self.least, COALITIONS_PER_COLUMN * columns))


@dataclass(frozen=True)
class Players:
    """The input columns, in the layout's order, and which of them owns each column of each of
    the graph's inputs."""

    names: tuple[str, ...]
    owners: dict[str, NDArray[np.intp]]

    @classmethod
    def of(cls, layout: FeatureLayout) -> Players:
        names = layout.inputs
        index = {name: i for i, name in enumerate(names)}
        # The numeric input holds the numbers, then each datetime column's parts (build_inputs).
        numeric = [index[name] for name in layout.numeric]
        numeric += [index[column.name] for column in layout.dates for _ in column.parts]
        owned = {
            NUMERIC_INPUT: numeric,
            CATEGORICAL_INPUT: [index[name] for name in layout.categorical],
            TEXT_INPUT: [index[name] for name in layout.text],
        }
        return cls(names, {feed: np.asarray(cols, np.intp) for feed, cols in owned.items() if cols})


def explained_outputs(layout: FeatureLayout, outputs: list[np.ndarray]) -> NDArray[np.float64]:
    """[rows, outputs]: a regressor's value, or a classifier's probability of each class."""
    if layout.task == CLASSIFICATION:
        return np.asarray(outputs[1], dtype=np.float64)
    return np.asarray(outputs[0], dtype=np.float64).reshape(-1, 1)


@dataclass(frozen=True)
class Background:
    """The graph's inputs for the version's background rows."""

    feeds: dict[str, np.ndarray]
    rows: int

    @classmethod
    def of(cls, columns: list[str], data: list[list[Any]], layout: FeatureLayout) -> Background:
        """Rows stored as a columnar request would carry them, through the serving contract."""
        feeds = build_inputs(Batch.of_columns(columns, data), layout)
        return cls(feeds, len(data))


@dataclass(frozen=True)
class RowExplanation:
    """One row's base [outputs] and contributions [players, outputs]."""

    base: NDArray[np.float64]
    contributions: NDArray[np.float64]
    exact: bool
    coalitions: int
    budget: int


def _same(row: np.ndarray, background: np.ndarray) -> NDArray[np.bool_]:
    """Per column, whether every background row holds the row's value (NaN equal to NaN)."""
    if row.dtype == object:
        return np.asarray((background == row[None, :]).all(axis=0), dtype=bool)
    equal = (background == row[None, :]) | (np.isnan(background) & np.isnan(row)[None, :])
    return np.asarray(equal.all(axis=0), dtype=bool)


def explain_row(
    loaded: LoadedModel,
    players: Players,
    row: Mapping[str, np.ndarray],
    background: Background,
    budget: Budget,
    seed: int = 0,
) -> RowExplanation:
    """Shapley values of one row's inputs (``row``: each graph input's values [width]), spending
    ``budget``'s coalitions of ``background.rows`` graph rows each. A column whose value every
    background row shares changes no answer: it gets 0 and is left out of the game."""
    count = len(players.names)
    varies = np.zeros(count, dtype=bool)
    for feed, owner in players.owners.items():
        np.logical_or.at(varies, owner, ~_same(row[feed], background.feeds[feed]))
    playing = np.flatnonzero(varies)
    rows = background.rows

    def answers(masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        chosen = np.ones((masks.shape[0], count), dtype=bool)
        chosen[:, playing] = masks
        feeds = {}
        for feed, owner in players.owners.items():
            from_row = chosen[:, owner][:, None, :]  # [coalitions, 1, width]
            mixed = np.where(from_row, row[feed][None, None, :], background.feeds[feed][None])
            feeds[feed] = mixed.reshape(-1, owner.size).astype(row[feed].dtype, copy=False)
        values = explained_outputs(loaded.layout, loaded.run(feeds))
        return values.reshape(masks.shape[0], rows, -1).mean(axis=1)

    def game(masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        step = max(1, GRAPH_ROWS_PER_RUN // rows)
        return np.vstack([answers(masks[at : at + step]) for at in range(0, len(masks), step)])

    coalitions = budget.coalitions(int(playing.size))
    attribution: Attribution = shapley_values(game, int(playing.size), coalitions, seed)
    contributions = np.zeros((count, attribution.base.size), dtype=np.float64)
    contributions[playing] = attribution.values
    return RowExplanation(
        attribution.base, contributions, attribution.exact, attribution.coalitions, coalitions
    )


def explain_batch(
    loaded: LoadedModel, batch: Batch, background: Background, budget: Budget, seed: int = 0
) -> tuple[list[np.ndarray], list[RowExplanation]]:
    """The graph's answers to ``batch`` (as ``LoadedModel.run_request`` gives them) and each
    row's explanation. A request the contract refuses raises its RequestError first."""
    feeds, outputs = loaded.run_request(batch)
    players = Players.of(loaded.layout)
    explained = [
        explain_row(
            loaded,
            players,
            {feed: values[position] for feed, values in feeds.items()},
            background,
            budget,
            seed,
        )
        for position in range(batch.size)
    ]
    return outputs, explained
