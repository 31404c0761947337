"""Extensions, made per app in :func:`flight_delay.app.create_app` (never process-wide objects
that every ``create_app`` would reconfigure): the smorest ``Api``, the Celery app, the model
registry and the deployed-model cache each live in ``app.extensions``."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask
from kombu import Queue

from flight_delay import redis_connection
from flight_delay.prediction_log.service import PredictionLog
from flight_delay.registry import ModelRegistry
from flight_delay.serving import DeployedModelCache
from flight_delay.tasks import names

model_registry = ModelRegistry()
deployed_model = DeployedModelCache()
prediction_log = PredictionLog()


class FlaskCelery(Celery):
    """A Celery app that knows its Flask app (beat's scheduler reads the configuration)."""

    flask_app: Flask


#: Celery beat's scheduler: the retraining schedules' tick (flight_delay/scheduling/beat.py)
BEAT_SCHEDULER = "flight_delay.scheduling.beat:ScheduleBeat"


def init_celery(app: Flask) -> Celery:
    """A Celery app for ``app``: its Redis, its queue, and tasks that run in its app context.

    The tasks are ``shared_task``s (flight_delay.tasks), so every Celery app made here has them.
    """

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    prefix = app.config["KEY_PREFIX"]
    broker = redis_connection.celery_settings(app.config)
    limit = int(app.config["JOB_TIME_LIMIT_SECONDS"])
    celery = FlaskCelery(app.import_name, task_cls=FlaskTask)
    celery.flask_app = app
    training, analysis = f"{prefix}-training", f"{prefix}-analysis"
    consumed = {
        "training": training,
        "analysis": analysis,
    }
    wanted = [name.strip() for name in str(app.config["WORKER_QUEUES"]).split(",") if name.strip()]
    unknown = [name for name in wanted if name not in consumed]
    if unknown or not wanted:
        raise ValueError(
            f"FLIGHT_DELAY_WORKER_QUEUES: expected training, analysis or both, got "
            f"{app.config['WORKER_QUEUES']!r}"
        )
    celery.conf.update(
        # reports never wait behind training, nor training behind them: their own queue
        task_routes={name: {"queue": analysis} for name in names.ANALYSIS},
        # the queues a worker of this app consumes (producers route by task_routes)
        task_queues=[Queue(consumed[name], routing_key=consumed[name]) for name in wanted],
        broker_url=broker["broker_url"],
        broker_transport=broker.get("broker_transport"),
        broker_connection_retry_on_startup=True,
        # keep reconnecting to a Redis that restarts, however long it takes
        broker_connection_max_retries=None,
        task_default_queue=training,
        task_ignore_result=True,
        # acknowledged when it ends and re-queued if the process running it dies; a duplicate
        # delivery is harmless: the registry's claim lets one attempt run a job at a time and
        # never reruns a finished one (see flight_delay.tasks.lease)
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_soft_time_limit=limit,
        task_time_limit=limit + 60,
        worker_prefetch_multiplier=1,
        beat_scheduler=BEAT_SCHEDULER,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={
            # an unacknowledged message comes back after this long; the lease (JOB_LEASE_SECONDS)
            # is what notices a dead worker, so this only bounds how long a lost message waits
            "visibility_timeout": limit + 120,
            "global_keyprefix": f"{prefix}:celery:",
            # socket bounds, and behind Sentinel the master's name (flight_delay.redis_connection)
            **broker["broker_transport_options"],
        },
    )
    app.extensions["celery"] = celery
    return celery
