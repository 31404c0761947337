"""Live predictions: a ``live`` model's flights, with what the departures feed had seen by ``as_of``.

A flight scheduled at T, asked about at A (``as_of``, the airport's local clock), gets the
point-in-time features of the departures the feed holds from before A (the one definition of
:mod:`flight_delay.features.live`, which training uses too) and its lead time T - A. It gets
nothing observed (every given feature missing: the model's schedule part answers, see
:mod:`flight_delay.ml.live_model`) when it is asked further ahead than the longest lead time the model was trained at, or when
the feed has seen no departure in ``max_feed_age`` minutes before A (a feed that stopped is
not a quiet airport); each such flight is named in the warnings. The feed is read once per
request (one Redis read while it is unchanged: each process keeps it indexed), whatever the
number of flights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import redis

from flight_delay.data import schema
from flight_delay.departures import DepartureFeed, airport_now
from flight_delay.errors import FlightIssue, InvalidFlights
from flight_delay.features import get_feature_set
from flight_delay.features.live import (
    LEAD_FEATURE,
    LOOKBACK_MINUTES,
    Asked,
    DepartureIndex,
    Departures,
    lead_label,
    minute_text,
)
from flight_delay.features.values import parse_scheduled, scheduled_times
from flight_delay.ml.artifacts import TrainedModel

log = logging.getLogger(__name__)


def given_features(model: TrainedModel) -> tuple[str, ...]:
    """The features the service computes for ``model`` (none: not a live model)."""
    return get_feature_set(model.features.feature_set).given


def longest_lead(model: TrainedModel) -> int:
    """The longest lead time, in minutes, the model was trained at."""
    leads = model.metadata["evaluation"].get("lead_times") or []
    return max((int(lead) for lead in leads if lead != lead_label(None)), default=0)


def as_minute(moment: datetime) -> int:
    """A naive local time -> minutes since 1970-01-01 of that clock (the features' unit)."""
    return int(np.datetime64(moment.replace(second=0, microsecond=0), "m").astype(np.int64))


def refuse_given_fields(flights: Sequence[Mapping[str, Any]], given: Sequence[str]) -> None:
    """A caller does not send what the service computes: a flight carrying a lead time or a
    point-in-time feature is refused, not trusted."""
    names = set(given)
    issues = [
        FlightIssue(index, name, "computed by the service from the departures feed; not sent")
        for index, flight in enumerate(flights)
        for name in flight
        if name in names
    ]
    if issues:
        raise InvalidFlights(issues)


@dataclass(frozen=True)
class FeedState:
    """What the feed had seen by ``as_of``, as the answer reports it."""

    as_of: str
    departures: int
    newest_departure: str | None
    age_minutes: int | None
    fresh: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "departures": self.departures,
            "newest_departure": self.newest_departure,
            "age_minutes": self.age_minutes,
            "fresh": self.fresh,
        }


@dataclass(frozen=True)
class LiveFlights:
    """The flights to predict, each with its given features (when observed)."""

    flights: list[dict[str, Any]]
    #: per flight, the lead time used in minutes, or None: nothing observed
    leads: list[int | None]
    feed: FeedState
    warnings: list[FlightIssue] = field(default_factory=list)


