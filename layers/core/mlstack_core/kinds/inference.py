"""Which kind each feature column is, and why: the profile Preprocess records in the schema.

The rules, in order, for a column the spec does not declare (``spec.columns.types``):

1. Every value a number: ``numeric``, unless the numbers are distinct integers under a key-like
   name (``id``, ``order_id``, ``CustomerKey``), or count the rows one by one in file order under
   a row-number name (``index``, ``row``, ``Unnamed: 0``): then ``identifier``. Without such a
   name, distinct integers stay numeric: a week number or a price may be distinct too.
2. At least ``DATE_SHARE`` of a sample of the values read as dates in one format (``datetimes``):
   ``datetime``. Day-first and month-first dates that no value tells apart stay categorical, with
   an ``AmbiguousDates`` warning naming the fix.
3. Every value distinct, at least ``MIN_IDENTIFIER_ROWS`` of them, none with a space:
   ``identifier``.
4. Values of several words that mostly differ (``TEXT_WORDS`` words on average and more than half
   distinct, or ``LONG_TEXT_WORDS`` on average): ``text``.
5. Otherwise ``categorical``.

Each reading carries its reason in words, which the run's output, the registry view and the model
card show. Columns are read a block of rows at a time, never held whole as str objects.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np

from mlstack_core.documents import DataWarning, Feature, Identifier
from mlstack_core.kinds import CATEGORICAL, DATETIME, IDENTIFIER, NUMERIC, TEXT, datetimes
from mlstack_core.kinds import text as text_kind
from mlstack_core.kinds.numbers import parse_blocks

DATE_SHARE: Final = 0.95
DATE_SAMPLE: Final = 2000
MIN_IDENTIFIER_ROWS: Final = 20
TEXT_WORDS: Final = 3.0
LONG_TEXT_WORDS: Final = 6.0
TEXT_SAMPLE: Final = 5000
HIGH_CARDINALITY_SHARE: Final = 0.5
HIGH_CARDINALITY_COUNT: Final = 1000
# Keeps the run object (which every Map iteration receives) well under Step Functions' 256 KB.
MAX_SCHEMA_CATEGORIES: Final = 200
_KEY_SUFFIX: Final = re.compile(r"(?:^|[_\W])(?:id|uuid|guid|key)$", re.I)
_CAMEL_KEY: Final = re.compile(r"[a-z0-9](?:Id|ID|Key|Uuid|UUID)$")
_ROW_NAME: Final = re.compile(
    r"(?:index|idx|row|rownum|row_?(?:no|nr|number|index)|no|nr|#|unnamed: ?\d+)", re.I
)
_WHITESPACE: Final = re.compile(r"\s")


class ColumnBlocks(Protocol):
    """A table's columns, one block of rows at a time (``tabular.Columns``)."""

    def blocks(self, name: str) -> Iterator[list[str]]: ...

    def numbers(self, name: str) -> np.ndarray | None: ...


@dataclass
class Profile:
    """The schema's feature entries, the identifiers, advisory warnings, and the numeric
    columns already parsed (so the split files need not parse them again)."""

    features: list[Feature] = field(default_factory=list)
    identifiers: list[Identifier] = field(default_factory=list)
    warnings: list[DataWarning] = field(default_factory=list)
    numeric_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    unparseable: list[str] = field(default_factory=list)
    unreadable_dates: list[str] = field(default_factory=list)


def row_number_like(name: str) -> bool:
    """Whether a column's name says it numbers the rows: ``index``, ``row``, ``Unnamed: 0``."""
    return bool(_ROW_NAME.fullmatch(name.strip()))


def key_like(name: str) -> bool:
    """Whether a column's name says it is a key: ``id``, ``order_id``, ``CustomerKey``."""
    return bool(_KEY_SUFFIX.search(name.strip()) or _CAMEL_KEY.search(name.strip()))


def _count(columns: ColumnBlocks, name: str, in_train: np.ndarray) -> tuple[Counter[str], set[str]]:
    """(count of each non-missing value, the values seen in training rows)."""
    counts: Counter[str] = Counter()
    seen_in_train: set[str] = set()
    start = 0
    for block in columns.blocks(name):
        counts.update(block)
        mask = in_train[start : start + len(block)].tolist()
        seen_in_train.update(itertools.compress(block, mask))
        start += len(block)
    counts.pop("", None)
    seen_in_train.discard("")
    return counts, seen_in_train


def _counts_rows(values: np.ndarray) -> bool:
    """Integers stepping by exactly 1 (up or down) in file order, with no gap: a row number."""
    if np.isnan(values).any():
        return False
    steps = np.diff(values.astype(np.float64))
    return bool(np.all(steps == 1.0) or np.all(steps == -1.0))


