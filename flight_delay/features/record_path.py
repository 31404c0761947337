"""The record path: a few flights as the API received them (dicts) -> the feature matrix, without
pandas. For a single flight this is an order of magnitude faster than building frames; a test
holds it equal to the frame path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from flight_delay.data import schema
from flight_delay.features.calendar import (
    UNIX_EPOCH_ORDINAL,
    holiday_distances_of_day,
    is_high_season,
)
from flight_delay.features.sets import DELAY_RATE_KEYS, SOURCE_FIELDS, get_feature_set
from flight_delay.features.values import (
    clean_code,
    clean_field,
    clean_text,
    first_number,
    parse_month,
    parse_scheduled,
)

if TYPE_CHECKING:
    from flight_delay.features.transformer import FlightFeatures


def category_code(codes: Mapping[str | None, float], text: str | None) -> float:
    """The category code of a cleaned value (case-blind), NaN when unseen or missing."""
    if text is None:
        return np.nan
    found = codes.get(text)
    return codes.get(text.casefold(), np.nan) if found is None else found


def given_number(value: Any) -> float:
    """A given feature's value (see ``FeatureSet.given``): a number, else missing (NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return np.nan
    return float(value)


def records_matrix(features: FlightFeatures, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The feature matrix of ``transform`` for checked records, one flight at a time.

    Categories come out as their codes (unseen: NaN), in ``transform``'s column order: what a
    LightGBM booster trained on ``transform``'s frame takes.
    """
    spec = get_feature_set(features.feature_set)
    codes = features.category_codes()
    width = len(spec.columns)
    rows: list[list[float]] = []
    for record in records:
        scheduled = parse_scheduled(record.get(schema.SCHEDULED_AT))
        values: list[float] = []
        for name in spec.categorical:
            if name == "month":
                month = scheduled.month if scheduled else parse_month(record.get(schema.MONTH))
                values.append(float(month - 1) if month else np.nan)
            else:
                field = SOURCE_FIELDS[name]
                values.append(category_code(codes[name], clean_field(field, record.get(field))))
        if spec.uses_schedule and scheduled is not None:
            numeric = _schedule_values(features, record, scheduled, values[0])
            for name in spec.given:
                numeric[name] = given_number(record.get(name))
            values.extend(numeric[name] for name in spec.numeric)
        values.extend([np.nan] * (width - len(values)))
        rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _schedule_values(
    features: FlightFeatures, record: Mapping[str, Any], scheduled: datetime, airline_code: float
) -> dict[str, float]:
    hour, dow, month, day = scheduled.hour, scheduled.weekday(), scheduled.month, scheduled.day
    to_holiday, since_holiday = holiday_distances_of_day(scheduled.toordinal() - UNIX_EPOCH_ORDINAL)
    number_text = clean_code(record.get(schema.FLIGHT_NUMBER))
    carrier = clean_code(record.get(schema.CARRIER_CODE))
    flight = f"{carrier}-{number_text}" if carrier is not None and number_text is not None else None
    values = {
        "hour": float(hour),
        "minute_of_day": float(hour * 60 + scheduled.minute),
        "day_of_week": float(dow),
        "day_of_month": float(day),
        "month": float(month),
        "high_season": float(is_high_season(month, day)),
        "days_to_holiday": to_holiday,
        "days_since_holiday": since_holiday,
        "flight_number_value": first_number(number_text),
        "slot_flights_per_week": float(features.slot_flights_per_week_[dow, hour]),
        "weekday_flights_per_week": float(features.weekday_flights_per_week_[dow]),
        "airline_slot_flights_per_week": (
            np.nan
            if airline_code != airline_code  # NaN: an unseen airline
            else float(features.airline_slot_flights_per_week_[int(airline_code), dow, hour])
        ),
        "flight_number_flights_per_week": float(
            features.flight_number_flights_per_week_.get(flight, 0.0)
        ),
    }
    rates = features.rate_names()
    if rates:
        # the same keys as frame_path.rate_keys builds from frames: fields joined by "|"
        fields = {
            "flight_number": flight,
            "airline": features.spelling("airline", clean_text(record.get(schema.AIRLINE))),
            "destination": clean_code(record.get(schema.DESTINATION)),
            "carrier_code": carrier,
            "hour": str(hour),
        }
        prior = features.delay_rate_prior_
        for name in rates:
            parts = [fields[field] for field in DELAY_RATE_KEYS[name]]
            table = features.delay_rates_[name]
            key = None if None in parts else "|".join(parts)  # type: ignore[arg-type]
            values[name] = table.get(key, prior) if key else prior
    return values
