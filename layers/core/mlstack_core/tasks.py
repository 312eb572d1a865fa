"""The two tasks a model learns, named once.

spec.json, the run, the feature schema and the registry spell a task as one of these strings.
Standard library only: the prediction path imports it, and so does the CLI, without numpy.
"""

from __future__ import annotations

from typing import Final, Literal

CLASSIFICATION: Final = "classification"
REGRESSION: Final = "regression"
TASKS: Final = (CLASSIFICATION, REGRESSION)

Task = Literal["classification", "regression"]

# What a served graph answers, by task (the serving contract, mlstack_core.contract.layout).
CLASSIFIER_OUTPUTS: Final = ("label", "probabilities")
REGRESSOR_OUTPUTS: Final = ("variable",)
