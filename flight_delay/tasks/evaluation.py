"""The scheduled run's evaluation task: score the challenger against the champion and promote it
when the schedule's rule holds (flight_delay.scheduling.runs), holding the run's lease."""

from __future__ import annotations

from celery import shared_task
from flask import Flask, current_app

from flight_delay.scheduling.runs import run_evaluation
from flight_delay.tasks import names


@shared_task(name=names.EVALUATE_RUN)
def evaluate_schedule_run(run_id: str) -> str:
    """Evaluate a run whose challenger finished training; record the decision."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return run_evaluation(app, run_id)
