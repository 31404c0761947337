"""Celery worker entry point: ``celery -A worker.celery_app:celery worker``."""

from celery.signals import worker_ready

from flight_delay import create_app
from flight_delay.jobs import start_recovery

flask_app = create_app()
celery = flask_app.extensions["celery"]
# jobs whose worker died are queued again (or failed) by every worker and API process
worker_ready.connect(lambda **_: start_recovery(flask_app), weak=False)
