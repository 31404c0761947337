"""Celery beat's scheduler for retraining schedules: ``celery -A worker.celery_app:celery beat``
(the Celery app names this class as its ``beat_scheduler``).

The schedules live in Redis, not in beat's own table: every ``SCHEDULE_TICK_SECONDS`` the
scheduler runs :func:`flight_delay.scheduling.runs.tick`, which claims the due times and sends
one task per run it starts; everything a run needs next (its challenger, training, evaluation)
happens in the workers, and the recovery every process runs moves along a run a lost message or
a killed worker left behind. One beat is meant to run; a second one started by mistake is
harmless, as every claim is a compare-and-set in Redis.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from typing import Any

from celery.beat import Scheduler
from flask.logging import default_handler

from flight_delay.scheduling.runs import tick

log = logging.getLogger(__name__)


class ScheduleBeat(Scheduler):
    """Beat's in-memory scheduler (no schedule file: nothing is kept but in Redis) plus the
    retraining schedules' tick."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_tick = 0.0
        self._name = f"beat {socket.gethostname()}:{os.getpid()}"
        flask_app = self.app.flask_app
        # beat logs through the root logger Celery sets up; Flask's own handler on the app's
        # logger ("flight_delay") would print every line a second time
        flask_app.logger.removeHandler(default_handler)
        every = flask_app.config["SCHEDULE_TICK_SECONDS"]
        log.info("%s: retraining schedules ticking every %s s", self._name, every)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        wait = float(super().tick(*args, **kwargs))
        flask_app = self.app.flask_app
        every = float(flask_app.config["SCHEDULE_TICK_SECONDS"])
        if time.time() >= self._next_tick:
            try:
                with flask_app.app_context():
                    tick(flask_app, self._name)
            except Exception:  # Redis away, say: the next tick tries again
                log.warning("the schedules' tick failed; retrying in %.1f s", every, exc_info=True)
            # ticks fall on multiples of the period on the clock: a run due at a whole second
            # starts within a tick, and beats started by mistake tick (and race) together
            self._next_tick = (math.floor(time.time() / every) + 1) * every
        return max(0.0, min(wait, self._next_tick - time.time()))
