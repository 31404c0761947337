"""Celery worker entry point: ``celery -A worker.celery_app:celery worker``."""

from flight_delay import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
