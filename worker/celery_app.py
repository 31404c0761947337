"""Celery worker entry point: ``celery -A worker.celery_app:celery worker``."""

import os
import sys

from celery.signals import worker_init, worker_process_shutdown, worker_ready

from flight_delay import create_app, tracing
from flight_delay.metrics import serve_worker_metrics, worker_process_gone
from flight_delay.tasks.recovery import start_recovery


def refuse_open_flower(argv: list[str], environ: "os._Environ[str] | dict[str, str]") -> None:
    """Flower (``celery ... flower``) shows every task's arguments and tracebacks to whoever
    reaches its port: it starts only with FLOWER_BASIC_AUTH=user:password (make run sets one;
    compose takes it from .env)."""
    if "flower" in argv[1:] and not environ.get("FLOWER_BASIC_AUTH", "").strip():
        raise SystemExit(
            "Flower shows task arguments and tracebacks: set FLOWER_BASIC_AUTH=user:password "
            "(in .env for docker compose) before starting it"
        )


refuse_open_flower(sys.argv, os.environ)
tracing.configure("worker")  # before the app: this process's spans say "worker"
flask_app = create_app()
celery = flask_app.extensions["celery"]
# job metrics: a multiprocess folder named before the pool forks, served on
# FLIGHT_DELAY_WORKER_METRICS_BIND when it is set
worker_init.connect(lambda **_: serve_worker_metrics(flask_app.config), weak=False)
worker_process_shutdown.connect(lambda pid=None, **_: worker_process_gone(pid), weak=False)
# jobs whose worker died are queued again (or failed) by every worker and API process
worker_ready.connect(lambda **_: start_recovery(flask_app), weak=False)
