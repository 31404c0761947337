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
# gevent workers, one per core: a connection that sends its headers or its body slowly waits in
# its own greenlet, so no number of slow clients holds a worker (a sync worker reads a request
# in its only thread: two slow connections stopped /predict for the 60 s timeout). A request's
# work still runs one at a time per process, as with sync workers. FLIGHT_DELAY_WEB_WORKER_CLASS
# (sync, gthread) or threads > 1 (gthread) select another class, for a deployment behind a
# buffering proxy only: both read a request in a worker thread (benchmarks/serving.py measures
# them all).
threads = int(os.environ.get("FLIGHT_DELAY_WEB_THREADS", "1"))
_WORKER_CLASSES = {
    "gevent": "flight_delay.web_worker.JsonErrorGeventWorker",
    "sync": "sync",
    "gthread": "gthread",
}
_kind = os.environ.get("FLIGHT_DELAY_WEB_WORKER_CLASS", "").strip() or (
    "gthread" if threads > 1 else "gevent"
)
if _kind not in _WORKER_CLASSES:
    raise SystemExit(
        f"FLIGHT_DELAY_WEB_WORKER_CLASS: expected {', '.join(_WORKER_CLASSES)}, got {_kind!r}"
    )
worker_class = _WORKER_CLASSES[_kind]
# connections a process holds at once (slow ones included); beyond, new ones wait in the backlog
worker_connections = 1000
# a request's headers must arrive within this many seconds, then the connection is closed (gevent
# workers read the first request's headers under the keep-alive timeout as well)
keepalive = 5
timeout = 60
# no control socket (gunicorn 24+ opens one in $HOME/.gunicorn by default): nothing outside the
# process tree manages the server, and two stacks on one machine do not share one socket
control_socket_disable = True
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("FLIGHT_DELAY_LOG_LEVEL", "info").lower()


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """After fork, in each worker: load the deployed model before taking requests, then watch
    for new deployments in a background thread."""
    from flight_delay.tasks.recovery import start_recovery

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
