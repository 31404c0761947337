"""Point-in-time features: what the airport has already seen when a flight is asked about.

For a flight scheduled at T and asked about at A (the *as-of* time, A <= T), only departures whose
actual time is before A count, and only those of the ``LOOKBACK`` before A. One definition serves
training (departures built from a history file's ``Fecha-O``) and serving (departures built from
the live feed): both build a :class:`Departures` and call :func:`point_in_time`, so the same
departures give the same features, whichever way they came.

Features, for each group of departures (all of them, the flight's airline, its destination, the
same flight: airline and number) and each window (the last 3, 6 and 12 hours before A; the
flight's scheduled day up to A; the day before it):

- ``n``: how many left in the window, ``late_share``: the share of those more than 15 minutes
  late, ``mean_delay``: their mean delay in minutes (both NaN when none left);

and per group ``minutes_since_last`` (NaN when none left in the lookback). With a schedule (the
flights expected, departed or not), ``overdue``: how many flights scheduled in the 3 hours before
A had not left by A (all, and the flight's airline).

Times are minutes since 1970-01-01 of the airport's local clock (the file's and the feed's naive
``YYYY-MM-DD HH:MM:SS``), as int64.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flight_delay.data import schema

#: how far back from the as-of time a departure can count (the feed keeps at least this much)
LOOKBACK_MINUTES = 48 * 60
#: the windows before A, by name: (start, end) relative to A, or to the flight's day
HOURS_WINDOWS = (3, 6, 12)
DAY_MINUTES = 24 * 60
#: how long past its scheduled time a flight that has not left counts as overdue
OVERDUE_WINDOW_MINUTES = 3 * 60
GROUPS = ("all", "airline", "destination", "flight")
WINDOWS = (*(f"{hours}h" for hours in HOURS_WINDOWS), "today", "yesterday")
STATS = ("n", "late_share", "mean_delay")
#: a time later than any real one: "has not left (yet)"
NOT_DEPARTED = np.iinfo(np.int64).max // 4
# composite sort keys: group code * _SPAN + minutes; |minutes| < 2**31 for any supported date
# (1950..2100), so each group's span never reaches the next one's
_SPAN = np.int64(2**32)


#: the lead times, minutes before the scheduled time, at which training samples every flight;
#: None: nothing observed (an empty or stale feed, a flight asked further ahead than the rest:
#: the schedule model answers, see flight_delay.ml.live_model). 6 h was tried: on November-
#: December the booster did worse there than the schedule model (ROC AUC 0.680 against 0.687),
#: and dropping it raised every shorter lead time (30 min: 0.710 -> 0.713)
TRAINING_LEADS: tuple[int | None, ...] = (30, 60, 120, 180, None)
#: the feature that tells the model how far ahead it is asked (NaN: nothing observed)
LEAD_FEATURE = "lead_minutes"


def given_feature_names() -> list[str]:
    """The columns the service computes for a ``live`` model and passes in with each flight:
    the lead time, then the point-in-time features (all NaN: nothing observed)."""
    return [LEAD_FEATURE, *feature_names(with_schedule=False)]


def lead_label(lead: float | None) -> str:
    """How metrics name a lead time: "30", "60", ..., or "none"."""
    return "none" if lead is None or lead != lead else str(int(lead))


def at_lead_times(
    frame: pd.DataFrame, leads: Iterable[int | None] = TRAINING_LEADS
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every flight of a history file once per lead time, with the features known then.

    A flight scheduled at T sampled at lead L is asked at A = T - L and sees only the departures
    of ``frame`` (its ``Fecha-O``) before A; at lead None it sees nothing (every given column
    NaN), as a flight is served when the feed is empty. Returns the rows (each flight's columns
    plus :func:`given_feature_names`, lead by lead) and, per row, the position of its flight
    in ``frame``.
    """
    departures = Departures.from_frame(frame)
    scheduled = minutes(frame[schema.SCHEDULED_AT])
    names = feature_names(with_schedule=False)
    pieces = []
    for lead in leads:
        if lead is None:
            live = pd.DataFrame(np.nan, index=range(len(frame)), columns=names)
        else:
            asked = Asked.build(
                scheduled,
                scheduled - int(lead),
                frame[schema.CARRIER_CODE],
                frame[schema.DESTINATION],
                frame[schema.FLIGHT_NUMBER],
            )
            live = point_in_time(asked, departures)
        live.insert(0, LEAD_FEATURE, np.nan if lead is None else float(lead))
        pieces.append(live)
    positions = np.tile(np.arange(len(frame)), len(pieces))
    rows = frame.iloc[positions].reset_index(drop=True)
    given = pd.concat(pieces, ignore_index=True)
    rows = pd.concat([rows.drop(columns=given.columns, errors="ignore"), given], axis=1)
    return rows, positions


