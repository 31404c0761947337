"""The frame path: pandas frames of raw rows in, the feature frame out (training, evaluation,
drift, and predictions too large for the column path's lists).

``raw_columns`` reads each raw field once, cleaned as ``values`` cleans it; ``feature_frame``
turns those columns and the fitted lookups into the model's frame; ``codes_matrix`` is that frame
as the float matrix a LightGBM booster takes, the form the other two paths build directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flight_delay.data import schema
from flight_delay.features import delay_rates
from flight_delay.features.calendar import holiday_distances, is_high_season
from flight_delay.features.record_path import given_number
from flight_delay.features.sets import DELAY_RATE_KEYS, SOURCE_FIELDS, get_feature_set
from flight_delay.features.values import (
    CODE_FIELDS,
    DIGITS,
    clean_field,
    parse_month,
    scheduled_times,
)

if TYPE_CHECKING:
    from flight_delay.features.transformer import FlightFeatures


def text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as clean text (see ``clean_field``: codes in upper case); missing values are NaN."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=object)
    values = frame[column]
    if values.dtype != object and pd.api.types.is_string_dtype(values):
        stripped = values.str.strip()  # the loader's text columns: the vectorised twin
        if column in CODE_FIELDS:
            stripped = stripped.str.upper()
        return stripped.where(stripped != "")
    return values.map(lambda value: clean_field(column, value)).astype(object)


def spellings(values: pd.Series) -> dict[str, str]:
    """Each casefolded value -> the spelling it has most often (ties: the first in order), so a
    name written in several cases is one category, spelled as the data mostly spells it."""
    counts = values.dropna().astype(str).value_counts(sort=False)
    best: dict[str, tuple[int, str]] = {}
    for spelling, count in sorted(counts.items()):
        key = spelling.casefold()
        if key not in best or count > best[key][0]:
            best[key] = (int(count), spelling)
    return {key: spelling for key, (_, spelling) in best.items()}


def respell(values: pd.Series, spelling_of: Mapping[str, str]) -> pd.Series:
    """``values`` in the spellings of ``spelling_of`` (case-blind); others stay as they are."""
    return values.map(
        lambda value: spelling_of.get(value.casefold(), value) if isinstance(value, str) else value
    ).astype(object)


def categorical(values: pd.Series, categories: list[str]) -> pd.Categorical:
    """Values as a categorical over the training categories; an unseen value becomes missing."""
    return pd.Categorical(values.where(values.isin(categories)), categories=categories)


def _flight_key(frame: pd.DataFrame) -> pd.Series:
    """Flight numbers repeat across carriers, so the key is carrier code plus number (LAN-11)."""
    # as objects: a text column of pandas' string dtype plus an all-missing object column raises
    carrier = text_column(frame, schema.CARRIER_CODE).astype(object)
    return carrier + "-" + text_column(frame, schema.FLIGHT_NUMBER).astype(object)


def _scheduled_at(frame: pd.DataFrame) -> pd.Series:
    if schema.SCHEDULED_AT not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    values = frame[schema.SCHEDULED_AT]
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    times = scheduled_times(values.tolist())
    return pd.Series(times.astype("datetime64[ns]"), index=frame.index)


def _month(frame: pd.DataFrame, scheduled_at: pd.Series) -> pd.Series:
    """Month of the scheduled departure; MES only stands in when Fecha-I is not given."""
    month = scheduled_at.dt.month.astype(float)
    if schema.MONTH in frame.columns and month.isna().any():
        month = month.fillna(frame[schema.MONTH].map(parse_month).astype(float))
    return month


def _whole_numbers_as_text(values: pd.Series) -> pd.Series:
    """3.0 -> "3"; missing stays missing (NaN), as object values."""
    present = values.dropna()
    return present.astype(int).astype(str).astype(object).reindex(values.index)


def raw_columns(
    flights: pd.DataFrame,
    spelling_of: Mapping[str, Mapping[str, str]],
    given: Sequence[str] = (),
) -> pd.DataFrame:
    """Each raw field the features read, once: categorical sources (respelled as training
    spelled them, per feature in ``spelling_of``), the flight key, the parsed scheduled time,
    the month and hour as text (the delay-rate keys), and the ``given`` features as numbers
    (missing: NaN)."""
    raw = pd.DataFrame(index=flights.index)
    for name in given:
        if name not in flights.columns:
            raw[name] = np.nan
        elif pd.api.types.is_numeric_dtype(flights[name]) and not pd.api.types.is_bool_dtype(
            flights[name]
        ):
            raw[name] = flights[name].astype(float)
        else:  # as the record path reads one value: a number, else missing
            raw[name] = flights[name].map(given_number).astype(float)
    for name, column in SOURCE_FIELDS.items():
        raw[name] = text_column(flights, column)
        if name in spelling_of:
            raw[name] = respell(raw[name], spelling_of[name])
    raw["flight_number"] = _flight_key(flights)
    raw["flight_number_text"] = text_column(flights, schema.FLIGHT_NUMBER).astype(object)
    # parsed once here: transform, fit and the schedule features all read it from raw
    scheduled = _scheduled_at(flights)
    raw["scheduled_at"] = scheduled
    raw["month"] = _whole_numbers_as_text(_month(flights, scheduled))
    raw["hour"] = _whole_numbers_as_text(scheduled.dt.hour)
    return raw


def rate_keys(raw: pd.DataFrame, names: list[str]) -> dict[str, pd.Series]:
    """Each rate feature's key per row: its fields' values joined by "|" (missing if any is)."""
    keys = {}
    for name in names:
        fields = DELAY_RATE_KEYS[name]
        key = raw[fields[0]].astype(object)
        for field in fields[1:]:
            key = key + "|" + raw[field].astype(object)
        keys[name] = key
    return keys


def feature_frame(
    features: FlightFeatures,
    raw: pd.DataFrame,
    rates: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The feature frame of ``raw_columns``' columns; ``rates`` replaces the learned delay-rate
    lookups (the out-of-fold rates of training rows)."""
    spec = get_feature_set(features.feature_set)
    out = pd.DataFrame(index=raw.index)
    for name in spec.categorical:
        out[name] = categorical(raw[name], features.categories_[name])
    if spec.uses_schedule:
        _add_schedule_features(features, out, raw)
    for name in spec.given:
        out[name] = raw[name]
    if rates:
        for name, values in rates.items():
            out[name] = values
    else:
        for name, keys in rate_keys(raw, features.rate_names()).items():
            out[name] = delay_rates.lookup(
                keys, features.delay_rates_[name], features.delay_rate_prior_
            )
    return out[list(spec.columns)]


