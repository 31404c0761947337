"""Raw flight values as callers send them: cleaning, parsing, and the input checks.

One implementation serves the frame path (training, evaluation, large batches) and the record path
(the API's small batches), so both read a value the same way: text is stripped, an empty string is
missing, a JSON number for a code such as Vlo-I is read as its text (``100`` -> ``"100"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from flight_delay.data import schema
from flight_delay.errors import FlightIssue

MISSING = "required field is missing"
EARLIEST_SCHEDULED = schema.EARLIEST_SCHEDULED
LATEST_SCHEDULED = schema.LATEST_SCHEDULED
OUT_OF_RANGE = schema.OUT_OF_RANGE
#: longest caller value a message quotes
SHOWN_CHARACTERS = 40


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


#: from this many flights on, check_records screens the batch column by column first
COLUMNAR_MIN_FLIGHTS = 64
# the canonical scheduled time, ASCII digits only: the one form the columnar screen reads itself
_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_MONTH_TEXTS = frozenset(str(m) for m in range(1, 13))


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


def _screen(
    records: Sequence[Mapping[str, Any]],
    required: Sequence[str],
    allowed: Mapping[str, tuple[str, Collection[str | None]]],
    month_may_come_from_date: bool,
) -> list[int]:
    """Indices of the flights that may have a problem, found column by column.

    A flight passes only when every field is plainly fine: text (or a whole number where no
    vocabulary applies) in its field's vocabulary, a canonical scheduled time, nothing nested.
    Anything unusual (other date forms, numbers as codes, stray types) is left for the
    per-flight checks, which decide and word the error: a superset of the flights with problems.
    """
    count = len(records)
    suspect = np.zeros(count, dtype=bool)
    has_time = np.zeros(count, dtype=bool)
    for field in schema.PREDICTION_FIELDS:
        values = [record.get(field) for record in records]
        if field == schema.SCHEDULED_AT:
            _, has_time = parse_canonical_times(values)
            missing = np.fromiter((v is None for v in values), dtype=bool, count=count)
            # a canonical time, or nothing sent (missing is judged below for required fields)
            fine = has_time | (missing & (field not in required))
        elif field == schema.MONTH and month_may_come_from_date:
            fine = np.fromiter(
                (
                    (type(v) is str and v in _MONTH_TEXTS)
                    or (type(v) is int and 1 <= v <= 12)
                    or v is None
                    for v in values
                ),
                dtype=bool,
                count=count,
            )
            # MES missing: Fecha-I must stand in for it
            fine &= has_time | np.fromiter((v is not None for v in values), bool, count)
        else:
            vocabulary: Collection[str | None] | None = None
            if field in allowed:
                vocabulary = allowed[field][1]
            elif field == schema.FLIGHT_TYPE:
                vocabulary = schema.FLIGHT_TYPES
            elif field == schema.ORIGIN:
                vocabulary = (schema.SCL_ORIGIN,)
            if vocabulary is not None:
                known = frozenset(v for v in vocabulary if v is not None)
                fine = np.fromiter(
                    (type(v) is str and v in known for v in values), dtype=bool, count=count
                )
            else:
                fine = np.fromiter(
                    ((type(v) is str and v.strip() != "") or type(v) is int for v in values),
                    dtype=bool,
                    count=count,
                )
            if field not in required:
                fine |= np.fromiter((v is None for v in values), dtype=bool, count=count)
        suspect |= ~fine
    return [int(i) for i in np.flatnonzero(suspect)]


def check_records(
    records: Sequence[Mapping[str, Any]],
    required: Sequence[str],
    allowed: Mapping[str, tuple[str, Collection[str | None]]],
    month_may_come_from_date: bool,
) -> list[FlightIssue]:
    """Every problem with every flight, in flight order.

    Batches of COLUMNAR_MIN_FLIGHTS or more are screened column by column first and only the
    flights the screen cannot clear are checked one by one, so a 10,000-flight batch costs a few
    milliseconds; the problems found and their wording are the per-flight checks' either way (a
    property test holds the two equal).

    Args:
        records: the flights as sent.
        required: fields each flight must have.
        allowed: field -> (noun for messages, the values the model knows).
        month_may_come_from_date: MES is required but Fecha-I may stand in for it (minimal set).
    """
    indices: Iterable[int] = (
        _screen(records, required, allowed, month_may_come_from_date)
        if len(records) >= COLUMNAR_MIN_FLIGHTS
        else range(len(records))
    )
    issues: list[FlightIssue] = []
    for index in indices:
        issues.extend(
            _check_record(index, records[index], required, allowed, month_may_come_from_date)
        )
    return issues


def _check_record(
    index: int,
    record: Mapping[str, Any],
    required: Sequence[str],
    allowed: Mapping[str, tuple[str, Collection[str | None]]],
    month_may_come_from_date: bool,
) -> list[FlightIssue]:
    """Every problem with one flight (``index`` is its position in the request)."""
    issues: list[FlightIssue] = []
    nested = [f for f in schema.PREDICTION_FIELDS if not is_scalar(record.get(f))]
    if nested:
        issues.extend(
            FlightIssue(index, f, "must be a single value (text or number), not a list or object")
            for f in nested
        )
        return issues
    raw_time = record.get(schema.SCHEDULED_AT)
    has_time_text = clean_text(raw_time) is not None
    scheduled = parse_scheduled(raw_time) if has_time_text else None
    if has_time_text and scheduled is None:
        issues.append(FlightIssue(index, schema.SCHEDULED_AT, scheduled_problem(raw_time)))
    for field in required:
        if field == schema.MONTH and month_may_come_from_date:
            continue
        if field == schema.SCHEDULED_AT and has_time_text:
            continue
        if clean_text(record.get(field)) is None:
            issues.append(FlightIssue(index, field, MISSING))
    if month_may_come_from_date:
        given = record.get(schema.MONTH)
        if clean_text(given) is None:
            if scheduled is None:
                issues.append(FlightIssue(index, schema.MONTH, MISSING + " (or send Fecha-I)"))
        elif parse_month(given) is None:
            issues.append(
                FlightIssue(
                    index, schema.MONTH, f"must be a whole month number 1-12, got {show(given)}"
                )
            )
    flight_type = clean_code(record.get(schema.FLIGHT_TYPE))
    if flight_type is not None and flight_type not in schema.FLIGHT_TYPES:
        issues.append(
            FlightIssue(
                index,
                schema.FLIGHT_TYPE,
                f"must be I or N, got {show(record.get(schema.FLIGHT_TYPE))}",
            )
        )
    origin = clean_code(record.get(schema.ORIGIN))
    if origin is not None and origin != schema.SCL_ORIGIN:
        issues.append(
            FlightIssue(
                index,
                schema.ORIGIN,
                f"the model only covers departures from {schema.SCL_ORIGIN}",
            )
        )
    for field, (noun, known) in allowed.items():
        value = clean_field(field, record.get(field))
        if value is not None and not known_value(value, known):
            count = len(set(known.values())) if isinstance(known, Mapping) else len(known)
            issues.append(
                FlightIssue(
                    index,
                    field,
                    f"unknown {noun} {show(record.get(field))}: the model was trained on "
                    f"{count} {noun}s (see its input schema)",
                )
            )
    return issues
