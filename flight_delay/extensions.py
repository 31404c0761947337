"""Unbound extension singletons, attached to an app in :func:`flight_delay.app.create_app`."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask, has_app_context

from flight_delay.api.errors import Api
from flight_delay.registry import ModelRegistry
from flight_delay.serving import DeployedModelCache


class FlaskTask(Task):
    """Runs a task inside the Flask app context, pushing one only when none is active."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            return self.run(*args, **kwargs)
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)


api = Api()
celery = Celery("flight_delay", task_cls=FlaskTask)
model_registry = ModelRegistry()
deployed_model = DeployedModelCache()


def init_celery(app: Flask) -> Celery:
    """Point the Celery app at the configured Redis and attach the Flask app to it."""
    prefix = app.config["KEY_PREFIX"]
    celery.conf.update(
        broker_url=app.config["REDIS_URL"],
        broker_connection_retry_on_startup=True,
        task_default_queue=f"{prefix}-training",
        task_ignore_result=True,
        # a job is acknowledged only when it ends, and re-queued if its worker dies meanwhile:
        # no training request is lost with a worker
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_transport_options={
            "visibility_timeout": 3600,
            "global_keyprefix": f"{prefix}:celery:",
        },
    )
    celery.flask_app = app
    app.extensions["celery"] = celery
    return celery
