"""The departures feed in a real Redis: what it keeps, for how long, what a reader gets back, and
that features built from it equal those built from the history file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import redis

from flight_delay.data import make_synthetic_flights, schema
from flight_delay.departures import FEED_RETENTION_MINUTES, DepartureFeed
from flight_delay.features.live import (
    IDENTITY_FIELDS,
    LOOKBACK_MINUTES,
    Asked,
    Departures,
    minutes,
    point_in_time,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def feed_of(client: redis.Redis, max_events: int = 100_000) -> DepartureFeed:
    return DepartureFeed(client, f"feed{uuid.uuid4().hex[:8]}", max_events)


def event(scheduled: str, actual: str, number: str = "11", airline: str = "LAN") -> dict[str, Any]:
    return {
        schema.SCHEDULED_AT: scheduled,
        schema.CARRIER_CODE: airline,
        schema.FLIGHT_NUMBER: number,
        schema.DESTINATION: "SCFA",
        schema.OPERATED_AT: actual,
    }


def test_a_reader_gets_what_left_before_the_as_of_time_within_the_lookback(
    client: redis.Redis,
) -> None:
    feed = feed_of(client)
    feed.record(
        [
            event("2017-03-02 06:00:00", "2017-03-02 06:05:00", "1"),
            event("2017-03-02 08:30:00", "2017-03-02 09:00:00", "2"),  # at A: not yet
            event("2017-02-28 06:00:00", "2017-02-28 08:59:00", "3"),  # > 48 h before A
            event("2017-02-28 09:00:00", "2017-02-28 09:01:00", "4"),
        ]
    )
    seen = feed.before(int(minutes(["2017-03-02 09:00:00"])[0]))
    assert sorted(f.split("/")[1] for f in seen.flight) == ["1", "4"]


def test_the_same_flight_sent_again_replaces_itself_in_any_order(client: redis.Redis) -> None:
    feed = feed_of(client)
    first = feed.record([event("2017-03-02 06:00:00", "2017-03-02 06:05:00")])
    assert (first["stored"], first["size"]) == (1, 1)
    again = feed.record([event("2017-03-02 06:00:00", "2017-03-02 06:05:00")])
    assert (again["stored"], again["unchanged"], again["size"]) == (0, 1, 1)
    corrected = feed.record([event("2017-03-02 06:00:00", "2017-03-02 06:25:00")])
    assert (corrected["replaced"], corrected["size"]) == (1, 1)
    seen = feed.before(int(minutes(["2017-03-02 07:00:00"])[0]))
    assert list(seen.actual - seen.scheduled) == [25]
    # a different destination is another scheduled flight
    other = dict(
        event("2017-03-02 06:00:00", "2017-03-02 06:05:00"), **{schema.DESTINATION: "SCIE"}
    )
    assert feed.record([other])["size"] == 2


def test_the_feed_keeps_its_retention_behind_its_newest_departure(client: redis.Redis) -> None:
    feed = feed_of(client)
    feed.record([event("2017-03-01 06:00:00", "2017-03-01 06:00:00", "1")])
    # the newest moves 50 h on: the first falls out, late events that old are not kept
    later = feed.record([event("2017-03-03 08:00:00", "2017-03-03 08:00:00", "2")])
    assert (later["evicted"], later["size"]) == (1, 1)
    late = feed.record([event("2017-03-01 05:00:00", "2017-03-01 05:10:00", "3")])
    assert (late["too_old"], late["size"]) == (1, 1)
    assert FEED_RETENTION_MINUTES > LOOKBACK_MINUTES


def test_a_flood_is_capped_oldest_first(client: redis.Redis) -> None:
    feed = feed_of(client, max_events=5_000)
    start = pd.Timestamp("2017-03-01 00:00:00")
    sent = 0
    for _ in range(20):  # 20,000 events, 10 per minute
        events = []
        for i in range(1_000):
            when = (start + pd.Timedelta(minutes=(sent + i) // 10)).strftime("%Y-%m-%d %H:%M:%S")
            events.append(event(when, when, str(sent + i)))
        sent += len(events)
        outcome = feed.record(events)
        assert outcome["size"] <= 5_000
    summary = feed.summary()
    assert summary["size"] == 5_000
    assert client.hlen(feed.events_key) == 5_000  # nothing left behind in the event hash
    # the newest 5,000 stayed: the last minute sent is the newest kept
    assert (
        summary["newest_minute"]
        == int(minutes([start.strftime("%Y-%m-%d %H:%M:%S")])[0]) + (sent - 1) // 10
    )


def test_features_from_the_feed_equal_those_from_the_history_file(client: redis.Redis) -> None:
    history = make_synthetic_flights(40_000, seed=21)
    # two days: what the feed keeps behind its newest departure (June 20th's last)
    day = history[history[schema.SCHEDULED_AT].str[:10].isin(["2017-06-19", "2017-06-20"])]
    # the synthetic file repeats scheduled flights; the feed keeps whichever came last
    day = day.drop_duplicates(list(IDENTITY_FIELDS))
    feed = feed_of(client)
    records = day.sample(frac=1.0, random_state=1).to_dict("records")
    for start in range(0, len(records), 97):  # out of order, in uneven batches
        feed.record(records[start : start + 97])
    asked_rows = day[day[schema.SCHEDULED_AT] >= "2017-06-20 08:00:00"].head(40)
    scheduled = minutes(asked_rows[schema.SCHEDULED_AT])
    for lead in (30, 120, 360):
        asked = Asked.build(
            scheduled,
            scheduled - lead,
            asked_rows[schema.CARRIER_CODE],
            asked_rows[schema.DESTINATION],
            asked_rows[schema.FLIGHT_NUMBER],
        )
        from_file = point_in_time(asked, Departures.from_frame(day))
        rows = [
            point_in_time(
                Asked(*(part[i : i + 1] for part in vars(asked).values())),
                feed.before(int(asked.as_of[i])),
            )
            for i in range(len(scheduled))
        ]
        pd.testing.assert_frame_equal(from_file, pd.concat(rows, ignore_index=True))
