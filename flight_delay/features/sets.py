"""The named feature sets: which features a model uses and which raw fields a caller must send.

Only schedule-time columns are read (Fecha-I, Vlo-I, Des-I, Emp-I, OPERA, TIPOVUELO, and MES when
Fecha-I is absent at prediction time). The operated columns (Fecha-O, Vlo-O, Ori-O, Des-O, Emp-O,
DIA, MES, AÑO, DIANOM) are never read while training: the month comes from Fecha-I.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from flight_delay.data import schema
from flight_delay.errors import InvalidConfig
from flight_delay.features.live import given_feature_names


@dataclass(frozen=True)
class FeatureSet:
    """A named set of features and the raw fields it needs at prediction time."""

    name: str
    description: str
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    required_fields: tuple[str, ...]
    #: categorical features whose unseen values are an input error (the rest map to "unseen")
    strict: tuple[str, ...]
    #: numeric features not built from the flight's own fields but given with it (the live
    #: set's lead time and point-in-time features, which the service computes from the
    #: departures feed); a flight without them has them missing (NaN): nothing observed
    given: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.categorical + self.numeric

    @property
    def uses_schedule(self) -> bool:
        """Whether the features come from the full schedule row (Fecha-I, flight, route)."""
        return schema.SCHEDULED_AT in self.required_fields


_SCHEDULE_FIELDS = (
    schema.SCHEDULED_AT,
    schema.FLIGHT_NUMBER,
    schema.DESTINATION,
    schema.CARRIER_CODE,
    schema.AIRLINE,
    schema.FLIGHT_TYPE,
)
#: delay-rate feature -> the raw fields whose values, joined, are its key (see delay_rates)
DELAY_RATE_KEYS: Mapping[str, tuple[str, ...]] = {
    "flight_delay_rate": ("flight_number",),
    "route_delay_rate": ("airline", "destination"),
    "airline_hour_delay_rate": ("airline", "hour"),
}
_FEATURE_SETS: dict[str, FeatureSet] = {
    "minimal": FeatureSet(
        name="minimal",
        description="OPERA, TIPOVUELO and MES: the challenge contract for callers who know only these",
        categorical=("airline", "flight_type", "month"),
        numeric=(),
        required_fields=(schema.AIRLINE, schema.FLIGHT_TYPE, schema.MONTH),
        strict=("airline",),
    ),
    "schedule": FeatureSet(
        name="schedule",
        description="everything known when the flight is scheduled",
        # The flight number is not a category here: as a LightGBM category (~700 levels) it lowered
        # holdout ROC AUC under both protocols; its numeric value and learned weekly frequency
        # carry it. Each group stays only while leaving it out does not clearly raise the
        # time-protocol cross-validated ROC AUC (benchmarks/model_quality.py, feature ablation).
        categorical=("airline", "destination", "carrier_code", "flight_type"),
        numeric=(
            "hour",
            "minute_of_day",
            "day_of_week",
            "day_of_month",
            "month",
            "high_season",
            "days_to_holiday",
            "days_since_holiday",
            "flight_number_value",
            "slot_flights_per_week",
            "weekday_flights_per_week",
            "airline_slot_flights_per_week",
            "flight_number_flights_per_week",
        ),
        required_fields=_SCHEDULE_FIELDS,
        # closed: an unknown airline is a typo until proven otherwise; destinations, carrier
        # codes and flight numbers are open (schedules gain routes every season) and an unseen
        # one is predicted as never seen, with a warning
        strict=("airline",),
    ),
}
_FEATURE_SETS["schedule_delay_rates"] = replace(
    _FEATURE_SETS["schedule"],
    name="schedule_delay_rates",
    description=(
        "schedule plus smoothed historical delay rates by flight, route and airline x hour "
        "(out-of-fold while training); opt-in: on the SCL data they did not raise the "
        "cross-validated ROC AUC under both protocols"
    ),
    numeric=_FEATURE_SETS["schedule"].numeric + tuple(DELAY_RATE_KEYS),
)
_LIVE_GIVEN = tuple(given_feature_names())
_FEATURE_SETS["live"] = replace(
    _FEATURE_SETS["schedule"],
    name="live",
    description=(
        "schedule plus what the airport has already seen when the flight is asked about: "
        "departures before the as-of time (counts, late share, mean delay and time since the "
        "last, overall and by airline, destination and flight) and the lead time; trained at "
        "several lead times and with nothing observed; opt-in, on the time protocol"
    ),
    numeric=_FEATURE_SETS["schedule"].numeric + _LIVE_GIVEN,
    given=_LIVE_GIVEN,
)
FEATURE_SETS: Mapping[str, FeatureSet] = _FEATURE_SETS
DEFAULT_FEATURE_SET = "schedule"

#: categorical feature -> the raw column it comes from (flight_number and month are derived)
SOURCE_FIELDS: Mapping[str, str] = {
    "airline": schema.AIRLINE,
    "destination": schema.DESTINATION,
    "carrier_code": schema.CARRIER_CODE,
    "flight_type": schema.FLIGHT_TYPE,
}
MONTHS = [str(m) for m in range(1, 13)]


def get_feature_set(name: str) -> FeatureSet:
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise InvalidConfig(
            "features", f"unknown feature set {name!r}; choose one of {', '.join(FEATURE_SETS)}"
        ) from None
