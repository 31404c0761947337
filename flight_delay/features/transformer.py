"""``FlightFeatures``: the scikit-learn transformer of a model's pipeline. It learns the lookups
(categories, how busy the schedule is, delay rates) and hands them to the three build paths.

Every feature is computable for a single flight: what is learned from training rows is a lookup,
never a count over the rows being predicted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from flight_delay.errors import FlightIssue
from flight_delay.features import column_path, contract, delay_rates, frame_path, record_path
from flight_delay.features.live import LEAD_FEATURE
from flight_delay.features.sets import (
    DEFAULT_FEATURE_SET,
    DELAY_RATE_KEYS,
    MONTHS,
    SOURCE_FIELDS,
    get_feature_set,
)


class FlightFeatures(TransformerMixin, BaseEstimator):
    """Turn raw SCL rows into a model-ready frame.

    Categorical features come out as pandas ``category`` columns with the categories seen in
    training (an unseen value becomes missing), numeric features as floats.

    Args:
        feature_set: a name of ``FEATURE_SETS`` (default ``"schedule"``).
    """

    def __init__(self, feature_set: str = DEFAULT_FEATURE_SET) -> None:
        self.feature_set = feature_set

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, flights: pd.DataFrame, y: Any = None) -> FlightFeatures:
        """Learn categories, schedule load and delay rates from the training rows.

        Args:
            flights: raw training rows.
            y: their labels (1: delayed); the delay-rate features need them.

        Raises:
            ValueError: the feature set has delay rates and ``y`` is missing.
        """
        return self._fit(self._raw_columns(flights), y)

    def _fit(self, raw: pd.DataFrame, y: Any) -> FlightFeatures:
        spec = get_feature_set(self.feature_set)
        for cache in ("_case_blind_codes", "_spelling_cache"):  # a refit learns anew
            self.__dict__.pop(cache, None)
        self.categories_: dict[str, list[str]] = {}
        for name in spec.categorical:
            if name == "month":
                self.categories_[name] = MONTHS
            else:
                # case-blind: "Sky Airline" and "SKY AIRLINE" are one airline, in one spelling
                spellings = frame_path.spellings(raw[name])
                raw[name] = frame_path.respell(raw[name], spellings)
                self.categories_[name] = sorted(spellings.values())
        if spec.uses_schedule:
            self._fit_schedule_load(_one_row_per_flight(raw, spec.given))
        rates = self.rate_names()
        if rates:
            if y is None:
                raise ValueError(f"the {spec.name!r} features learn delay rates: pass the labels")
            self.delay_rate_prior_, self.delay_rates_ = delay_rates.fit_rates(
                frame_path.rate_keys(raw, rates), np.asarray(y, dtype=float)
            )
        self.feature_names_out_ = list(spec.columns)
        return self

    def fit_transform(self, flights: pd.DataFrame, y: Any = None, **fit_params: Any) -> Any:
        """Fit, then transform the training rows with *out-of-fold* delay rates: each row's rate
        is learned without its own label (what ``Pipeline.fit`` and ``train`` use). ``transform``
        on the same rows would use rates that saw their labels: fine to predict, wrong to fit on.
        """
        raw = self._raw_columns(flights)
        self._fit(raw, y)
        rates = self.rate_names()
        held_out = (
            delay_rates.out_of_fold_rates(
                frame_path.rate_keys(raw, rates), np.asarray(y, dtype=float)
            )
            if rates
            else {}
        )
        return frame_path.feature_frame(self, raw, held_out)

    def _fit_schedule_load(self, raw: pd.DataFrame) -> None:
        """Learn average flights per week in each (weekday, hour) slot, per weekday, per airline
        slot and per flight number: how busy the schedule is, computable for a single flight."""
        scheduled = raw["scheduled_at"]
        weeks = max(scheduled.dt.normalize().nunique() / 7.0, 1.0)
        dow = scheduled.dt.day_of_week.to_numpy()
        hour = scheduled.dt.hour.to_numpy()
        slot = np.zeros((7, 24))
        np.add.at(slot, (dow, hour), 1.0)
        self.slot_flights_per_week_ = slot / weeks
        self.weekday_flights_per_week_ = slot.sum(axis=1) / weeks
        airlines = self.categories_["airline"]
        airline_index = frame_path.categorical(raw["airline"], airlines).codes
        per_airline = np.zeros((len(airlines), 7, 24))
        np.add.at(per_airline, (airline_index, dow, hour), 1.0)
        self.airline_slot_flights_per_week_ = per_airline / weeks
        self.flight_number_flights_per_week_ = (
            raw["flight_number"].value_counts() / weeks
        ).to_dict()

    # -- the three build paths ---------------------------------------------------------------
    def transform(self, flights: pd.DataFrame) -> pd.DataFrame:
        """The feature frame of raw rows (the frame path)."""
        return frame_path.feature_frame(self, self._raw_columns(flights))

    def _raw_columns(self, flights: pd.DataFrame) -> pd.DataFrame:
        fitted = hasattr(self, "categories_")
        return frame_path.raw_columns(
            flights,
            self.spellings_by_feature() if fitted else {},
            get_feature_set(self.feature_set).given,
        )

    def records_matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``transform``'s numbers as a booster's float matrix, one checked record at a time
        (see ``record_path``)."""
        return record_path.records_matrix(self, records)

    def columns_matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``records_matrix``'s numbers for large batches, column by column (see ``column_path``)."""
        return column_path.columns_matrix(self, records)

    codes_matrix = staticmethod(frame_path.codes_matrix)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)

    # -- the input contract (see ``contract``) -------------------------------------------------
    def input_schema(self) -> dict[str, Any]:
        """What a caller must send for one flight: required fields and allowed values."""
        return contract.input_schema(get_feature_set(self.feature_set), self.categories_)

    def check_flights(self, flights: pd.DataFrame | Sequence[Mapping[str, Any]]) -> None:
        """Raise :class:`InvalidFlights` listing every offending flight index and field."""
        # the codes are cached: the single-flight path is hot
        contract.check_flights(get_feature_set(self.feature_set), self.category_codes(), flights)

    def flight_warnings(
        self, flights: pd.DataFrame | Sequence[Mapping[str, Any]]
    ) -> list[FlightIssue]:
        """Open fields whose value the model never saw in training (predicted anyway)."""
        if not get_feature_set(self.feature_set).uses_schedule:
            return []
        return contract.unseen_value_warnings(
            self.category_codes(), self.flight_number_flights_per_week_, flights
        )

    # -- the learned lookups, as the paths read them -----------------------------------------
    def rate_names(self) -> list[str]:
        """The delay-rate features of this feature set, in column order."""
        return [n for n in get_feature_set(self.feature_set).numeric if n in DELAY_RATE_KEYS]

    def category_codes(self) -> dict[str, dict[str | None, float]]:
        """Each category's code, under its spelling and its casefolded form (case-blind)."""
        cached: dict[str, dict[str | None, float]] | None = getattr(self, "_case_blind_codes", None)
        if cached is None:
            cached = {}
            for name, values in self.categories_.items():
                codes: dict[str | None, float] = {}
                for i, value in enumerate(values):
                    codes.setdefault(value.casefold(), float(i))
                for i, value in enumerate(values):
                    codes[value] = float(i)
                cached[name] = codes
            self._case_blind_codes = cached
        return cached

    def spellings_by_feature(self) -> dict[str, dict[str, str]]:
        """Each categorical feature's casefolded value -> its category's spelling."""
        cached: dict[str, dict[str, str]] | None = getattr(self, "_spelling_cache", None)
        if cached is None:
            cached = {
                name: {value.casefold(): value for value in reversed(values)}
                for name, values in self.categories_.items()
                if name in SOURCE_FIELDS
            }
            self._spelling_cache = cached
        return cached

    def spelling(self, name: str, value: str | None) -> str | None:
        """``value`` in its category's spelling (case-blind); unknown values as they are."""
        if value is None:
            return None
        return self.spellings_by_feature()[name].get(value.casefold(), value)


def _one_row_per_flight(raw: pd.DataFrame, given: Sequence[str]) -> pd.DataFrame:
    """The rows to learn how busy the schedule is from. A live training frame holds each flight
    once per lead time: the rows with nothing observed (lead missing), else those of the
    shortest lead time, are the flights, each once."""
    if LEAD_FEATURE not in given:
        return raw
    lead = raw[LEAD_FEATURE]
    once = lead.isna() if lead.isna().any() else lead == lead.min()
    return raw.loc[once] if once.any() else raw