def feature_names(with_schedule: bool = True) -> list[str]:
    """Every point-in-time feature's column name, in order."""
    names = [
        f"live_{group}_{window}_{stat}" for group in GROUPS for window in WINDOWS for stat in STATS
    ]
    names += [f"live_{group}_minutes_since_last" for group in GROUPS]
    if with_schedule:
        names += ["live_overdue_all", "live_overdue_airline"]
    return names


def minutes(values: Any) -> np.ndarray:
    """Naive datetimes (a Series, an array, strings) -> int64 minutes since 1970-01-01."""
    stamps = pd.to_datetime(pd.Series(values), format=schema.DATETIME_FORMAT)
    return (stamps.to_numpy(dtype="datetime64[m]").astype(np.int64)).astype(np.int64)


def minute_text(minute: int) -> str:
    """Minutes since 1970-01-01 -> ``YYYY-MM-DD HH:MM:SS`` (the inverse of :func:`minutes`)."""
    return str(np.datetime64(int(minute), "m").astype("datetime64[s]")).replace("T", " ")


def _code(value: Any) -> str | None:
    """A code as every group key reads it: text, stripped, upper case; missing is None.
    Plain Python: a request's few flights in microseconds, a year's file in a fraction of a
    second."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value).strip().upper()


def flight_key(airline: Any, number: Any) -> np.ndarray:
    """The same flight across days: ``Emp-I/Vlo-I``, in upper case (None when either is missing)."""
    keys = [
        None if a is None or n is None else f"{a}/{n}"
        for a, n in zip(map(_code, airline), map(_code, number), strict=True)
    ]
    return np.array(keys, dtype=object)


#: what names one scheduled flight: sent again, it replaces itself
IDENTITY_FIELDS = (
    schema.SCHEDULED_AT,
    schema.CARRIER_CODE,
    schema.FLIGHT_NUMBER,
    schema.DESTINATION,
)


def identities(frame: pd.DataFrame) -> np.ndarray:
    """Each row's scheduled flight, ``Fecha-I|Emp-I|Vlo-I|Des-I`` (codes stripped, upper case)."""
    parts = [frame[name].astype("string").str.strip().str.upper() for name in IDENTITY_FIELDS]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "|" + part
    return joined.to_numpy(dtype=object)


def _codes(values: Any) -> np.ndarray:
    return np.array([_code(value) for value in values], dtype=object)


