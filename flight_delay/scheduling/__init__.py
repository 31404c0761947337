"""Retraining schedules: champion/challenger runs started by Celery beat (issue 12).

``timing`` (interval or cron), ``store`` (schedules and runs in Redis, atomic scripts), ``runs``
(the tick and the evaluation task) and ``beat`` (Celery beat's scheduler class).
"""

from __future__ import annotations

from flask import Flask

from flight_delay.scheduling.store import ScheduleStore


def init_app(app: Flask) -> None:
    """Give ``app`` its schedule store (``app.extensions["schedules"]``), on the registry's Redis
    connection: init the model registry first."""
    app.extensions["schedules"] = ScheduleStore(app.extensions["model_registry"])