def _add_schedule_features(features: FlightFeatures, out: pd.DataFrame, raw: pd.DataFrame) -> None:
    scheduled = raw["scheduled_at"]
    dow = scheduled.dt.day_of_week.to_numpy()
    hour = scheduled.dt.hour.to_numpy()
    month = scheduled.dt.month.to_numpy()
    day = scheduled.dt.day.to_numpy()
    out["hour"] = hour.astype(float)
    out["minute_of_day"] = (hour * 60 + scheduled.dt.minute.to_numpy()).astype(float)
    out["day_of_week"] = dow.astype(float)
    out["day_of_month"] = day.astype(float)
    out["month"] = month.astype(float)
    out["high_season"] = is_high_season(month, day).astype(float)
    days = scheduled.to_numpy().astype("datetime64[D]").astype(np.int64)
    out["days_to_holiday"], out["days_since_holiday"] = holiday_distances(days)
    number = raw["flight_number_text"].str.extract(f"({DIGITS.pattern})", expand=False)
    out["flight_number_value"] = pd.to_numeric(number, errors="coerce").astype(float)
    out["slot_flights_per_week"] = features.slot_flights_per_week_[dow, hour]
    out["weekday_flights_per_week"] = features.weekday_flights_per_week_[dow]
    airline_index = out["airline"].cat.codes.to_numpy()
    known = airline_index >= 0
    airline_slot = np.full(len(out), np.nan)
    airline_slot[known] = features.airline_slot_flights_per_week_[
        airline_index[known], dow[known], hour[known]
    ]
    out["airline_slot_flights_per_week"] = airline_slot
    out["flight_number_flights_per_week"] = (
        raw["flight_number"].map(features.flight_number_flights_per_week_).astype(float).fillna(0.0)
    )


def codes_matrix(transformed: pd.DataFrame) -> np.ndarray:
    """``transform``'s frame as the float matrix a LightGBM booster takes: categories as their
    codes, unseen or missing as NaN (what LightGBM does with a pandas frame itself)."""
    matrix = np.empty(transformed.shape, dtype=np.float64)
    for j, (_, column) in enumerate(transformed.items()):
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            matrix[:, j] = codes
        else:
            matrix[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix
