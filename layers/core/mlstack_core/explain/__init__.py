"""Explanations of a served model's answers on the raw input columns.

``shapley`` (numpy only) computes Shapley values of a game; ``served`` (the serving contract,
so onnxruntime) makes a version's row that game. Preprocess, which has no onnxruntime, imports
only this package's constants.
"""

from typing import Final

# Training rows stored with each version, that every explained row is compared with.
BACKGROUND_ROWS: Final = 32
