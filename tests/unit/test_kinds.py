"""Column kinds: how dates, timestamps and texts are read and become model inputs, and how a
column's kind is inferred (mlstack_core.kinds).

The conversions are checked against oracles a data scientist would trust: Python's own datetime
arithmetic for the parts of a timestamp, and scikit-learn's default word analyzer for the words of
a text.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack_core import errors
from mlstack_core.kinds import datetimes
from mlstack_core.kinds import text as text_kind
from mlstack_core.kinds.inference import key_like
from tests.helpers.tables import csv_of, prepared_from

pytestmark = pytest.mark.unit

ALL_PARTS = ("year", "month", "day", "day_of_week", "day_of_year", "hour", "days_since_epoch")
moments = st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2200, 12, 31))
offsets = st.one_of(
    st.none(),
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    ),
)


def _oracle(moment: datetime) -> list[float]:
    """The parts by Python's datetime: the wall clock as written, the instant in UTC."""
    instant = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return [
        moment.year,
        moment.month,
        moment.day,
        moment.weekday(),
        moment.timetuple().tm_yday,
        moment.hour,
        (instant - datetime(1970, 1, 1)) / timedelta(days=1),
    ]


def _iso(moment: datetime, separator: str, fraction: bool, zulu: bool) -> str:
    text = moment.isoformat(sep=separator, timespec="microseconds" if fraction else "seconds")
    return text.replace("+00:00", "Z") if zulu else text


@settings(max_examples=300, deadline=None)
@given(
    moment=moments,
    offset=offsets,
    separator=st.sampled_from(["T", " "]),
    fraction=st.booleans(),
    zulu=st.booleans(),
)
def test_iso_timestamps_become_the_parts_python_computes(
    moment: datetime, offset: timezone | None, separator: str, fraction: bool, zulu: bool
) -> None:
    """Before 1970 and after 2038, with and without zones and fractions."""
    if not fraction:
        moment = moment.replace(microsecond=0)
    if offset is not None:
        moment = moment.replace(tzinfo=offset)
    value = _iso(moment, separator, fraction, zulu)
    parts = datetimes.features([value], datetimes.ISO, ALL_PARTS)[0]
    expected = np.asarray(_oracle(moment), dtype=np.float32)
    assert parts.tolist() == expected.tolist(), value


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=datetime(1000, 1, 1).date(), max_value=datetime(9999, 12, 31).date()),
    form=st.sampled_from([datetimes.YMD, datetimes.DMY, datetimes.MDY]),
    separator=st.sampled_from(["/", ".", "-"]),
    clock=st.one_of(st.none(), st.times()),
)
def test_day_month_year_forms_read_as_the_same_moment(
    day: Any, form: str, separator: str, clock: Any
) -> None:
    fields = {
        datetimes.YMD: (f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"),
        datetimes.DMY: (f"{day.day:02d}", f"{day.month:02d}", f"{day.year:04d}"),
        datetimes.MDY: (f"{day.month:02d}", f"{day.day:02d}", f"{day.year:04d}"),
    }[form]
    value = separator.join(fields)
    expected = datetime(day.year, day.month, day.day)
    if clock is not None:
        value += f" {clock.hour:02d}:{clock.minute:02d}:{clock.second:02d}"
        expected = expected.replace(hour=clock.hour, minute=clock.minute, second=clock.second)
    assert datetimes.parse(value, form) == expected


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            moments.map(lambda m: m.isoformat(timespec="seconds")),
            st.text(max_size=30),
            st.none(),
        ),
        max_size=30,
    )
)
def test_mixed_valid_and_invalid_values_read_row_by_row(values: list[str | None]) -> None:
    """An unreadable or missing value is a row of NaN, never an error, and does not disturb its
    neighbours."""
    block = datetimes.features(values, datetimes.ISO, ALL_PARTS)
    assert block.shape == (len(values), len(ALL_PARTS))
    for row, value in zip(block, values, strict=True):
        moment = datetimes.parse(value, datetimes.ISO) if value else None
        if moment is None:
            assert np.isnan(row).all()
        else:
            assert row.tolist() == np.asarray(_oracle(moment), dtype=np.float32).tolist()


