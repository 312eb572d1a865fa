"""Explanations of a served model's answers: Shapley values over the raw input columns
(``shapley``)."""

from mlstack_core.explain.shapley import Attribution, Game, shapley_values

__all__ = ["Attribution", "Game", "shapley_values"]
