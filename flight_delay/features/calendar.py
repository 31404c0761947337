"""Calendar features of a scheduled day: Chile's high season and distance to public holidays."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import holidays
import numpy as np

HOLIDAY_HORIZON_DAYS = 30.0  # beyond a month away a holiday no longer shapes traffic
UNIX_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()


def is_high_season(month: Any, day: Any) -> Any:
    """Chile's high travel season: 15 Dec-3 Mar, 15-31 Jul and 11-30 Sep (arrays or numbers)."""
    return (
        ((month == 12) & (day >= 15))
        | (month == 1)
        | (month == 2)
        | ((month == 3) & (day <= 3))
        | ((month == 7) & (day >= 15))
        | ((month == 9) & (day >= 11))
    )


@lru_cache(maxsize=16)
def _holiday_days(first_year: int, last_year: int) -> np.ndarray:
    """Chile's public holidays (the maintained ``holidays`` calendar) as sorted day numbers."""
    calendar = holidays.country_holidays("CL", years=range(first_year, last_year + 1))
    return np.array(sorted(np.datetime64(d, "D").astype(np.int64) for d in calendar))


def holiday_distances(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days until the next and since the previous public holiday (0 on a holiday), capped."""
    years = days.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970
    table = _holiday_days(int(years.min()) - 1, int(years.max()) + 1)
    after = np.searchsorted(table, days, side="left")
    before = np.searchsorted(table, days, side="right") - 1
    to_next = table[np.minimum(after, len(table) - 1)] - days
    since_last = days - table[np.maximum(before, 0)]
    return (
        np.clip(to_next, 0, HOLIDAY_HORIZON_DAYS).astype(float),
        np.clip(since_last, 0, HOLIDAY_HORIZON_DAYS).astype(float),
    )


@lru_cache(maxsize=8192)
def holiday_distances_of_day(day: int) -> tuple[float, float]:
    """``holiday_distances`` of one day number, remembered: the single-flight path asks for the
    same few days again and again, and numpy costs ~20 µs a call."""
    to_next, since_last = holiday_distances(np.array([day]))
    return float(to_next[0]), float(since_last[0])
