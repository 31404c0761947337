"""Point-in-time features (flight_delay.features.live): by hand on a small day, the same built from
a history file and from feed events, and a brute-force proof that nothing at or after the as-of
time, or older than the lookback, moves them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flight_delay.data import make_synthetic_flights, schema
from flight_delay.features.live import (
    IDENTITY_FIELDS,
    LOOKBACK_MINUTES,
    NOT_DEPARTED,
    Asked,
    Departures,
    Schedule,
    feature_names,
    minutes,
    point_in_time,
)


def at(text: str) -> int:
    return int(minutes([text])[0])


def departure(scheduled: str, actual: str, airline: str, destination: str, number: str) -> dict:
    return {
        schema.SCHEDULED_AT: scheduled,
        schema.OPERATED_AT: actual,
        schema.CARRIER_CODE: airline,
        schema.DESTINATION: destination,
        schema.FLIGHT_NUMBER: number,
    }


DAY = [
    departure("2017-03-01 23:00:00", "2017-03-01 23:40:00", "LAN", "SCFA", "11"),  # day before
    departure("2017-03-02 06:00:00", "2017-03-02 06:05:00", "LAN", "SCFA", "11"),
    departure("2017-03-02 07:00:00", "2017-03-02 07:30:00", "SKU", "SCIE", "20"),
    departure("2017-03-02 08:00:00", "2017-03-02 08:20:00", "LAN", "SCIE", "30"),
    # leaves at 09:00, the as-of time itself: not yet seen
    departure("2017-03-02 08:30:00", "2017-03-02 09:00:00", "LAN", "SCFA", "40"),
]


def test_the_features_of_a_small_day_by_hand() -> None:
    asked = Asked.build(
        [at("2017-03-02 10:00:00")], [at("2017-03-02 09:00:00")], ["lan"], ["SCFA"], ["11"]
    )
    row = point_in_time(asked, Departures.from_events(DAY)).iloc[0]
    # the last 3 hours (06:00-09:00): 06:05 (+5), 07:30 (+30), 08:20 (+20)
    assert row["live_all_3h_n"] == 3
    assert row["live_all_3h_late_share"] == pytest.approx(2 / 3)
    assert row["live_all_3h_mean_delay"] == pytest.approx(55 / 3)
    # LAN today: 06:05 (+5) and 08:20 (+20); the 09:00 departure is at A, not before it
    assert row["live_airline_today_n"] == 2
    assert row["live_airline_today_late_share"] == pytest.approx(0.5)
    assert row["live_airline_today_mean_delay"] == pytest.approx(12.5)
    # SCFA today: 06:05 only; yesterday: 23:40 (+40)
    assert row["live_destination_today_n"] == 1
    assert row["live_destination_yesterday_n"] == 1
    assert row["live_destination_yesterday_mean_delay"] == pytest.approx(40)
    # the same flight (LAN 11): yesterday +40, today +5 at 06:05
    assert row["live_flight_yesterday_late_share"] == 1
    assert row["live_flight_today_late_share"] == 0
    assert row["live_flight_minutes_since_last"] == 175
    assert row["live_all_minutes_since_last"] == 40
    # nothing of SKU's flight 20 for a flight never seen
    other = Asked.build(
        [at("2017-03-02 10:00:00")], [at("2017-03-02 09:00:00")], ["ZZZ"], ["KMIA"], ["1"]
    )
    row = point_in_time(other, Departures.from_events(DAY)).iloc[0]
    assert row["live_airline_today_n"] == 0
    assert np.isnan(row["live_airline_today_late_share"])
    assert np.isnan(row["live_flight_minutes_since_last"])
    assert row["live_all_today_n"] == 3


def test_overdue_counts_flights_past_their_time_that_had_not_left() -> None:
    frame = pd.DataFrame(DAY)
    schedule = Schedule.from_frame(frame)
    asked = Asked.build(
        [at("2017-03-02 10:00:00")], [at("2017-03-02 08:45:00")], ["LAN"], ["SCFA"], ["11"]
    )
    row = point_in_time(asked, Departures.from_frame(frame), schedule).iloc[0]
    # scheduled 05:45-08:45: 06:00 (left), 07:00 (left), 08:00 (left 08:20), 08:30 (not yet)
    assert row["live_overdue_all"] == 1
    assert row["live_overdue_airline"] == 1  # 08:30 is LAN's


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    # each scheduled flight once (the synthetic file repeats some), as the feed holds them
    return make_synthetic_flights(20_000, seed=11).drop_duplicates(list(IDENTITY_FIELDS))


def asked_at_lead_times(frame: pd.DataFrame, count: int, seed: int) -> Asked:
    rng = np.random.default_rng(seed)
    rows = frame.iloc[rng.choice(len(frame), size=count, replace=False)]
    scheduled = minutes(rows[schema.SCHEDULED_AT])
    leads = rng.choice([30, 60, 120, 180, 360, 0, 1], size=count)
    return Asked.build(
        scheduled,
        scheduled - leads,
        rows[schema.CARRIER_CODE],
        rows[schema.DESTINATION],
        rows[schema.FLIGHT_NUMBER],
    )


def test_training_and_serving_build_the_same_features(history: pd.DataFrame) -> None:
    """The history file's departures (training) and the same departures as feed events
    (serving, in another order, codes in another case) give identical features."""
    asked = asked_at_lead_times(history, 400, seed=1)
    from_file = point_in_time(asked, Departures.from_frame(history))
    events = history.sample(frac=1.0, random_state=3).to_dict("records")
    for event in events[::2]:
        event[schema.CARRIER_CODE] = event[schema.CARRIER_CODE].lower()
    from_feed = point_in_time(asked, Departures.from_events(events))
    pd.testing.assert_frame_equal(from_file, from_feed)
    assert list(from_file.columns) == feature_names(with_schedule=False)
    assert (from_file["live_all_today_n"] > 0).mean() > 0.5  # the windows are not all empty


def test_no_feature_reads_a_departure_at_or_after_the_as_of_time(history: pd.DataFrame) -> None:
    """For each asked flight alone: move every departure at or after its as-of time to another
    time at or after it, or drop it, and make every such flight late or early: nothing moves.
    The same for departures older than the lookback."""
    rng = np.random.default_rng(5)
    departures = Departures.from_frame(history)
    schedule = Schedule.from_frame(history)
    asked = asked_at_lead_times(history, 60, seed=2)
    expected = point_in_time(asked, departures, schedule)
    for row in range(len(asked.as_of)):
        one = Asked(*(np.asarray(part)[row : row + 1] for part in vars(asked).values()))
        a = one.as_of[0]
        unseen = departures.actual >= a
        old = departures.actual < a - LOOKBACK_MINUTES
        keep = ~(unseen & (rng.random(len(unseen)) < 0.3))  # drop some not yet departed
        actual = departures.actual.copy()
        actual[unseen] = a + rng.integers(0, 600, unseen.sum())
        scheduled = departures.scheduled.copy()
        scheduled[unseen] = actual[unseen] - rng.integers(-30, 240, unseen.sum())
        scheduled[old] = actual[old] - rng.integers(-30, 240, old.sum())
        perturbed = Departures.build(
            scheduled[keep],
            actual[keep],
            departures.airline[keep],
            departures.destination[keep],
            [flight.split("/", 1)[1] for flight in departures.flight[keep]],
        )
        waiting = schedule.actual >= a
        schedule_actual = schedule.actual.copy()
        schedule_actual[waiting] = np.where(
            rng.random(waiting.sum()) < 0.5, NOT_DEPARTED, a + rng.integers(0, 600, waiting.sum())
        )
        moved = Schedule.build(schedule.scheduled, schedule_actual, schedule.airline)
        got = point_in_time(one, perturbed, moved)
        pd.testing.assert_frame_equal(
            got, expected.iloc[row : row + 1].reset_index(drop=True), obj=f"asked flight {row}"
        )


def test_a_departure_seen_before_the_as_of_time_does_move_them(history: pd.DataFrame) -> None:
    """The converse, so that the test above cannot pass by features that read nothing."""
    departures = Departures.from_frame(history)
    asked = asked_at_lead_times(history, 50, seed=4)
    before = point_in_time(asked, departures)
    seen = departures.actual < asked.as_of.max()
    later = departures.actual.copy()
    later[seen] += 17  # each seen departure 17 minutes later than it was
    after = point_in_time(
        asked,
        Departures.build(
            departures.scheduled,
            later,
            departures.airline,
            departures.destination,
            [flight.split("/", 1)[1] for flight in departures.flight],
        ),
    )
    changed = (before.fillna(-1) != after.fillna(-1)).any(axis=0)
    assert changed["live_all_3h_mean_delay"] and changed["live_all_minutes_since_last"]


def test_a_scheduled_flight_listed_twice_counts_once_as_in_the_feed() -> None:
    twice = pd.DataFrame([DAY[1], {**DAY[1], schema.OPERATED_AT: "2017-03-02 06:45:00"}])
    departures = Departures.from_frame(twice)
    assert list(departures.actual - departures.scheduled) == [45]  # the last row
