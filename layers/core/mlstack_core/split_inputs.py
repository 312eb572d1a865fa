"""A split's model inputs and target as one binary file, written once by Preprocess.

Train used to read ``train.csv``/``holdout.csv`` back and parse every cell again, in each
candidate: at a million rows about 18 s per candidate, more than most fits (docs/large-path.md).
Preprocess has those inputs already (``kinds.inputs.feeds_from_cells``, the conversions that
serve requests), so it stores them next to the CSV files and Train loads them as arrays.

The file is an ``.npz`` read without pickle: the ``numeric`` input as float32 [N, k]; a string
input (``categorical``, ``text``) as int32 codes [N, w] into one vocabulary of the input's
distinct values, stored as their UTF-8 concatenation and character offsets; the target as
float64 (regression), int64 (integer labels) or codes and a vocabulary (other labels). A
vocabulary keeps each distinct string once, so a categorical cell costs 4 bytes on disk and a
pointer to a shared ``str`` once loaded.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from itertools import pairwise
from typing import Any, Final

import numpy as np

TARGET: Final = "target"
_CODES: Final = ".codes"
_VOCABULARY: Final = ".vocabulary"
_OFFSETS: Final = ".offsets"


def _encode_strings(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """``values`` (object array of str, any shape) as codes into a vocabulary."""
    cells = values.ravel(order="C").tolist()
    # Codes in order of first appearance; dict.fromkeys and map run in C, a generator per cell
    # does not (3x slower at a million rows).
    words = list(dict.fromkeys(cells))
    vocabulary = {word: code for code, word in enumerate(words)}
    codes = np.fromiter(map(vocabulary.__getitem__, cells), dtype=np.int32, count=len(cells))
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(word) for word in words], out=offsets[1:])
    return {
        name + _CODES: codes.reshape(values.shape),
        name + _VOCABULARY: np.frombuffer("".join(words).encode("utf-8"), dtype=np.uint8),
        name + _OFFSETS: offsets,
    }


def _decode_strings(name: str, stored: Mapping[str, np.ndarray]) -> np.ndarray:
    joined = stored[name + _VOCABULARY].tobytes().decode("utf-8")
    bounds = stored[name + _OFFSETS].tolist()
    vocabulary = np.empty(len(bounds) - 1, dtype=object)
    vocabulary[:] = [joined[start:end] for start, end in pairwise(bounds)]
    codes = stored[name + _CODES]
    return vocabulary[codes] if codes.size else np.empty(codes.shape, dtype=object)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The arrays as .npz. Object arrays are refused: reading them back would need pickle.
    (np.savez's own allow_pickle argument only exists from numpy 2.2; the layers allow 2.0.)"""
    pickled = sorted(name for name, array in arrays.items() if array.dtype.hasobject)
    if pickled:
        raise TypeError(f"object arrays cannot be stored without pickle: {pickled}")
    buffer = io.BytesIO()
    savez: Any = np.savez  # typed with allow_pickle: bool, which **arrays could fill
    savez(buffer, **arrays)
    return buffer.getvalue()


class EncodedInputs:
    """The whole table's model inputs and target, string inputs encoded once into codes and one
    vocabulary each: a split's file then selects rows of numbers (``split_bytes``) instead of
    encoding the rows' strings again (and selecting from an object array, which touches every
    str's reference count)."""

    def __init__(self, feeds: Mapping[str, np.ndarray], target: np.ndarray) -> None:
        self._rows: dict[str, np.ndarray] = {}  # arrays whose first axis is the table's rows
        self._shared: dict[str, np.ndarray] = {}  # vocabularies, the same for every split
        for name, feed in [*feeds.items(), (TARGET, target)]:
            if feed.dtype != object:
                self._rows[name] = feed
                continue
            encoded = _encode_strings(name, feed)
            self._rows[name + _CODES] = encoded.pop(name + _CODES)
            self._shared.update(encoded)

    def split_bytes(self, index: np.ndarray | None = None) -> bytes:
        """The ``.npz`` of the rows at ``index`` (every row when None)."""
        rows = self._rows if index is None else {k: v[index] for k, v in self._rows.items()}
        return npz_bytes({**rows, **self._shared})


def split_inputs_bytes(feeds: Mapping[str, np.ndarray], target: np.ndarray) -> bytes:
    """The ``.npz`` of one split: its model inputs (``feeds``) and its target vector."""
    return EncodedInputs(feeds, target).split_bytes()


def read_split_inputs(body: bytes) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(model inputs, target) as ``split_inputs_bytes`` stored them; strings as object arrays."""
    with np.load(io.BytesIO(body), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    names = {name.rsplit(".", 1)[0] if "." in name else name for name in arrays}
    decoded = {
        name: _decode_strings(name, arrays) if name + _CODES in arrays else arrays[name]
        for name in names
    }
    target = decoded.pop(TARGET)
    return decoded, target