def test_sklearn_word_pattern_is_the_words_normalise_keeps() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer().build_analyzer()
    sample = "Naïve CAFÉ ordered 2 crème brûlées; İstanbul ß straße — x y z 42 a_b 東京 の 本 🙂"
    assert text_kind.normalise(sample).split() == analyzer(sample)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(max_size=400), st.none()))
def test_normalised_words_are_the_words_scikit_learn_reads(value: str | None) -> None:
    """Unicode, empty and punctuation-only texts: the words are exactly scikit-learn's default
    analyzer's (a plain script's TF-IDF sees the same words), and normalising is idempotent."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer().build_analyzer()
    words = text_kind.normalise(value)
    assert words.split() == (analyzer(value) if value else [])
    assert text_kind.normalise(words) == words


def test_a_very_long_text_keeps_its_first_words() -> None:
    long = " ".join(f"word{i}" for i in range(text_kind.MAX_WORDS * 3))
    words = text_kind.normalise(long).split()
    assert len(words) == text_kind.MAX_WORDS
    assert words[-1] == f"word{text_kind.MAX_WORDS - 1}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("id", True),
        ("order_id", True),
        ("CustomerKey", True),
        ("customerId", True),
        ("user uuid", True),
        ("idea", False),
        ("paid", False),
        ("hockey", False),
        ("valid", False),
    ],
)
def test_key_like_names(name: str, expected: bool) -> None:
    assert key_like(name) is expected


# -- inference through prepare ------------------------------------------------------------------
def _kinds(prepared: Any) -> dict[str, str]:
    schema = prepared.schema
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    kinds.update({i["name"]: "identifier" for i in schema.get("identifiers", [])})
    return kinds


def _rows(n: int, column: list[str], name: str = "c") -> bytes:
    rng = np.random.default_rng(0)
    return csv_of(
        [[name, "x", "y"]]
        + [[value, f"{rng.normal():.3f}", "ab"[i % 2]] for i, value in enumerate(column[:n])]
    )


def test_timestamps_with_offsets_are_datetime_with_hour() -> None:
    start = datetime(2024, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=2)))
    stamps = [(start + timedelta(hours=7 * i)).isoformat() for i in range(60)]
    prepared = prepared_from(_rows(60, stamps))
    entry = prepared.schema["features"][0]
    assert entry["kind"] == "datetime"
    assert entry["format"] == "iso"
    assert entry["parts"] == list(ALL_PARTS)
    assert entry["first"] == "2024-03-01T06:30:00Z"
    assert "read as iso dates" in entry["reason"]


def test_plain_dates_have_no_hour_part() -> None:
    days = [(datetime(1960, 1, 1) + timedelta(days=400 * i)).date().isoformat() for i in range(60)]
    entry = prepared_from(_rows(60, days)).schema["features"][0]
    assert entry["kind"] == "datetime"
    assert "hour" not in entry["parts"]


def test_day_first_dates_are_read_day_first_when_a_day_says_so() -> None:
    days = [f"{d:02d}/{m:02d}/2021" for d, m in zip(range(1, 29), [1, 2] * 14, strict=True)]
    entry = prepared_from(_rows(28, days * 2)).schema["features"][0]
    assert (entry["kind"], entry["format"]) == ("datetime", "dmy")


def test_ambiguous_day_month_order_stays_categorical_with_a_warning_and_the_fix() -> None:
    days = [f"{d:02d}/{m:02d}/2021" for d, m in zip(range(1, 13), range(12, 0, -1), strict=True)]
    prepared = prepared_from(_rows(24, days * 2))
    assert _kinds(prepared)["c"] == "categorical"
    (warning,) = [w for w in prepared.warnings if w["code"] == "AmbiguousDates"]
    assert "spec.columns.date_formats" in warning["message"]
    declared = prepared_from(
        _rows(24, days * 2),
        columns={"types": {"c": "datetime"}, "date_formats": {"c": "mdy"}},
    )
    assert declared.schema["features"][0]["format"] == "mdy"


def test_a_few_unreadable_dates_are_missing_and_counted() -> None:
    days = [(datetime(2020, 1, 1) + timedelta(days=i)).date().isoformat() for i in range(99)]
    prepared = prepared_from(_rows(100, [*days, "31/02/2020"]))
    assert _kinds(prepared)["c"] == "datetime"
    (warning,) = [w for w in prepared.warnings if w["code"] == "UnreadableDates"]
    assert warning["message"].startswith("1 of 100 values")


def test_a_declared_datetime_column_without_a_single_date_is_a_named_error() -> None:
    with pytest.raises(errors.UnreadableDates, match="'c' is declared datetime"):
        prepared_from(_rows(30, ["soon"] * 30), columns={"types": {"c": "datetime"}})


def test_unique_codes_without_spaces_are_identifiers_and_no_features() -> None:
    codes = [f"ORD-{i:05d}-{i * 7919 % 65536:04x}" for i in range(40)]
    prepared = prepared_from(_rows(40, codes, name="order_ref"))
    assert _kinds(prepared)["order_ref"] == "identifier"
    assert "order_ref" not in [f["name"] for f in prepared.schema["features"]]
    assert "none holds a space" in prepared.schema["identifiers"][0]["reason"]


def test_row_numbers_and_key_named_integers_are_identifiers_but_plain_numbers_are_not() -> None:
    rng = np.random.default_rng(1)
    rows = [["row", "customer_id", "income", "y"]]
    for i in range(50):
        rows.append([str(i + 1), str(int(rng.integers(10**6))), str(1000 + 37 * i), "ab"[i % 2]])
    kinds = _kinds(prepared_from(csv_of(rows)))
    assert kinds == {"row": "identifier", "customer_id": "identifier", "income": "numeric"}


def test_notes_are_text_and_short_names_stay_categorical() -> None:
    rng = np.random.default_rng(2)
    words = "late box damaged fine great slow courier rain door neighbour".split()  # noqa: SIM905
    rows = [["note", "city", "y"]]
    for i in range(60):
        note = " ".join(rng.choice(words, int(rng.integers(4, 12))))
        rows.append([note, str(rng.choice(["New York", "Los Angeles", "San Diego"])), "ab"[i % 2]])
    prepared = prepared_from(csv_of(rows))
    assert _kinds(prepared) == {"note": "text", "city": "categorical"}
    feature = prepared.schema["features"][0]
    assert (feature["max_terms"], feature["ngrams"]) == (1000, 2)
    assert re.search(r"\d+\.\d words on average", feature["reason"])


def test_declared_kinds_win_over_inference() -> None:
    codes = [f"ORD-{i:05d}" for i in range(40)]
    prepared = prepared_from(
        _rows(40, codes, name="code"),
        columns={"types": {"code": "categorical", "x": "text"}, "text": {"max_terms": 50}},
    )
    assert _kinds(prepared) == {"code": "categorical", "x": "text"}
    assert prepared.schema["features"][1]["max_terms"] == 50
    assert all(f["reason"] == "declared in spec.columns.types" for f in prepared.schema["features"])


def test_a_table_of_identifiers_only_is_refused_by_name() -> None:
    codes = [f"K{i:04d}" for i in range(30)]
    body = csv_of([["ref", "y"]] + [[c, "ab"[i % 2]] for i, c in enumerate(codes)])
    with pytest.raises(errors.NoFeatureColumns, match="'ref' is an identifier"):
        prepared_from(body)


def test_years_stay_numeric() -> None:
    years = [str(1990 + i % 30) for i in range(60)]
    assert _kinds(prepared_from(_rows(60, years)))["c"] == "numeric"


def test_iso_reading_is_the_same_on_python_3_11_and_the_lambda_runtime() -> None:
    """The forms the docs promise, read with the standard library only."""
    for value in ("2024-08-31", "2024-08-31T08:12", "2024-08-31 08:12:16.5", "2024-08-31T08:12Z"):
        assert datetimes.parse(value, datetimes.ISO) is not None
    assert datetimes.parse("31/08/2024", datetimes.ISO) is None
    assert math.isnan(datetimes.features(["not a date"], datetimes.ISO, ["year"])[0, 0])