def live_flights(
    flights: Sequence[Mapping[str, Any]],
    as_of: datetime,
    feed: DepartureFeed,
    longest: int,
    max_feed_age_minutes: int,
) -> LiveFlights:
    """``flights`` (checked against the model's contract already) with their lead times and
    point-in-time features at ``as_of``.

    Raises:
        InvalidFlights: a flight scheduled before ``as_of`` (it has left, or should have).
    """
    at = as_minute(as_of)
    times = scheduled_times([flight.get(schema.SCHEDULED_AT) for flight in flights])
    known = ~np.isnat(times)
    scheduled = np.zeros(len(flights), dtype=np.int64)
    scheduled[known] = times[known].astype("datetime64[m]").astype(np.int64)
    early = np.flatnonzero(known & (scheduled < at))
    if early.size:
        raise InvalidFlights(
            [
                FlightIssue(
                    int(i),
                    schema.SCHEDULED_AT,
                    f"scheduled at {minute_text(scheduled[i])}, before as_of "
                    f"({minute_text(at)}): a flight is predicted before it is due to leave",
                )
                for i in early
            ]
        )
    unreadable = ""
    try:
        index = feed.indexed()
    except redis.RedisError as exc:
        # predictions go on without Redis: a feed that cannot be read is a feed with nothing
        log.warning("reading the departures feed failed: %s", exc)
        index, unreadable = DepartureIndex(Departures.from_events([])), type(exc).__name__
    newest = index.newest_before(at)
    age = None if newest is None else at - newest
    fresh = age is not None and age <= max_feed_age_minutes
    state = FeedState(
        as_of=minute_text(at),
        departures=index.count_between(at - LOOKBACK_MINUTES, at),
        newest_departure=None if newest is None else minute_text(newest),
        age_minutes=age,
        fresh=fresh,
    )
    lead = scheduled - at
    observed = known & (lead <= longest) & fresh
    warnings: list[FlightIssue] = []
    if not fresh:
        why = (
            f"the departures feed could not be read ({unreadable})"
            if unreadable
            else "the departures feed holds nothing before as_of"
            if newest is None
            else f"the departures feed's newest departure is {age} minutes before as_of "
            f"(more than FLIGHT_DELAY_LIVE_FEED_MAX_AGE_MINUTES, {max_feed_age_minutes})"
        )
        warnings = [
            FlightIssue(i, "as_of", f"{why}: predicted with nothing observed")
            for i in range(len(flights))
        ]
    else:
        warnings = [
            FlightIssue(
                int(i),
                "as_of",
                f"asked {int(lead[i])} minutes ahead, beyond the longest lead time the model "
                f"was trained at ({longest}): predicted with nothing observed",
            )
            for i in np.flatnonzero(known & (lead > longest))
        ]
    rows = np.flatnonzero(observed)
    out = [dict(flight) for flight in flights]
    leads: list[int | None] = [None] * len(flights)
    if rows.size:
        picked = [flights[i] for i in rows.tolist()]
        asked = Asked.build(
            scheduled[rows],
            np.full(rows.size, at, dtype=np.int64),
            [flight.get(schema.CARRIER_CODE) for flight in picked],
            [flight.get(schema.DESTINATION) for flight in picked],
            [flight.get(schema.FLIGHT_NUMBER) for flight in picked],
        )
        values = index.records(asked)
        for i, features in zip(rows.tolist(), values, strict=True):
            leads[i] = int(lead[i])
            out[i].update(features)
            out[i][LEAD_FEATURE] = float(lead[i])
    return LiveFlights(out, leads, state, warnings)


def prepare(
    model: TrainedModel,
    flights: Sequence[Mapping[str, Any]],
    as_of: str | None,
    config: Mapping[str, Any],
    feed: DepartureFeed,
) -> LiveFlights | list[FlightIssue]:
    """What ``POST /predict`` does before predicting: a live model's flights with their
    features at ``as_of`` (default: the airport's clock now); for any other model, the warnings
    that ``as_of`` is not used (none without it).

    Raises:
        InvalidFlights: a flight the model refuses, one that carries a computed feature, or
        one scheduled before ``as_of``.
    """
    given = given_features(model)
    if not given:
        if as_of is None:
            return []
        return [
            FlightIssue(i, "as_of", "the deployed model uses no live departures: as_of is not used")
            for i in range(len(flights))
        ]
    refuse_given_fields(flights, given)
    model.features.check_flights(flights)  # its field errors first, as without as_of
    moment = (
        airport_now(str(config["AIRPORT_TIMEZONE"])) if as_of is None else parse_scheduled(as_of)
    )
    assert moment is not None  # the request schema checked it
    return live_flights(
        flights, moment, feed, longest_lead(model), int(config["LIVE_FEED_MAX_AGE_MINUTES"])
    )