def _numeric_identifier(name: str, values: np.ndarray) -> str | None:
    """Why a column of numbers is an identifier, or None. The name must say so: a column of
    distinct whole numbers may as well be a price or a week number, which are features."""
    present = values[~np.isnan(values)]
    if present.size < MIN_IDENTIFIER_ROWS or not np.all(np.floor(present) == present):
        return None
    if np.unique(present).size != present.size:
        return None
    if row_number_like(name) and _counts_rows(values):
        return f"its name says it numbers the rows, and its {present.size:,} values count them"
    if key_like(name):
        return f"its name names a key, and each of its {present.size:,} whole numbers differs"
    return None


def _sample(counts: Counter[str], limit: int) -> list[str]:
    """Up to ``limit`` distinct values, most frequent first (ties in first-seen order)."""
    return [value for value, _ in counts.most_common(limit)]


def _mean_words(counts: Counter[str]) -> float:
    sample = _sample(counts, TEXT_SAMPLE)
    weights = [counts[value] for value in sample]
    words = [len(value.split()) for value in sample]
    return float(np.average(words, weights=weights)) if sample else 0.0


def _example(value: str) -> str:
    return repr(value if len(value) <= 40 else f"{value[:37]}...")


@dataclass(frozen=True)
class _DateReading:
    form: str | None
    share: float
    tied: list[str]
    example: str


def _read_dates(counts: Counter[str], declared_form: str | None) -> _DateReading:
    sample = _sample(counts, DATE_SAMPLE)
    if declared_form:
        share = datetimes.readable_share(sample, declared_form)
        return _DateReading(declared_form if share else None, share, [], sample[0])
    form, share, tied = datetimes.best_format(sample)
    return _DateReading(form, share, tied, sample[0] if sample else "")


def _text_entry(name: str, reason: str, settings: Mapping[str, Any]) -> Feature:
    return {
        "name": name,
        "kind": TEXT,
        "reason": reason,
        "max_terms": int(settings.get("max_terms", text_kind.DEFAULT_MAX_TERMS)),
        "ngrams": int(settings.get("ngrams", text_kind.DEFAULT_NGRAMS)),
    }


def _datetime_entry(
    name: str, columns: ColumnBlocks, form: str, reason: str, profile: Profile
) -> Feature:
    """The entry of a datetime column: its format, parts and the range it covers."""
    has_time = False
    first = last = None
    unreadable = present = 0
    for block in columns.blocks(name):
        for value in block:
            if not value:
                continue
            present += 1
            moment = datetimes.parse(value, form)
            if moment is None:
                unreadable += 1
                continue
            has_time = has_time or bool(moment.hour or moment.minute or moment.second)
            day = datetimes.instant_days(moment)
            first = day if first is None else min(first, day)
            last = day if last is None else max(last, day)
    if unreadable:
        profile.warnings.append(
            {
                "code": "UnreadableDates",
                "column": name,
                "message": f"{unreadable:,} of {present:,} values do not read as {form} dates; "
                "they count as missing",
            }
        )
    return {
        "name": name,
        "kind": DATETIME,
        "reason": reason,
        "format": form,
        "parts": datetimes.parts_for(has_time),
        "first": None if first is None else datetimes.to_text(first),
        "last": None if last is None else datetimes.to_text(last),
    }


