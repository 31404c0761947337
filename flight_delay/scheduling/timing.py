"""When a schedule runs: every N seconds, or at the times of a five-field cron expression (in a
time zone, UTC by default; croniter computes the times)."""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache

from croniter import CroniterBadDateError, croniter

#: the longest interval a schedule may have
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
MAX_CRON_LENGTH = 100
#: run times of a cron expression looked at for its shortest interval (a day of every-15-minutes
#: runs, or years of monthly ones)
CRON_RUNS_CHECKED = 100


class InvalidTiming(ValueError):
    """A timing that cannot be used; ``field`` names the request field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone(name: str) -> tzinfo:
    """A time zone by its IANA name ("UTC", "America/Santiago")."""
    if name == "UTC":
        return UTC
    # only names the system database lists: never a path that ZoneInfo would try to open
    if name not in _zone_names():
        raise InvalidTiming("timezone", f"unknown time zone {name[:60]!r} (an IANA name)")
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class Timing:
    """Exactly one of ``every_seconds`` and ``cron``; ``timezone`` applies to ``cron``."""

    every_seconds: int | None = None
    cron: str | None = None
    timezone: str = "UTC"

    def check(self, min_interval_seconds: int) -> Timing:
        """Raise InvalidTiming unless this timing can run; returns itself."""
        if (self.every_seconds is None) == (self.cron is None):
            raise InvalidTiming("every_seconds", "give either every_seconds or cron, not both")
        if self.every_seconds is not None:
            low, high = min_interval_seconds, MAX_INTERVAL_SECONDS
            if not low <= self.every_seconds <= high:
                raise InvalidTiming("every_seconds", f"must be from {low} to {high}")
            return self
        assert self.cron is not None
        expression = self.cron.strip()
        if len(expression) > MAX_CRON_LENGTH or len(expression.split()) != 5:
            raise InvalidTiming(
                "cron", "five fields: minute hour day-of-month month day-of-week ('0 3 * * 1')"
            )
        if not croniter.is_valid(expression):
            raise InvalidTiming("cron", "not a valid cron expression")
        zone(self.timezone)
        # an expression that never fires ("0 0 31 2 *") is refused now, not at its first tick
        self.next_after(datetime.now(UTC))
        shortest = self.shortest_gap(datetime.now(UTC))
        if shortest < min_interval_seconds:
            raise InvalidTiming(
                "cron",
                f"runs {shortest} s apart at times; a schedule runs at most once every "
                f"{min_interval_seconds} s (FLIGHT_DELAY_SCHEDULE_MIN_INTERVAL_SECONDS)",
            )
        return self

    def shortest_gap(self, moment: datetime, runs: int = CRON_RUNS_CHECKED) -> int:
        """The shortest time in seconds between two of the next ``runs`` run times of a cron
        timing after ``moment`` (the minimum interval holds for cron as for every_seconds)."""
        assert self.cron is not None
        local = moment.astimezone(zone(self.timezone))
        times = croniter(self.cron.strip(), local)
        previous = times.get_next(datetime)
        shortest = MAX_INTERVAL_SECONDS
        for _ in range(runs - 1):
            following = times.get_next(datetime)
            gap = int((following.astimezone(UTC) - previous.astimezone(UTC)).total_seconds())
            shortest, previous = min(shortest, gap), following
        return shortest

    def next_after(self, moment: datetime) -> datetime:
        """The first run time strictly after ``moment`` (aware, UTC) on a cron timing."""
        assert self.cron is not None
        local = moment.astimezone(zone(self.timezone))
        try:
            found = croniter(self.cron.strip(), local).get_next(datetime)
        except CroniterBadDateError:
            raise InvalidTiming("cron", "never fires (no such date)") from None
        return found.astimezone(UTC)

    def first_run(self, now: float) -> int:
        """The first run time (epoch seconds) of a schedule made or re-timed at ``now``."""
        if self.every_seconds is not None:
            return math.ceil(now) + self.every_seconds
        return int(self.next_after(datetime.fromtimestamp(now, UTC)).timestamp())

    def following(self, due: int, now: float) -> int:
        """The run time after the one due at ``due``, skipping times already past at ``now``
        (a schedule that was paused, or whose beat was down, does not run once per missed time)."""
        if self.every_seconds is not None:
            step = self.every_seconds
            missed = max(0, math.floor((now - due) / step))
            return due + (missed + 1) * step
        later = max(float(due), now)
        return int(self.next_after(datetime.fromtimestamp(later, UTC)).timestamp())

    def describe(self) -> str:
        if self.every_seconds is not None:
            return f"every {_duration(self.every_seconds)}"
        return f"cron '{self.cron}' ({self.timezone})"


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
