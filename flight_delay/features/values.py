"""Raw flight values as callers send them: cleaning and parsing.

One implementation serves the frame path (training, evaluation, large batches) and the record path
(the API's small batches), so both read a value the same way: text is stripped, an empty string is
missing, a JSON number for a code such as Vlo-I is read as its text (``100`` -> ``"100"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from flight_delay.data import schema

EARLIEST_SCHEDULED = schema.EARLIEST_SCHEDULED
LATEST_SCHEDULED = schema.LATEST_SCHEDULED
OUT_OF_RANGE = schema.OUT_OF_RANGE
#: longest caller value a message quotes
SHOWN_CHARACTERS = 40
# ASCII digits: "\d" also matches other scripts' digits, which pandas and float() read differently
DIGITS = re.compile(r"[0-9]+")


def clean_text(value: Any) -> str | None:
    """A field value as text, or None when it is missing."""
    if type(value) is str:  # nearly every value: decided before the checks below
        return value.strip() or None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else str(float(value))
    return str(value)


#: codes are case-less (``lan`` is LAN, ``scie`` is SCIE): every path reads them in upper case,
#: as the published file writes them
CODE_FIELDS = frozenset(
    {
        schema.FLIGHT_NUMBER,
        schema.ORIGIN,
        schema.DESTINATION,
        schema.CARRIER_CODE,
        schema.FLIGHT_TYPE,
    }
)


def clean_code(value: Any) -> str | None:
    """A code's value as upper-case text, or None when it is missing."""
    text = clean_text(value)
    return text.upper() if text is not None else None


def clean_field(field: str, value: Any) -> str | None:
    """``value`` of ``field`` as every path reads it: ``clean_code`` for codes, else
    ``clean_text`` (a name such as OPERA keeps its case; the model matches it case-blind)."""
    return clean_code(value) if field in CODE_FIELDS else clean_text(value)


def known_value(value: str, known: Collection[str | None]) -> bool:
    """Whether ``value`` is in ``known``, whose entries include each value's casefolded form."""
    return value in known or value.casefold() in known


def parse_scheduled(value: Any) -> datetime | None:
    """A scheduled departure: a datetime, or ISO 8601 text (``2017-01-01 23:30:00``) between
    1950 and 2100; anything else is None.

    A UTC offset is dropped: schedules are local wall-clock times at SCL.
    """
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        # ISO 8601 in ASCII digits only: fromisoformat would also read other scripts' digits
        if not text.isascii() or len(text) > 40:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    parsed = parsed.replace(tzinfo=None) if parsed.tzinfo else parsed
    if not EARLIEST_SCHEDULED <= parsed <= LATEST_SCHEDULED:
        return None
    return parsed


def scheduled_problem(value: Any) -> str:
    """Why ``value`` is not a scheduled departure, for messages."""
    if isinstance(value, str) and value.strip().isascii() and len(value.strip()) <= 40:
        try:
            datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return f"{show(value)} is {OUT_OF_RANGE}"
    return f"unparsable date {show(value)} (expected YYYY-MM-DD HH:MM:SS)"


def parse_month(value: Any) -> int | None:
    """A month number 1-12 (``3``, ``3.0`` or ``"3"``), or None."""
    if isinstance(value, bool | np.bool_):
        return None
    text = clean_text(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and 1 <= number <= 12 else None


def show(value: Any) -> str:
    """A value as the caller sent it, for messages (numpy scalars shown as plain Python), cut
    short: a message never echoes a large input."""
    if isinstance(value, list | dict | tuple):
        return f"a {'list' if not isinstance(value, dict) else 'object'}"
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def is_scalar(value: Any) -> bool:
    return type(value) is str or not isinstance(value, list | dict | tuple | set)


def first_number(text: str | None) -> float:
    """The first run of ASCII digits of a flight number as a number (``"989P"`` -> 989)."""
    found = DIGITS.search(text) if text else None
    return float(found.group(0)) if found else np.nan


# the canonical scheduled time, ASCII digits only: the one form the columnar screen reads itself
_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def parse_canonical_times(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Scheduled times sent as ``YYYY-MM-DD HH:MM:SS`` text, parsed as one array.

    Returns (``datetime64[s]`` values, NaT where not parsed; and a mask of the values parsed).
    A value is parsed only when it is exactly that form (no spaces around it) and a real time in
    the supported range, so wherever the mask is true ``parse_scheduled`` gives the same time;
    every other value (another ISO form, a number, nonsense) is left to ``parse_scheduled``.
    """
    count = len(values)
    parsed = np.full(count, np.datetime64("NaT"), dtype="datetime64[s]")
    canonical = np.fromiter(
        (type(v) is str and _CANONICAL_TIME.fullmatch(v) is not None for v in values),
        dtype=bool,
        count=count,
    )
    if not canonical.any():
        return parsed, canonical
    texts = [v for v, ok in zip(values, canonical, strict=True) if ok]
    digits = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8).reshape(-1, 19).astype(
        np.int64
    ) - ord("0")

    def number(first: int, last: int) -> np.ndarray:
        result = np.zeros(len(texts), dtype=np.int64)
        for column in range(first, last):
            result = result * 10 + digits[:, column]
        return result

    year, month, day = number(0, 4), number(5, 7), number(8, 10)
    hour, minute, second = number(11, 13), number(14, 16), number(17, 19)
    month_ok = (month >= 1) & (month <= 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last_day = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    real = (
        (year >= EARLIEST_SCHEDULED.year)
        & (year <= LATEST_SCHEDULED.year)
        & month_ok
        & (day >= 1)
        & (day <= last_day)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
    )
    # the supported range is whole years (1950-01-01 .. 2100-12-31 23:59:59)
    positions = np.flatnonzero(canonical)
    canonical[positions[~real]] = False
    good = [t for t, ok in zip(texts, real, strict=True) if ok]
    parsed[positions[real]] = np.array(good, dtype="datetime64[s]")
    return parsed, canonical


def scheduled_times(values: Sequence[Any]) -> np.ndarray:
    """Scheduled departures as ``datetime64[us]`` (NaT where missing or unparsable), read as
    ``parse_scheduled`` reads them: canonical text as one array, anything else one by one."""
    parsed, done = parse_canonical_times(values)
    times = parsed.astype("datetime64[us]")
    for i in np.flatnonzero(~done).tolist():
        scheduled = parse_scheduled(values[i])
        if scheduled is not None:
            times[i] = np.datetime64(scheduled, "us")
    return times