def profile_features(
    columns: ColumnBlocks,
    names: Sequence[str],
    n_rows: int,
    in_train: np.ndarray,
    column_spec: Mapping[str, Any],
) -> Profile:
    """Read every feature column's kind (``column_spec`` is the spec's ``columns``).

    Raises UnparseableNumber for a declared numeric column holding text, UnreadableDates for a
    declared datetime column none of whose values reads as a date (or whose day/month order is
    ambiguous and not declared)."""
    declared: Mapping[str, str] = column_spec.get("types") or {}
    forms: Mapping[str, str] = column_spec.get("date_formats") or {}
    text_settings: Mapping[str, Any] = column_spec.get("text") or {}
    profile = Profile()
    for name in names:
        kind = declared.get(name)
        because = "declared in spec.columns.types"
        if kind == IDENTIFIER:
            profile.identifiers.append({"name": name, "kind": IDENTIFIER, "reason": because})
            continue
        if kind in (None, NUMERIC):
            known = columns.numbers(name)
            array, bad = (
                (known.astype(np.float32), None)
                if known is not None
                else parse_blocks(columns.blocks(name), n_rows)
            )
            if bad is None:
                identifier = None if kind else _numeric_identifier(name, array)
                if identifier:
                    profile.identifiers.append(
                        {"name": name, "kind": IDENTIFIER, "reason": identifier}
                    )
                    continue
                _constant_number(name, array, profile)
                profile.numeric_arrays[name] = array
                reason = because if kind else "every value is a number"
                profile.features.append({"name": name, "kind": NUMERIC, "reason": reason})
                continue
            if kind == NUMERIC:
                row, value = bad
                profile.unparseable.append(
                    f"column {name!r} is declared numeric but data row {row + 1} "
                    f"(line {row + 2}) holds {value!r}"
                )
                continue
        counts, seen_in_train = _count(columns, name, in_train)
        if kind == TEXT:
            profile.features.append(_text_entry(name, because, text_settings))
            continue
        if kind in (None, DATETIME):
            dates = _read_dates(counts, forms.get(name))
            if kind == DATETIME:
                if dates.form is None or dates.tied:
                    profile.unreadable_dates.append(_date_problem(name, dates))
                    continue
                profile.features.append(
                    _datetime_entry(name, columns, dates.form, because, profile)
                )
                continue
            if dates.form is not None and dates.share >= DATE_SHARE:
                if dates.tied:
                    profile.warnings.append(
                        {
                            "code": "AmbiguousDates",
                            "column": name,
                            "message": _date_problem(name, dates),
                        }
                    )
                else:
                    reason = (
                        f"{dates.share:.0%} of its values read as {dates.form} dates "
                        f"(e.g. {_example(dates.example)})"
                    )
                    profile.features.append(
                        _datetime_entry(name, columns, dates.form, reason, profile)
                    )
                    continue
        non_missing = sum(counts.values())
        if kind is None:
            reading = _string_reading(name, counts, non_missing)
            if reading is not None:
                found, reason = reading
                if found == IDENTIFIER:
                    profile.identifiers.append({"name": name, "kind": IDENTIFIER, "reason": reason})
                else:
                    profile.features.append(_text_entry(name, reason, text_settings))
                continue
        profile.features.append(
            _categorical_entry(name, counts, seen_in_train, non_missing, kind, profile)
        )
    return profile


def _string_reading(name: str, counts: Counter[str], non_missing: int) -> tuple[str, str] | None:
    """(identifier or text, reason) for a column of strings, or None for categorical."""
    distinct = len(counts)
    if (
        distinct == non_missing
        and non_missing >= MIN_IDENTIFIER_ROWS
        and not any(_WHITESPACE.search(value.strip()) for value in counts)
    ):
        return IDENTIFIER, f"each of its {non_missing:,} values is different and none holds a space"
    words = _mean_words(counts)
    if distinct > 1 and (
        (words >= TEXT_WORDS and distinct > HIGH_CARDINALITY_SHARE * non_missing)
        or words >= LONG_TEXT_WORDS
    ):
        return TEXT, (
            f"{distinct:,} distinct values in {non_missing:,} rows, {words:.1f} words on average"
        )
    return None


def _categorical_entry(
    name: str,
    counts: Counter[str],
    seen_in_train: set[str],
    non_missing: int,
    declared: str | None,
    profile: Profile,
) -> Feature:
    if len(counts) == 1:
        profile.warnings.append(
            {
                "code": "ConstantColumn",
                "column": name,
                "message": f"every value is {next(iter(counts))!r}",
            }
        )
    if len(counts) > HIGH_CARDINALITY_COUNT or (
        len(counts) > 1 and len(counts) > HIGH_CARDINALITY_SHARE * non_missing
    ):
        profile.warnings.append(
            {
                "code": "HighCardinality",
                "column": name,
                "message": f"{len(counts)} distinct values in {non_missing} rows; one-hot encoding "
                "it mostly memorises rows (declare it identifier or text in spec.columns.types, "
                "or drop it)",
            }
        )
    # The categories the model learns are those of the training rows.
    learned = sorted(seen_in_train)
    reason = (
        "declared in spec.columns.types"
        if declared
        else f"{len(counts):,} distinct values in {non_missing:,} rows"
    )
    entry: Feature = {
        "name": name,
        "kind": CATEGORICAL,
        "reason": reason,
        "categories": learned[:MAX_SCHEMA_CATEGORIES],
        "n_categories": len(learned),
    }
    if len(learned) > MAX_SCHEMA_CATEGORIES:
        entry["categories_truncated"] = True
    return entry


def _constant_number(name: str, values: np.ndarray, profile: Profile) -> None:
    present = values[~np.isnan(values)]
    # Two passes instead of np.unique's sort: 0.4 s a column at ten million rows.
    if present.size and present.min() == present.max():
        profile.warnings.append(
            {"code": "ConstantColumn", "column": name, "message": f"every value is {present[0]:g}"}
        )


def _date_problem(name: str, dates: _DateReading) -> str:
    if dates.form is None:
        return (
            f"column {name!r} is declared datetime but no value reads as a date "
            f"(e.g. {_example(dates.example)}); see the formats in the README's column kinds"
        )
    pair = " or ".join([dates.form, *dates.tied])
    return (
        f"column {name!r} holds dates such as {_example(dates.example)} that read as {pair}: no "
        f'day is above 12; say which in spec.columns.date_formats ({{"{name}": "{dates.form}"}})'
    )
