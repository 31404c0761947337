"""The SCL flight file schema: column names, which are known at schedule time, and the label."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

SCHEDULED_AT = "Fecha-I"
FLIGHT_NUMBER = "Vlo-I"
ORIGIN = "Ori-I"
DESTINATION = "Des-I"
CARRIER_CODE = "Emp-I"
OPERATED_AT = "Fecha-O"
FLIGHT_TYPE = "TIPOVUELO"
AIRLINE = "OPERA"
ORIGIN_CITY = "SIGLAORI"
DESTINATION_CITY = "SIGLADES"
MONTH = "MES"

#: every column of the published file, in its order
ALL_COLUMNS: tuple[str, ...] = (
    "Fecha-I", "Vlo-I", "Ori-I", "Des-I", "Emp-I",
    "Fecha-O", "Vlo-O", "Ori-O", "Des-O", "Emp-O",
    "DIA", "MES", "AÑO", "DIANOM", "TIPOVUELO", "OPERA", "SIGLAORI", "SIGLADES",
)  # fmt: skip

#: columns that describe the flight as it was operated: unknown when a delay is predicted, so
#: they never feed a feature. Only the label is derived from Fecha-O.
OPERATED_COLUMNS: tuple[str, ...] = (
    "Fecha-O", "Vlo-O", "Ori-O", "Des-O", "Emp-O", "DIA", "MES", "AÑO", "DIANOM",
)  # fmt: skip

#: what a training file must have: the schedule-time columns the features use, plus Fecha-O
#: for the label. The other published columns are optional and ignored by the model.
REQUIRED_TRAINING_COLUMNS: tuple[str, ...] = (
    SCHEDULED_AT, FLIGHT_NUMBER, DESTINATION, CARRIER_CODE, OPERATED_AT, FLIGHT_TYPE, AIRLINE,
)  # fmt: skip

#: scheduled and operated times the features cover (the holiday calendar is defined for them)
EARLIEST_SCHEDULED = datetime(1950, 1, 1)
LATEST_SCHEDULED = datetime(2100, 12, 31, 23, 59, 59)
OUT_OF_RANGE = "outside the supported range 1950-01-01 .. 2100-12-31"

#: the fields a prediction reads (each must be one value: text, number or null)
PREDICTION_FIELDS: tuple[str, ...] = (
    SCHEDULED_AT, FLIGHT_NUMBER, ORIGIN, DESTINATION, CARRIER_CODE, FLIGHT_TYPE, AIRLINE, MONTH,
)  # fmt: skip

#: the only origin in the data set; a flight from elsewhere is outside what the model knows
SCL_ORIGIN = "SCEL"
FLIGHT_TYPES = ("I", "N")  # international, national (domestic)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DELAY_THRESHOLD_MINUTES = 15

LABEL = "delay"
DELAY_MINUTES = "delay_minutes"


def delay_minutes(scheduled_at: pd.Series, operated_at: pd.Series) -> pd.Series:
    """Minutes between the operated and the scheduled departure (negative when early)."""
    return (operated_at - scheduled_at).dt.total_seconds() / 60.0


def delay_label(scheduled_at: pd.Series, operated_at: pd.Series) -> pd.Series:
    """The label: 1 when the flight left more than 15 minutes after its scheduled time."""
    minutes = delay_minutes(scheduled_at, operated_at)
    return (minutes > DELAY_THRESHOLD_MINUTES).astype("int8")
