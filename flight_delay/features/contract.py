"""The input contract: what a flight must carry, which values a model accepts, and every problem
with a request's flights, worded for the caller.

Checks read values as ``values`` reads them, so what passes here is what the feature paths
build from. Large batches are screened column by column first (``COLUMNAR_MIN_FLIGHTS``); a
property test holds the screened and the per-flight checks equal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flight_delay.data import schema
from flight_delay.errors import FlightIssue, InvalidFlights
from flight_delay.features.sets import SOURCE_FIELDS, FeatureSet
from flight_delay.features.values import (
    clean_code,
    clean_field,
    clean_text,
    is_scalar,
    known_value,
    parse_canonical_times,
    parse_month,
    parse_scheduled,
    scheduled_problem,
    show,
)

MISSING = "required field is missing"


def input_schema(spec: FeatureSet, categories: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """What a caller must send for one flight of a model with ``spec`` features trained on
    ``categories``: required fields and allowed values (saved in ``model.json``)."""
    allowed = {
        SOURCE_FIELDS[name]: list(categories[name]) for name in spec.strict if name in SOURCE_FIELDS
    }
    allowed[schema.FLIGHT_TYPE] = list(schema.FLIGHT_TYPES)
    return {
        "required": list(spec.required_fields),
        "allowed_values": allowed,
        "notes": [
            "Operated columns (Fecha-O, Vlo-O, Ori-O, Des-O, Emp-O, DIA, AÑO, DIANOM) may be "
            "sent but are ignored.",
            "OPERA, TIPOVUELO and MES are closed: an unknown value is an error. Des-I, Emp-I "
            "and the flight number are open: an unseen value is predicted as never seen and "
            "reported in the response's warnings.",
            "MES is the scheduled month 1-12; when Fecha-I is sent, its month wins."
            if spec.name == "minimal"
            else "Fecha-I is the scheduled departure, YYYY-MM-DD HH:MM:SS.",
        ],
    }


def as_records(flights: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    return flights.to_dict("records") if isinstance(flights, pd.DataFrame) else flights


def check_flights(
    spec: FeatureSet,
    codes: Mapping[str, Collection[str | None]],
    flights: pd.DataFrame | Sequence[Mapping[str, Any]],
) -> None:
    """Raise :class:`InvalidFlights` listing every offending flight index and field.

    Args:
        spec: the model's feature set.
        codes: each categorical feature's known values, spelled and casefolded.
        flights: raw rows in the order the caller sent them (a frame or records).
    """
    allowed = {SOURCE_FIELDS[name]: (name.replace("_", " "), codes[name]) for name in spec.strict}
    issues = check_records(
        as_records(flights), spec.required_fields, allowed, spec.name == "minimal"
    )
    if issues:
        raise InvalidFlights(issues)


def unseen_value_warnings(
    codes: Mapping[str, Collection[str | None]],
    known_flights: Collection[str],
    flights: pd.DataFrame | Sequence[Mapping[str, Any]],
) -> list[FlightIssue]:
    """Open fields whose value the model never saw in training: each flight index and field
    (the flights are predicted anyway, with that value treated as unseen)."""
    destinations = codes["destination"]
    carriers = codes["carrier_code"]
    warnings: list[FlightIssue] = []
    for index, record in enumerate(as_records(flights)):
        destination = clean_code(record.get(schema.DESTINATION))
        if destination is not None and destination not in destinations:
            warnings.append(
                FlightIssue(
                    index, schema.DESTINATION,
                    f"destination {destination!r} never seen in training: predicted as an "
                    "unseen destination",
                )
            )  # fmt: skip
        carrier = clean_code(record.get(schema.CARRIER_CODE))
        if carrier is not None and carrier not in carriers:
            warnings.append(
                FlightIssue(
                    index, schema.CARRIER_CODE,
                    f"airline code {carrier!r} never seen in training: predicted as an "
                    "unseen code",
                )
            )  # fmt: skip
        number = clean_code(record.get(schema.FLIGHT_NUMBER))
        if carrier is not None and number is not None:
            key = f"{carrier}-{number}"
            if key not in known_flights:
                warnings.append(
                    FlightIssue(
                        index, schema.FLIGHT_NUMBER,
                        f"flight {key} never seen in training: predicted as a new flight",
                    )
                )  # fmt: skip
    return warnings


#: from this many flights on, check_records screens the batch column by column first
COLUMNAR_MIN_FLIGHTS = 64
_MONTH_TEXTS = frozenset(str(m) for m in range(1, 13))


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