@dataclass(frozen=True)
class Departures:
    """Departures that happened, sorted by actual time (then scheduled time, then flight)."""

    scheduled: np.ndarray  # int64 minutes
    actual: np.ndarray  # int64 minutes, ascending
    airline: np.ndarray  # Emp-I
    destination: np.ndarray  # Des-I
    flight: np.ndarray  # Emp-I/Vlo-I

    @classmethod
    def build(
        cls, scheduled: Any, actual: Any, airline: Any, destination: Any, number: Any
    ) -> Departures:
        frame = pd.DataFrame(
            {
                "scheduled": np.asarray(scheduled, dtype=np.int64),
                "actual": np.asarray(actual, dtype=np.int64),
                "airline": _codes(airline),
                "destination": _codes(destination),
                "flight": flight_key(airline, number),
            }
        ).sort_values(["actual", "scheduled", "flight"], kind="stable")
        return cls(
            frame["scheduled"].to_numpy(np.int64),
            frame["actual"].to_numpy(np.int64),
            frame["airline"].to_numpy(object),
            frame["destination"].to_numpy(object),
            frame["flight"].to_numpy(object),
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Departures:
        """The departures of a history file: ``Fecha-O`` is when each flight left. A scheduled
        flight listed twice counts once (its last row), as the feed keeps it once."""
        frame = frame.loc[~pd.Series(identities(frame), index=frame.index).duplicated(keep="last")]
        return cls.build(
            minutes(frame[schema.SCHEDULED_AT]),
            minutes(frame[schema.OPERATED_AT]),
            frame[schema.CARRIER_CODE],
            frame[schema.DESTINATION],
            frame[schema.FLIGHT_NUMBER],
        )

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> Departures:
        """The departures of the live feed: events of ``Fecha-I``, ``Fecha-O``, ``Emp-I``,
        ``Des-I`` and ``Vlo-I``, as text."""
        rows = list(events)
        return cls.build(
            minutes([e[schema.SCHEDULED_AT] for e in rows]),
            minutes([e[schema.OPERATED_AT] for e in rows]),
            [e[schema.CARRIER_CODE] for e in rows],
            [e[schema.DESTINATION] for e in rows],
            [e[schema.FLIGHT_NUMBER] for e in rows],
        )

    def __len__(self) -> int:
        return len(self.actual)


@dataclass(frozen=True)
class Schedule:
    """The flights expected, sorted by scheduled time: when each left, or ``NOT_DEPARTED``."""

    scheduled: np.ndarray  # int64 minutes, ascending
    actual: np.ndarray  # int64 minutes or NOT_DEPARTED
    airline: np.ndarray

    @classmethod
    def build(cls, scheduled: Any, actual: Any, airline: Any) -> Schedule:
        frame = pd.DataFrame(
            {
                "scheduled": np.asarray(scheduled, dtype=np.int64),
                "actual": np.asarray(actual, dtype=np.int64),
                "airline": _codes(airline),
            }
        ).sort_values(["scheduled", "actual", "airline"], kind="stable")
        return cls(
            frame["scheduled"].to_numpy(np.int64),
            frame["actual"].to_numpy(np.int64),
            frame["airline"].to_numpy(object),
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Schedule:
        """A history file's flights, each with the time it left."""
        return cls.build(
            minutes(frame[schema.SCHEDULED_AT]),
            minutes(frame[schema.OPERATED_AT]),
            frame[schema.CARRIER_CODE],
        )


@dataclass(frozen=True)
class Asked:
    """The flights asked about, each with its as-of time."""

    scheduled: np.ndarray  # int64 minutes
    as_of: np.ndarray  # int64 minutes, <= scheduled
    airline: np.ndarray
    destination: np.ndarray
    flight: np.ndarray

    @classmethod
    def build(
        cls, scheduled: Any, as_of: Any, airline: Any, destination: Any, number: Any
    ) -> Asked:
        return cls(
            np.asarray(scheduled, dtype=np.int64),
            np.asarray(as_of, dtype=np.int64),
            _codes(airline),
            _codes(destination),
            flight_key(airline, number),
        )


class _Index:
    """Departures sorted by (group, actual time) with running sums: any window's count, late
    count and delay sum in two binary searches."""

    def __init__(self, departures: Departures, keys: np.ndarray | None, codes: dict[Any, int]):
        group = np.zeros(len(departures), dtype=np.int64)
        if keys is not None:
            group = np.array([codes[k] for k in keys], dtype=np.int64)
        composite = group * _SPAN + departures.actual
        order = np.argsort(composite, kind="stable")
        self.composite = composite[order]
        self.group = group[order]
        delay = (departures.actual - departures.scheduled)[order].astype(np.float64)
        self.actual = departures.actual[order]
        self.late = np.concatenate(([0], np.cumsum(delay > schema.DELAY_THRESHOLD_MINUTES)))
        self.delay = np.concatenate(([0.0], np.cumsum(delay)))

    def positions(self, group: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Index of the first departure of ``group`` at or after ``times`` (a group of -1 has
        no departures: its searches land before every real one, so its windows are empty)."""
        return np.searchsorted(self.composite, group * _SPAN + times, side="left")


class DepartureIndex:
    """Departures ready to answer for any flight and as-of time: per group, the departures
    sorted with running sums. Built once, it serves every question until the departures
    change (the API keeps one per process for the live feed)."""

    def __init__(self, departures: Departures) -> None:
        self.departures = departures
        self._groups: dict[str, tuple[_Index, dict[Any, int]]] = {}
        for group in GROUPS:
            keys = None if group == "all" else getattr(departures, group)
            codes: dict[Any, int] = {}
            if keys is not None:
                codes = {key: code for code, key in enumerate(pd.unique(keys))}
            self._groups[group] = (_Index(departures, keys, codes), codes)

    def __len__(self) -> int:
        return len(self.departures)

    def newest_before(self, minute: int) -> int | None:
        """The latest actual time before ``minute`` (None: none)."""
        actual = self.departures.actual
        at = int(np.searchsorted(actual, minute, side="left"))
        return int(actual[at - 1]) if at else None

    def count_between(self, start: int, end: int) -> int:
        actual = self.departures.actual
        return int(np.searchsorted(actual, end, "left") - np.searchsorted(actual, start, "left"))

    def features(self, asked: Asked, schedule: Schedule | None = None) -> pd.DataFrame:
        """The point-in-time features of every flight in ``asked`` (one row each, in order)."""
        columns = self.columns(asked, schedule)
        return pd.DataFrame(columns, columns=list(columns))

    def records(self, asked: Asked) -> list[dict[str, float]]:
        """:meth:`features` as one dict per flight, without a frame (the API's few flights)."""
        columns = self.columns(asked)
        names = list(columns)
        rows = np.column_stack([columns[name] for name in names]).tolist()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def columns(self, asked: Asked, schedule: Schedule | None = None) -> dict[str, np.ndarray]:
        """:meth:`features`' columns, in :func:`feature_names` order."""
        out: dict[str, np.ndarray] = {}
        a = asked.as_of
        day = (asked.scheduled // DAY_MINUTES) * DAY_MINUTES
        horizon = a - LOOKBACK_MINUTES
        starts = [np.maximum(a - hours * 60, horizon) for hours in HOURS_WINDOWS]
        ends = [a] * len(HOURS_WINDOWS)
        starts += [np.maximum(day, horizon), np.maximum(day - DAY_MINUTES, horizon)]
        ends += [a, np.minimum(day, a)]
        # every window's bounds as one (windows x flights) array: one search per group
        start = np.stack(starts)
        end = np.maximum(np.stack(ends), start)  # an empty window, never a negative one
        n = len(a)
        for group in GROUPS:
            index, codes = self._groups[group]
            if group == "all":
                asked_codes = np.zeros(n, dtype=np.int64)
            else:
                asked_keys = getattr(asked, group)
                asked_codes = np.array([codes.get(k, -1) for k in asked_keys], dtype=np.int64)
            found_at = index.positions(
                np.broadcast_to(asked_codes, (2 * len(WINDOWS), n)), np.concatenate([start, end])
            )
            lo, hi = found_at[: len(WINDOWS)], found_at[len(WINDOWS) :]
            count = hi - lo
            with np.errstate(invalid="ignore", divide="ignore"):
                late = np.where(count > 0, (index.late[hi] - index.late[lo]) / count, np.nan)
                mean = np.where(count > 0, (index.delay[hi] - index.delay[lo]) / count, np.nan)
            for w, window in enumerate(WINDOWS):
                out[f"live_{group}_{window}_n"] = count[w].astype(np.float64)
                out[f"live_{group}_{window}_late_share"] = late[w]
                out[f"live_{group}_{window}_mean_delay"] = mean[w]
            hi = index.positions(asked_codes, a)
            found = np.zeros(len(a), dtype=bool)
            since = np.zeros(len(a), dtype=np.float64)
            if len(index.actual):
                last = np.maximum(hi - 1, 0)
                found = (
                    (hi > 0) & (index.group[last] == asked_codes) & (index.actual[last] >= horizon)
                )
                since = (a - index.actual[last]).astype(np.float64)
            out[f"live_{group}_minutes_since_last"] = np.where(found, since, np.nan)
        if schedule is not None:
            out.update(_overdue(asked, schedule))
        return {name: out[name] for name in feature_names(schedule is not None)}


def point_in_time(
    asked: Asked, departures: Departures, schedule: Schedule | None = None
) -> pd.DataFrame:
    """The point-in-time features of every flight in ``asked`` (one row each, in order): only
    the departures before each flight's as-of time, within the lookback, count."""
    return DepartureIndex(departures).features(asked, schedule)


def _overdue(asked: Asked, schedule: Schedule) -> dict[str, np.ndarray]:
    """Flights scheduled in the window before A that had not left by A: what is known at A
    is only whether each had left, never when it will."""
    a = asked.as_of
    every = np.zeros(len(a), dtype=np.float64)
    same_airline = np.zeros(len(a), dtype=np.float64)
    lows = np.searchsorted(schedule.scheduled, a - OVERDUE_WINDOW_MINUTES, "left")
    highs = np.searchsorted(schedule.scheduled, a, "left")
    for row, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
        waiting = schedule.actual[lo:hi] >= a[row]
        every[row] = waiting.sum()
        same_airline[row] = (waiting & (schedule.airline[lo:hi] == asked.airline[row])).sum()
    return {"live_overdue_all": every, "live_overdue_airline": same_airline}
