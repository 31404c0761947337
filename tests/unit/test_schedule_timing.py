"""When schedules run (flight_delay.scheduling.timing): intervals, cron in a time zone, missed
times skipped, and expressions that are refused before they are stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flight_delay.scheduling.timing import InvalidTiming, Timing


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_an_interval_runs_one_interval_after_creation_then_every_interval() -> None:
    every = Timing(every_seconds=60)
    assert every.first_run(1000.2) == 1061
    assert every.following(1061, 1061.4) == 1121


def test_missed_times_are_skipped_not_run_one_by_one() -> None:
    # the beat was down for 10 minutes: the next run is the next time still ahead
    assert Timing(every_seconds=60).following(1000, 1000 + 600.5) == 1660
    assert Timing(cron="0 * * * *").following(
        int(epoch("2026-12-01T10:00:00+00:00")), epoch("2026-12-01T13:30:00+00:00")
    ) == epoch("2026-12-01T14:00:00+00:00")


def test_cron_runs_in_its_time_zone() -> None:
    timing = Timing(cron="0 3 * * *", timezone="America/Santiago").check(60)
    # 2026-12-01 is summer time in Chile (UTC-3): 03:00 there is 06:00 UTC
    first = timing.first_run(epoch("2026-12-01T12:00:00+00:00"))
    assert datetime.fromtimestamp(first, UTC) == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    # in July (winter, UTC-4) the same local time is 07:00 UTC
    july = timing.first_run(epoch("2026-07-01T12:00:00+00:00"))
    assert datetime.fromtimestamp(july, UTC) == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timing", "field"),
    [
        (Timing(), "every_seconds"),
        (Timing(every_seconds=60, cron="* * * * *"), "every_seconds"),
        (Timing(every_seconds=59), "every_seconds"),
        (Timing(every_seconds=400 * 24 * 3600), "every_seconds"),
        (Timing(cron="* * * * * *"), "cron"),
        (Timing(cron="61 * * * *"), "cron"),
        (Timing(cron="0 0 31 2 *"), "cron"),
        (Timing(cron="@daily"), "cron"),
        (Timing(cron="0 3 * * *", timezone="Mars/Olympus"), "timezone"),
        (Timing(cron="0 3 * * *", timezone="../../../etc/passwd"), "timezone"),
        (Timing(cron="0 3 * * *", timezone="/etc/localtime"), "timezone"),
    ],
)
def test_timings_that_cannot_run_are_refused(timing: Timing, field: str) -> None:
    with pytest.raises(InvalidTiming) as refused:
        timing.check(min_interval_seconds=60)
    assert refused.value.field == field


@pytest.mark.parametrize(
    "cron", ["* * * * *", "*/5 * * * *", "0,1 3 * * *", "0 * * * *", "0-59/30 * * * *"]
)
def test_cron_cannot_run_more_often_than_the_minimum_interval(cron: str) -> None:
    # every_seconds below the minimum was refused; a cron expression could run every minute
    with pytest.raises(InvalidTiming) as refused:
        Timing(cron=cron).check(min_interval_seconds=3601)
    assert refused.value.field == "cron"
    assert "3601" in refused.value.problem
    Timing(cron="0 3 * * *", timezone="America/Santiago").check(min_interval_seconds=3600 * 22)


def test_descriptions_read_as_people_say_them() -> None:
    assert Timing(every_seconds=86400).describe() == "every 1 day"
    assert Timing(every_seconds=90).describe() == "every 90 s"
    assert Timing(cron="0 3 1 * *", timezone="UTC").describe() == "cron '0 3 1 * *' (UTC)"
