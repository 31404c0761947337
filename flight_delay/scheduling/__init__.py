"""Retraining schedules: champion/challenger runs started by Celery beat.

``timing`` (interval or cron), ``store`` (schedules and run records in Redis, atomic scripts),
``lifecycle`` (a run's state machine: one method and one script per transition), ``runs`` (the
tick, the challenger's start, the evaluation and its decision), ``validation`` and ``beat``
(Celery beat's scheduler class).
"""

from __future__ import annotations

from flask import Flask

from flight_delay.scheduling.store import ScheduleStore

#: the scheduling settings and the least each may be
_LOWEST = {
    "SCHEDULE_TICK_SECONDS": 0.1,
    "SCHEDULE_MIN_INTERVAL_SECONDS": 1,
    "SCHEDULE_MAX": 1,
    "SCHEDULE_RUNS_KEPT": 1,
}


def init_app(app: Flask) -> None:
    """Give ``app`` its schedule store (``app.extensions["schedules"]``), on the registry's Redis
    connection: init the model registry first. Refuses settings no schedule could run with."""
    for name, lowest in _LOWEST.items():
        value = app.config[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < lowest:
            raise ValueError(f"FLIGHT_DELAY_{name}: must be a number of at least {lowest}")
    app.extensions["schedules"] = ScheduleStore(app.extensions["model_registry"])
