"""How a date or timestamp becomes model inputs: one parser per format, and the parts derived
from it. numpy and the standard library only: training, the gate and serving all call this.

A value is read in one of four formats, chosen per column when the data is profiled (and kept in
the version's schema, so serving reads it the same way):

- ``iso``: ISO 8601 as Python's ``datetime.fromisoformat`` reads it (``2024-08-31``,
  ``2024-08-31T08:12:16``, a space instead of ``T``, fractions, ``Z`` or ``+02:00``);
- ``ymd``: ``2024/08/31`` or ``2024.08.31``;
- ``dmy``: ``31/08/2024``, ``31.08.2024`` or ``31-08-2024``;
- ``mdy``: ``08/31/2024``;

the last three with an optional `` 08:12[:16[.5]]`` time. A value that does not read is missing,
never an error: an export with a few broken dates still trains, and the profile reports how many.

The parts are the wall clock as written (a shop's Saturday evening stays a Saturday evening
whatever its offset), except ``days_since_epoch``, the instant itself (offset honoured) counted
in days since 1970-01-01 UTC: a monotone value, so linear models extrapolate a trend past the
training range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np

ISO: Final = "iso"
YMD: Final = "ymd"
DMY: Final = "dmy"
MDY: Final = "mdy"
FORMATS: Final = (ISO, YMD, DMY, MDY)

DATE_PARTS: Final = ("year", "month", "day", "day_of_week", "day_of_year")
HOUR: Final = "hour"
INSTANT: Final = "days_since_epoch"

_SECONDS_PER_DAY: Final = 86400.0
_EPOCH: Final = datetime(1970, 1, 1)
_EPOCH_UTC: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY: Final = timedelta(days=1)
# A date with an optional time: three numeric fields split by one repeated separator.
_FIELDS: Final = re.compile(
    r"\s*(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6})\d*)?)?)?\s*"
)
# Which of the three date fields is (year, month, day), per format.
_ORDER: Final = {YMD: (0, 1, 2), DMY: (2, 1, 0), MDY: (2, 0, 1)}


def parse(value: str, form: str) -> datetime | None:
    """``value`` read in ``form``, or None when it does not read."""
    if form == ISO:
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    match = _FIELDS.fullmatch(value)
    if match is None:
        return None
    fields = match.group(1, 3, 4)
    year_at, month_at, day_at = _ORDER[form]
    if len(fields[year_at]) != 4:
        return None
    hour, minute, second, fraction = match.group(5, 6, 7, 8)
    try:
        return datetime(
            int(fields[year_at]),
            int(fields[month_at]),
            int(fields[day_at]),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def readable_share(values: Sequence[str], form: str) -> float:
    """Share of ``values`` that read in ``form``."""
    if not values:
        return 0.0
    return sum(parse(value, form) is not None for value in values) / len(values)


def best_format(values: Sequence[str]) -> tuple[str | None, float, list[str]]:
    """(format, share read, other formats reading as many) for a sample of a column's values.

    Day-first and month-first dates read equally when no day is above 12: the third item then
    names the tie, and the column is ambiguous unless the spec says which it is.
    """
    shares = {form: readable_share(values, form) for form in FORMATS}
    best = max(FORMATS, key=lambda form: shares[form])  # the first of equals: ISO before others
    if shares[best] == 0.0:
        return None, 0.0, []
    tied = [
        form
        for form in (DMY, MDY)
        if best in (DMY, MDY) and form != best and shares[form] == shares[best]
    ]
    return best, shares[best], tied


def parts_for(has_time: bool) -> list[str]:
    """The parts a column yields: ``hour`` only when some value has a time other than midnight."""
    return [*DATE_PARTS, *([HOUR] if has_time else []), INSTANT]


def instant_days(moment: datetime) -> float:
    """The instant in days since 1970-01-01 UTC; a value without an offset is taken as UTC.

    Exact: datetime subtraction counts whole microseconds, and dividing two timedeltas divides
    those counts (one rounding)."""
    epoch = _EPOCH if moment.utcoffset() is None else _EPOCH_UTC
    return (moment - epoch) / _DAY


# Where each wall-clock part is in ``datetime.timetuple()`` (Monday is day 0, as in weekday()).
_TIMETUPLE_FIELD: Final = {
    "year": 0,
    "month": 1,
    "day": 2,
    HOUR: 3,
    "day_of_week": 6,
    "day_of_year": 7,
}


def features(values: Sequence[str | None], form: str, parts: Sequence[str]) -> np.ndarray:
    """float32 [N, len(parts)]: each value's parts, NaN where the value is missing or unreadable.

    Per value, in Python: one ``timetuple()`` gives the wall-clock parts. A request is often one
    row, and calendar arithmetic in numpy, a dozen calls however few the values, took five times
    as long for one value and twice as long for 1,000 (docs/performance.md)."""
    fields = [None if part == INSTANT else _TIMETUPLE_FIELD[part] for part in parts]
    missing = [math.nan] * len(parts)
    rows: list[list[float]] = []
    for value in values:
        moment = parse(value, form) if value else None
        if moment is None:
            rows.append(missing)
            continue
        wall = moment.timetuple()  # the fields as written, whatever the offset
        rows.append([instant_days(moment) if field is None else wall[field] for field in fields])
    return np.array(rows, dtype=np.float32).reshape(len(values), len(parts))


def to_text(days_since_epoch: float) -> str:
    """A ``days_since_epoch`` value as an ISO timestamp (UTC), for ranges shown to people."""
    moment = datetime.fromtimestamp(days_since_epoch * _SECONDS_PER_DAY, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
