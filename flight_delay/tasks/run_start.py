"""The task the beat sends for every run it starts: create the run's challenger (a pending model
record) and queue its training, with the run's evaluation linked to it
(flight_delay.scheduling.runs). The beat itself only claims due times."""

from __future__ import annotations

from celery import shared_task
from flask import Flask, current_app

from flight_delay.scheduling.runs import start_run
from flight_delay.tasks import names


@shared_task(name=names.START_RUN)
def start_schedule_run(run_id: str) -> str:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return start_run(app, run_id)
