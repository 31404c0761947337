"""Raw flight values as callers send them: cleaning, parsing, and the input checks.

One implementation serves the frame path (training, evaluation, large batches) and the record path
(the API's small batches), so both read a value the same way: text is stripped, an empty string is
missing, a JSON number for a code such as Vlo-I is read as its text (``100`` -> ``"100"``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
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
    return not isinstance(value, list | dict | tuple | set)


def check_records(
    records: Sequence[Mapping[str, Any]],
    required: Sequence[str],
    allowed: Mapping[str, tuple[str, Collection[str | None]]],
    month_may_come_from_date: bool,
) -> list[FlightIssue]:
    """Every problem with every flight, in flight order.

    Args:
        records: the flights as sent.
        required: fields each flight must have.
        allowed: field -> (noun for messages, the values the model knows).
        month_may_come_from_date: MES is required but Fecha-I may stand in for it (minimal set).
    """
    issues: list[FlightIssue] = []
    for index, record in enumerate(records):
        nested = [f for f in schema.PREDICTION_FIELDS if not is_scalar(record.get(f))]
        if nested:
            issues.extend(
                FlightIssue(
                    index, f, "must be a single value (text or number), not a list or object"
                )
                for f in nested
            )
            continue
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
        flight_type = clean_text(record.get(schema.FLIGHT_TYPE))
        if flight_type is not None and flight_type not in schema.FLIGHT_TYPES:
            issues.append(
                FlightIssue(
                    index,
                    schema.FLIGHT_TYPE,
                    f"must be I or N, got {show(record.get(schema.FLIGHT_TYPE))}",
                )
            )
        origin = clean_text(record.get(schema.ORIGIN))
        if origin is not None and origin != schema.SCL_ORIGIN:
            issues.append(
                FlightIssue(
                    index,
                    schema.ORIGIN,
                    f"the model only covers departures from {schema.SCL_ORIGIN}",
                )
            )
        for field, (noun, known) in allowed.items():
            value = clean_text(record.get(field))
            if value is not None and value not in known:
                issues.append(
                    FlightIssue(
                        index,
                        field,
                        f"unknown {noun} {show(record.get(field))}: the model was trained on "
                        f"{len(known)} {noun}s (see its input schema)",
                    )
                )
    return issues
