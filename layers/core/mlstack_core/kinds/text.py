"""How a free-text value becomes model inputs: lower-cased words, joined by single spaces.

Training, the gate and serving all call ``normalise``; the exported graph then only splits on
spaces (ONNX ``StringSplit``) before its TF-IDF. Tokenising here rather than in the graph is what
keeps the two identical: skl2onnx's tokeniser reads words with an ASCII pattern (``café`` would
become ``caf``), and ONNX lower-casing is not Python's for every script.

A word is what scikit-learn's default ``token_pattern`` calls one: two or more word characters
(letters and digits of any script, and ``_``). A text keeps its first ``MAX_WORDS`` words: the
graph pads every row of a batch to the longest one, so a single huge note would otherwise cost
rows x its length.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

MAX_WORDS: Final = 1000
# Defaults of spec.columns.text: the vocabulary bound per text column, and the longest phrase.
DEFAULT_MAX_TERMS: Final = 1000
DEFAULT_NGRAMS: Final = 2
_WORD: Final = re.compile(r"\b\w\w+\b")
# The same words in ASCII text, where a word character is a letter, a digit or "_": a byte table
# that lower-cases letters and turns every other byte into a space.
_ASCII_WORD_CHARACTERS: Final = frozenset((string.ascii_letters + string.digits + "_").encode())
_ASCII_WORDS: Final = bytes(
    byte if byte in _ASCII_WORD_CHARACTERS else ord(" ") for byte in range(256)
).lower()


def normalise(value: str | None) -> str:
    """The words of ``value``, lower-cased and space-joined; "" for a missing value."""
    if not value:
        return ""
    if value.isascii():
        # The pattern's words at twice its speed (tests/unit/test_text_graph.py checks they are
        # the same): this runs on every served text.
        pieces = value.encode().translate(_ASCII_WORDS).decode().split()
        words = [word for word in pieces if len(word) > 1]
    else:
        words = _WORD.findall(value.lower())
    return " ".join(words if len(words) <= MAX_WORDS else words[:MAX_WORDS])


def normalise_all(values: Sequence[str | None]) -> list[str]:
    return list(map(normalise, values))


def word_counts(values: Iterable[str]) -> list[int]:
    """Words per normalised text."""
    return [text.count(" ") + 1 if text else 0 for text in values]


def common_words(values: Iterable[str], limit: int) -> list[str]:
    """The ``limit`` most frequent words of normalised texts (ties by word)."""
    counts: Counter[str] = Counter()
    for text in values:
        counts.update(text.split())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [word for word, _ in ranked[:limit]]


def unknown_shares(values: Iterable[str], known: frozenset[str]) -> list[float]:
    """Per normalised text, the share of its words outside ``known`` (NaN for an empty text)."""
    shares = []
    is_known = known.__contains__
    for text in values:
        words = text.split()
        # Counted in C: this runs on every sampled served text.
        shares.append(1.0 - sum(map(is_known, words)) / len(words) if words else float("nan"))
    return shares
