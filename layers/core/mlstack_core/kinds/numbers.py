"""How a numeric cell becomes a model input: a finite float32-representable number, or missing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np

FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
_BLOCK_ROWS: Final = 8192


def parse_number(cell: str) -> float | None:
    """The cell as a finite float32-representable number, else None. Rejects what float() takes
    but a model cannot: inf, nan, digit separators ("1_000")."""
    try:
        value = float(cell)
    except ValueError:
        return None
    if value - value != 0.0 or abs(value) > FLOAT32_MAX or "_" in cell:
        return None
    return value


def parse_blocks(
    blocks: Iterable[Sequence[str]], n_rows: int
) -> tuple[np.ndarray, tuple[int, str] | None]:
    """(float32 array with NaN for "" cells, first (row, cell) that is not a number or None) of
    a column given as consecutive blocks. Stops at the first block holding a non-number, so a
    text column costs one block, not a failed parse per cell."""
    out = np.empty(n_rows, dtype=np.float32)
    nan = float("nan")
    start = 0
    for block in blocks:
        parsed = [parse_number(c) if c else nan for c in block]
        if None in parsed:
            row = parsed.index(None)
            return np.empty(0, dtype=np.float32), (start + row, block[row])
        # float64 first, then float32: the same rounding the predictor applies to JSON numbers.
        out[start : start + len(block)] = np.asarray(parsed, dtype=np.float64)
        start += len(block)
    return out, None


def parse_cells(cells: Sequence[str]) -> tuple[np.ndarray, tuple[int, str] | None]:
    """``parse_blocks`` over one list of cells."""
    blocks = (cells[start : start + _BLOCK_ROWS] for start in range(0, len(cells), _BLOCK_ROWS))
    return parse_blocks(blocks, len(cells))
