"""How a run is judged: on a holdout, or, for small tables, by repeated cross-validation.

One holdout of a small table both throws away a fifth of the data and picks the winner by luck.
Below ``CrossValidateBelowRows`` usable rows (a stack parameter; the measurement behind its
default is in docs/small-tables.md), or when the spec's ``judge`` says so, a run is judged by
repeated K-fold cross-validation instead:

- Preprocess writes every row to both split files (the "holdout" file is the whole table, which
  the ONNX export's parity, the serving rehearsal and production are scored on) and a fold
  assignment: ``repeats`` rows of one fold number per table row, stratified by class.
- Train fits each candidate once per fold on the other folds and stores its answers on the fold's
  rows (out of fold), then fits the version that ships on all rows.
- Evaluate chooses and judges on the out-of-fold answers: a candidate's score is the mean over the
  repeats, and every interval is the corrected repeated cross-validation interval of the folds'
  values (mlstack_core.evidence.cross_validated_interval). Production answers each row once; its
  fold values pair with the candidate's on the same rows.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

Judgement = Literal["holdout", "cross_validation"]
HOLDOUT: Final[Judgement] = "holdout"
CROSS_VALIDATION: Final[Judgement] = "cross_validation"

FOLDS = 5
REPEATS = 3


def judgement_for(rows: int, spec: Mapping[str, Any], below_rows: int) -> Judgement:
    """The spec's ``judge`` when it names one, else cross-validation below ``below_rows``."""
    asked = spec.get("judge") or "auto"
    if asked == HOLDOUT:
        return "holdout"
    if asked == CROSS_VALIDATION or rows < below_rows:
        return "cross_validation"
    return "holdout"


def assign_folds(
    labels: NDArray[Any] | None, rows: int, *, folds: int, repeats: int, seed: int
) -> NDArray[np.int8]:
    """[repeats, rows] fold numbers. Each repeat deals the rows of each class (or all rows) in a
    new random order round-robin over the folds, so every fold holds each class's share."""
    generator = np.random.default_rng(seed)
    assignment = np.empty((repeats, rows), dtype=np.int8)
    groups = (
        [np.arange(rows)]
        if labels is None
        else [np.flatnonzero(labels == label) for label in sorted(set(labels.tolist()), key=str)]
    )
    for repeat in range(repeats):
        offset = 0
        for members in groups:
            shuffled = generator.permutation(members)
            assignment[repeat, shuffled] = (np.arange(shuffled.size) + offset) % folds
            # The next class starts where this one stopped: fold sizes stay within one row.
            offset += shuffled.size
    return assignment


def folds_bytes(assignment: NDArray[np.int8]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, assignment, allow_pickle=False)
    return buffer.getvalue()


def read_folds(body: bytes) -> NDArray[np.int8]:
    assignment: NDArray[np.int8] = np.load(io.BytesIO(body), allow_pickle=False)
    return assignment
