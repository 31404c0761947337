"""gunicorn settings for the API: ``gunicorn -c python:flight_delay.gunicorn_conf flight_delay.wsgi:app``.

Every value can be overridden on the command line."""

import os

# LightGBM's OpenMP threads in several worker processes fight over the cores and made single-row
# prediction ~10x slower here: one thread per serving process. Set before any worker imports it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# metrics of every worker process, summed by the one that answers GET /metrics: the folder is
# named here, in the master, before any worker forks or imports prometheus_client
_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    from flight_delay.metrics import prepare_multiprocess_dir

    _METRICS_DIR = prepare_multiprocess_dir(os.environ.get("FLIGHT_DELAY_METRICS_DIR"), "api")

# loopback by default; containers set FLIGHT_DELAY_BIND=0.0.0.0:8000
bind = os.environ.get("FLIGHT_DELAY_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("FLIGHT_DELAY_WEB_WORKERS", "2"))
# sync workers, one per core: measured against threads and more processes in
# benchmarks/serving.py --worker-models (README, "Serving speed"); threads > 1 selects gthread
threads = int(os.environ.get("FLIGHT_DELAY_WEB_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("FLIGHT_DELAY_LOG_LEVEL", "info").lower()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """After fork, in each worker: load the deployed model before taking requests, then watch
    for new deployments in a background thread."""
    from flight_delay.jobs import start_recovery

    start_recovery(worker.wsgi)  # jobs whose worker died are queued again or failed
    cache = worker.wsgi.extensions["deployed_model"]
    try:
        cache.refresh(force=True)
    except Exception as exc:  # Redis not up yet: the background thread tries again
        worker.log.warning("could not load the deployed model at start: %s", exc)
    cache.start_background_refresh()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker stopping gracefully sends its queued prediction-log entries first."""
    log = worker.wsgi.extensions.get("prediction_log") if hasattr(worker, "wsgi") else None
    if log is not None and log.buffer is not None:
        log.buffer.close(timeout=5.0)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker process is gone: its live gauges (queued log entries) stop counting."""
    from flight_delay.metrics import process_gone

    process_gone(worker.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    """The metrics folder made above goes with the server."""
    if _METRICS_DIR:
        import shutil

        shutil.rmtree(_METRICS_DIR, ignore_errors=True)
