"""How a free-text value becomes model inputs: lower-cased words, joined by single spaces.

Training, the gate and serving all read texts with ``normalise`` (a column at a time with
``normalise_all``, which gives the same texts); the exported graph then only splits on spaces
(ONNX ``StringSplit``) before its TF-IDF. Tokenising here rather than in the graph is what keeps
the two identical: skl2onnx's tokeniser reads words with an ASCII pattern (``café`` would
become ``caf``), and ONNX lower-casing is not Python's for every script.

A word is what scikit-learn's default ``token_pattern`` calls one: two or more word characters
(letters and digits of any script, and ``_``). A text keeps its first ``MAX_WORDS`` words: the
graph pads every row of a batch to the longest one, so a single huge note would otherwise cost
rows x its length.
"""

from __future__ import annotations

import re
import string
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Final, cast

import numpy as np

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


# The column path joins its ASCII texts with this character between them, and reads their words
# with the byte table above, where it stays itself: every other byte is a word character or a
# space. A text that holds it takes the per-value path.
_SEPARATOR: Final = "\x00"
_ASCII_WORDS_AND_SEPARATOR: Final = _SEPARATOR.encode() + _ASCII_WORDS[1:]
_SPACE: Final = ord(" ")
# Below this many texts, one call per value costs less than the column path's dozen numpy calls.
_FEW_TEXTS: Final = 8
# Characters per block of the column path. A block's bytes, masks and words are about ten arrays
# of its size. At 24 KB they reuse memory the allocator keeps; one block for a 1,000-note request
# (137 KB) had glibc hand its pages back and fault them in again on every call, 0.8 ms instead of
# 0.43 (blocks of 48 KB already do). It also bounds the memory for a training column of any size.
_BLOCK_CHARACTERS: Final = 24 << 10
# A normalised text of more than MAX_WORDS words is at least this long (words of 2 characters).
_SHORTEST_CUT: Final = 3 * (MAX_WORDS + 1) - 1


def normalise_all(values: Sequence[str | None]) -> list[str]:
    """``[normalise(value) for value in values]``, a column at a time.

    ASCII texts are joined into blocks of about ``_BLOCK_CHARACTERS`` and each block read in a
    few passes over its bytes (the byte table, then numpy masks that drop one-character words
    and runs of spaces): a quarter of the time of a call per text, on 20-word notes. Any other
    text takes ``normalise``; tests/unit/test_text_graph.py holds the two equal.
    """
    texts: list[str | None] = values if type(values) is list else list(values)
    if len(texts) < _FEW_TEXTS:
        return list(map(normalise, texts))
    present = [text or "" for text in texts] if None in texts else cast(list[str], texts)
    ends = list(accumulate(map(len, present)))
    if ends[-1] <= _BLOCK_CHARACTERS:
        return _normalise_block(present)
    normalised: list[str] = []
    start = 0
    while start < len(present):
        # The texts that end within _BLOCK_CHARACTERS of this block's start; at least one.
        reach = (ends[start - 1] if start else 0) + _BLOCK_CHARACTERS
        stop = max(start + 1, bisect_right(ends, reach, start))
        normalised += _normalise_block(present[start:stop])
        start = stop
    return normalised


def _normalise_block(texts: list[str]) -> list[str]:
    """``normalise`` of each of ``texts``: the ASCII ones that do not hold ``_SEPARATOR`` in one
    ``_ascii_block`` when they are not too few, any other one by one."""
    if len(texts) >= _FEW_TEXTS:
        framed = _framed(texts)
        if framed.isascii():
            words = _ascii_block(framed.encode(), len(texts))
            if words is not None:
                return words
        simple = [i for i, text in enumerate(texts) if text.isascii() and _SEPARATOR not in text]
        if len(simple) >= _FEW_TEXTS:
            words = _ascii_block(_framed([texts[i] for i in simple]).encode(), len(simple))
            assert words is not None  # no text holds the separator
            normalised = [""] * len(texts)
            for i, text in zip(simple, words, strict=True):
                normalised[i] = text
            taken = set(simple)
            for i, text in enumerate(texts):
                if i not in taken:
                    normalised[i] = normalise(text)
            return normalised
    return list(map(normalise, texts))


def _framed(texts: list[str]) -> str:
    """``texts`` with ``_SEPARATOR`` between them and at both ends: every word of the block then
    has a byte that is not a word character on either side."""
    return _SEPARATOR.join(["", *texts, ""])


def _ascii_block(block: bytes, count: int) -> list[str] | None:
    """The normalised texts of a block of ``count`` ASCII texts (``_framed``); None if the block
    holds more separators than that."""
    # Letters lower-cased, the separator kept, any other byte but a word character a space.
    code = np.frombuffer(block.translate(_ASCII_WORDS_AND_SEPARATOR), dtype=np.uint8)
    word = code > _SPACE
    # A one-character word (no word byte on either side) is no word. The block's first and last
    # bytes are separators; each mask is computed in place, in as few arrays as can be: a new
    # array of a block's size costs more here than a pass over one.
    lone = np.logical_or(word[:-2], word[2:])
    np.logical_not(lone, out=lone)
    np.logical_and(lone, word[1:-1], out=lone)
    if lone.any():
        np.logical_not(lone, out=lone)
        np.logical_and(word[1:-1], lone, out=word[1:-1])
    # Kept: words, separators, and the first byte after each word (a space or a separator). No
    # space is left before a text's first word, and at most one after its last (stripped below).
    keep = code == 0
    np.logical_or(keep, word, out=keep)
    np.logical_or(keep[1:], word[:-1], out=keep[1:])
    parts = code[keep].tobytes().decode().split(_SEPARATOR)
    if len(parts) != count + 2:
        return None  # a text holds the separator
    normalised = list(map(str.rstrip, parts[1:-1]))
    if max(map(len, normalised)) >= _SHORTEST_CUT:
        normalised = [_first_words(text) for text in normalised]
    return normalised


def _first_words(text: str) -> str:
    """A normalised text cut to its first ``MAX_WORDS`` words."""
    if text.count(" ") < MAX_WORDS:
        return text
    return " ".join(text.split(" ", MAX_WORDS)[:MAX_WORDS])


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
