"""The column path: a large batch of records (dicts) -> the feature matrix, column by column.

Each field is read once into a list, then every feature is a numpy operation or one dictionary
lookup per flight: a 10,000-flight batch in a few milliseconds, against ~35 ms through a DataFrame
and ``transform``. Tests hold it equal to the record path and to the frame path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flight_delay.data import schema
from flight_delay.features.calendar import holiday_distances, is_high_season
from flight_delay.features.record_path import category_code, given_number
from flight_delay.features.sets import DELAY_RATE_KEYS, SOURCE_FIELDS, get_feature_set
from flight_delay.features.values import clean_field, first_number, parse_month, scheduled_times

if TYPE_CHECKING:
    from flight_delay.features.transformer import FlightFeatures


def columns_matrix(features: FlightFeatures, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``records_matrix``'s numbers for a large batch of checked records."""
    spec = get_feature_set(features.feature_set)
    codes = features.category_codes()
    count = len(records)
    times = scheduled_times([r.get(schema.SCHEDULED_AT) for r in records])
    stamps = pd.DatetimeIndex(times)
    known_time = ~np.isnat(times)
    columns: dict[str, np.ndarray] = {}
    text: dict[str, list[str | None]] = {}

    def clean(field: str) -> list[str | None]:
        if field not in text:
            text[field] = [clean_field(field, r.get(field)) for r in records]
        return text[field]

    for name in spec.categorical:
        if name == "month":
            month = np.array(stamps.month, dtype=float)
            if not known_time.all():
                given = [
                    parse_month(records[i].get(schema.MONTH))
                    for i in np.flatnonzero(~known_time).tolist()
                ]
                month[~known_time] = [np.nan if m is None else m for m in given]
            columns[name] = month - 1.0
        else:
            lookup = codes[name]
            columns[name] = np.fromiter(
                (category_code(lookup, v) for v in clean(SOURCE_FIELDS[name])), float, count
            )
    if spec.uses_schedule:
        hour = np.array(stamps.hour, dtype=float)
        dow = np.array(stamps.day_of_week, dtype=float)
        month = np.array(stamps.month, dtype=float)
        day = np.array(stamps.day, dtype=float)
        minute = np.array(stamps.minute, dtype=float)
        columns["hour"] = hour
        columns["minute_of_day"] = hour * 60 + minute
        columns["day_of_week"] = dow
        columns["day_of_month"] = day
        columns["month"] = month
        columns["high_season"] = is_high_season(month, day).astype(float)
        days = times.astype("datetime64[D]").astype(np.int64)
        to_holiday = np.full(count, np.nan)
        since_holiday = np.full(count, np.nan)
        if known_time.any():
            to_holiday[known_time], since_holiday[known_time] = holiday_distances(days[known_time])
        columns["days_to_holiday"] = to_holiday
        columns["days_since_holiday"] = since_holiday
        numbers = clean(schema.FLIGHT_NUMBER)
        columns["flight_number_value"] = np.fromiter(
            (first_number(n) for n in numbers), float, count
        )
        hour_i = np.where(known_time, hour, 0).astype(np.intp)
        dow_i = np.where(known_time, dow, 0).astype(np.intp)
        columns["slot_flights_per_week"] = np.where(
            known_time, features.slot_flights_per_week_[dow_i, hour_i], np.nan
        )
        columns["weekday_flights_per_week"] = np.where(
            known_time, features.weekday_flights_per_week_[dow_i], np.nan
        )
        airline = columns["airline"]
        has_airline = ~np.isnan(airline) & known_time
        airline_slot = np.full(count, np.nan)
        airline_slot[has_airline] = features.airline_slot_flights_per_week_[
            airline[has_airline].astype(np.intp), dow_i[has_airline], hour_i[has_airline]
        ]
        columns["airline_slot_flights_per_week"] = airline_slot
        carriers = clean(schema.CARRIER_CODE)
        flights = [
            None if c is None or n is None else f"{c}-{n}"
            for c, n in zip(carriers, numbers, strict=True)
        ]
        per_week = features.flight_number_flights_per_week_
        columns["flight_number_flights_per_week"] = np.fromiter(
            (per_week.get(f, 0.0) for f in flights), float, count
        )
        rates = features.rate_names()
        if rates:
            fields = {
                "flight_number": flights,
                "airline": [features.spelling("airline", v) for v in clean(schema.AIRLINE)],
                "destination": clean(schema.DESTINATION),
                "carrier_code": carriers,
                "hour": [None if np.isnan(h) else str(int(h)) for h in hour],
            }
            prior = features.delay_rate_prior_
            for name in rates:
                parts = zip(*(fields[f] for f in DELAY_RATE_KEYS[name]), strict=True)
                table = features.delay_rates_[name]
                columns[name] = np.fromiter(
                    (prior if None in key else table.get("|".join(key), prior) for key in parts),
                    float,
                    count,
                )
        for name in spec.given:
            columns[name] = np.fromiter((given_number(r.get(name)) for r in records), float, count)
        for name in spec.numeric:  # a flight without a time has no schedule features
            columns[name] = np.where(known_time, columns[name], np.nan)
    matrix = np.empty((count, len(spec.columns)))
    for j, name in enumerate(spec.columns):
        matrix[:, j] = columns[name]
    return matrix
